"""See inside a CNN: gradient maps, Grad-CAM, occlusion, activation maximisation, filters and feature maps.

Every method takes any ``nn.Module`` that maps [0, 1] images to logits (for a
loaded run, ``LoadedModel.network``), works on a batch, and leaves the model
as it found it. Maps come back as (N, H, W) tensors at the input's resolution;
`overlay` draws any of them onto its image. For a notebook,
`explain(model_or_run, images, method)` takes tensors, NumPy arrays or PIL
images and returns an `Explanation` of NumPy maps with their layer and units. `METHODS` is the registry of map
methods (`cnnlab.explain.registry`); each is also an attribute of this
module under its Python name (``cnnlab.explain.gradcam``).
"""

from cnnlab.explain.activation_max import activation_max
from cnnlab.explain.base import find_layer
from cnnlab.explain.features import feature_maps, filters
from cnnlab.explain.methods.gradcam import gradcam, gradcam_guided, gradcam_rectified, guided_gradcam
from cnnlab.explain.methods.occlusion import OcclusionResult, occlusion
from cnnlab.explain.methods.saliency import guided, rectified, saliency
from cnnlab.explain.registry import METHODS, Method, get_method, parse_methods, register_method

__all__ = ["METHODS", "Explanation", "Method", "OcclusionResult", "activation_max", "explain", "feature_maps",
           "filters", "find_layer", "get_method", "gradcam", "gradcam_guided", "gradcam_rectified", "guided",
           "guided_gradcam", "occlusion", "overlay", "parse_methods", "rectified", "register_method", "saliency"]


def __getattr__(name: str):
    # `overlay` needs matplotlib; computing maps should not pay for importing it.
    if name == "overlay":
        from cnnlab.explain.render import overlay

        return overlay
    # `explain` and its result read run directories and draw: loaded only when a notebook asks for them.
    if name in ("explain", "Explanation"):
        from cnnlab.explain import api

        return getattr(api, name)
    # Any registered method by its Python name: cnnlab.explain.integrated_gradients(model, images, ...).
    method = METHODS.get(name.replace("_", "-"))
    if method is not None:
        return method.compute
    raise AttributeError(f"module 'cnnlab.explain' has no attribute {name!r}")
