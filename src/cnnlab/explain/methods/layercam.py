"""LayerCAM (Jiang et al., 2021): the positive gradient times the activation, summed over channels, then ReLU.

Each location's weight is its own positive gradient, so the method works on early layers as well.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.explain.base import Target
from cnnlab.explain.cam import class_activation_map
from cnnlab.explain.registry import register_method


def positive_elementwise(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """sum_k ReLU(g^k) * A^k at every location, (N, h, w) (before the ReLU)."""
    return (gradient.relu() * activation).sum(dim=1)


@register_method("layercam", "LayerCAM: ReLU of positive gradient times activation summed over channels "
                 "(Jiang et al.)", units="LayerCAM (logit units)", layer=True, reference="pytorch-grad-cam LayerCAM")
def layercam(model: nn.Module, images: torch.Tensor, target: Target = None, layer: str | None = None) -> torch.Tensor:
    """LayerCAM maps, (N, H, W), for `layer` (default: `find_layer`'s)."""
    return class_activation_map(model, images, target, layer, positive_elementwise)
