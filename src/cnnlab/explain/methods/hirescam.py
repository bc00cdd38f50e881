"""HiRes-CAM (Draelos & Carin, 2020): the gradient times the activation, summed over channels, then ReLU.

Unlike Grad-CAM it does not average the gradient over space, so each location keeps its own weight.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.explain.base import Target
from cnnlab.explain.cam import class_activation_map
from cnnlab.explain.registry import register_method


def elementwise(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """sum_k g^k * A^k at every location, (N, h, w) (before the ReLU)."""
    return (gradient * activation).sum(dim=1)


@register_method("hirescam", "HiRes-CAM: ReLU of gradient times activation summed over channels "
                 "(Draelos & Carin)", units="HiRes-CAM (logit units)", layer=True,
                 reference="pytorch-grad-cam HiResCAM")
def hirescam(model: nn.Module, images: torch.Tensor, target: Target = None, layer: str | None = None) -> torch.Tensor:
    """HiRes-CAM maps, (N, H, W), for `layer` (default: `find_layer`'s)."""
    return class_activation_map(model, images, target, layer, elementwise)
