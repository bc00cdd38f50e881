"""See inside a CNN: gradient maps, Grad-CAM, occlusion, activation maximisation, filters and feature maps.

Every method takes any ``nn.Module`` that maps [0, 1] images to logits (for a
loaded run, ``LoadedModel.network``), works on a batch, and leaves the model
as it found it. Maps come back as (N, H, W) tensors at the input's resolution;
`overlay` draws any of them onto its image.
"""

from cnnlab.explain.activation_max import activation_max
from cnnlab.explain.base import find_layer
from cnnlab.explain.features import feature_maps, filters
from cnnlab.explain.gradcam import gradcam, gradcam_guided, gradcam_rectified, guided_gradcam
from cnnlab.explain.occlusion import OcclusionResult, occlusion
from cnnlab.explain.saliency import guided, rectified, saliency

# The methods `cnnlab explain --method` accepts, each returning (N, H, W) maps.
METHODS = {
    "saliency": saliency,
    "guided": guided,
    "rectified": rectified,
    "gradcam": gradcam,
    "gradcam-guided": gradcam_guided,
    "gradcam-rectified": gradcam_rectified,
    "guided-gradcam": guided_gradcam,
    "occlusion": lambda model, images, target=None, **options: occlusion(model, images, target, **options).probability,
}
LAYER_METHODS = ("gradcam", "gradcam-guided", "gradcam-rectified", "guided-gradcam")

__all__ = ["LAYER_METHODS", "METHODS", "OcclusionResult", "activation_max", "feature_maps", "filters", "find_layer",
           "gradcam", "gradcam_guided", "gradcam_rectified", "guided", "guided_gradcam", "occlusion", "overlay",
           "rectified", "saliency"]


def __getattr__(name: str):
    # `overlay` needs matplotlib; computing maps should not pay for importing it.
    if name == "overlay":
        from cnnlab.explain.render import overlay

        return overlay
    raise AttributeError(f"module 'cnnlab.explain' has no attribute {name!r}")
