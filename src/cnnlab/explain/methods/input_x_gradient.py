"""Input x gradient (Shrikumar et al.): each pixel's value times the score's gradient with respect to it.

Per channel it equals captum's InputXGradient; the map is the sum over
channels, signed (a first-order estimate of each pixel's share of the score).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.explain.base import Target, as_batch
from cnnlab.explain.methods.saliency import input_gradient
from cnnlab.explain.registry import register_method


@register_method("input-x-gradient", "input times gradient, summed over channels (Shrikumar et al.)",
                 units="pixel x d logit / d pixel", signed=True, percentile=99.0, reference="captum InputXGradient")
def input_x_gradient(model: nn.Module, images: torch.Tensor, target: Target = None) -> torch.Tensor:
    """Input times gradient summed over channels, (N, H, W)."""
    x = as_batch(images, model)
    return (x * input_gradient(model, x, target)).sum(dim=1)
