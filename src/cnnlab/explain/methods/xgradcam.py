"""XGrad-CAM (Fu et al., 2020): channels weighted by their gradients averaged with the activation as weights.

w_k = sum_ij (A_ij^k / sum_ab A_ab^k) g_ij^k (0 for a channel that sums to 0), map ReLU(sum_k w_k A^k).
pytorch-grad-cam's XGradCAM adds 1e-7 to the channel sum.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.explain.base import Target
from cnnlab.explain.cam import class_activation_map, weighted_sum
from cnnlab.explain.registry import register_method


def axiom_weights(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """The channels weighted by their activation-weighted mean gradients, (N, h, w) (before the ReLU)."""
    total = activation.sum(dim=(2, 3))
    weights = (gradient * activation).sum(dim=(2, 3)) / total.where(total != 0, 1)
    return weighted_sum(weights.where(total != 0, 0), activation)


@register_method("xgradcam", "XGrad-CAM: channels weighted by their gradients averaged over the channel's own "
                 "activation (Fu et al.)", units="XGrad-CAM (logit units)", layer=True,
                 reference="pytorch-grad-cam XGradCAM")
def xgradcam(model: nn.Module, images: torch.Tensor, target: Target = None, layer: str | None = None) -> torch.Tensor:
    """XGrad-CAM maps, (N, H, W), for `layer` (default: `find_layer`'s)."""
    return class_activation_map(model, images, target, layer, axiom_weights)
