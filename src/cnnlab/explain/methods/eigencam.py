"""Eigen-CAM (Muhammad & Yeasin, 2020): the layer's first principal component, with no gradient and no target.

The activation, as (h*w) locations by K channels, is centred per channel (as pytorch-grad-cam does) and
projected onto its first right singular vector. An SVD leaves that vector's sign open (pytorch-grad-cam
keeps whatever LAPACK returns); cnnlab takes the sign that makes the projection rise with the channels'
summed activation, then applies the ReLU. The map is the same for every target.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.explain.base import Target
from cnnlab.explain.cam import class_activation_map
from cnnlab.explain.registry import register_method


def principal_component(activation: torch.Tensor, gradient: None = None) -> torch.Tensor:
    """The centred activation projected onto its first principal direction, signed to follow the
    activation's channel sum, (N, h, w)."""
    count, _, height, width = activation.shape
    locations = activation.flatten(2).transpose(1, 2)  # (N, h*w, K)
    centred = locations - locations.mean(dim=1, keepdim=True)
    _, _, directions = torch.linalg.svd(centred, full_matrices=False)
    projection = (centred @ directions[:, 0, :, None])[..., 0]  # (N, h*w), mean 0
    sign = torch.sign((projection * locations.sum(dim=2)).sum(dim=1, keepdim=True))
    return (sign * projection).view(count, height, width)


@register_method("eigencam", "Eigen-CAM: the layer's first principal component, no gradient, the same for "
                 "every target (Muhammad & Yeasin)", units="Eigen-CAM (activation units)", layer=True,
                 gradients=False, class_specific=False, reference="pytorch-grad-cam EigenCAM")
def eigencam(model: nn.Module, images: torch.Tensor, target: Target = None, layer: str | None = None) -> torch.Tensor:
    """Eigen-CAM maps, (N, H, W), for `layer` (default: `find_layer`'s); `target` is only checked."""
    return class_activation_map(model, images, target, layer, principal_component, gradient=False)
