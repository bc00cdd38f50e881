"""Grad-CAM++ (Chattopadhay et al., 2018): each location's positive gradient weighted by how much it adds.

w_k = sum_ij alpha_ij^k ReLU(g_ij^k), alpha_ij^k = g^2 / (2 g^2 + sum_ab A_ab^k g^3) at (i, j), 0 where that
denominator is 0 (where g is), g = d logit / d A (the paper's closed form for an exponential score). The
map is ReLU(sum_k w_k A^k). pytorch-grad-cam's GradCAMPlusPlus adds 1e-6 to the denominator.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.explain.base import Target
from cnnlab.explain.cam import class_activation_map, weighted_sum
from cnnlab.explain.registry import register_method


def plusplus_weights(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """The channels weighted by Grad-CAM++'s alpha-weighted positive gradients, (N, h, w) (before the ReLU)."""
    squared = gradient.square()
    denominator = 2 * squared + activation.sum(dim=(2, 3), keepdim=True) * squared * gradient
    alpha = torch.where(denominator != 0, squared / denominator.where(denominator != 0, 1), 0)
    return weighted_sum((alpha * gradient.relu()).sum(dim=(2, 3)), activation)


@register_method("gradcam++", "Grad-CAM++: channels weighted by their positive gradients, each location "
                 "weighted by its share (Chattopadhay et al.)", units="Grad-CAM++ (logit units)", layer=True,
                 reference="pytorch-grad-cam GradCAMPlusPlus")
def gradcam_plusplus(model: nn.Module, images: torch.Tensor, target: Target = None,
                     layer: str | None = None) -> torch.Tensor:
    """Grad-CAM++ maps, (N, H, W), for `layer` (default: `find_layer`'s)."""
    return class_activation_map(model, images, target, layer, plusplus_weights)
