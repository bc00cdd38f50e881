"""Gradient maps: saliency, guided backprop and rectified (deconvnet) backprop.

Each is max over channels of |d score / d input| (Simonyan et al.; keras-vis
``visualize_saliency``), differing only in how ReLU-family activations pass
the gradient back (see `hooks.relu_rule`).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from cnnlab.explain.base import Target, as_batch, borrowed, target_scores, targets_for
from cnnlab.explain.hooks import relu_rule
from cnnlab.explain.registry import register_method


def input_gradient(model: nn.Module, images: torch.Tensor, target: Target = None,
                   rule: str | None = None) -> torch.Tensor:
    """d score / d input, (N, C, H, W), with ReLU-family activations following `rule`."""
    x = as_batch(images, model).requires_grad_()
    with borrowed(model):
        with relu_rule(rule) if rule else nullcontext():
            logits = model(x)
        (gradient,) = torch.autograd.grad(target_scores(logits, targets_for(logits, target)), x)
    return gradient


@register_method("saliency", "vanilla gradient: max over channels of |d logit / d pixel| (Simonyan et al.)",
                 units="|d logit / d pixel|", percentile=99.0, reference="captum Saliency")
def saliency(model: nn.Module, images: torch.Tensor, target: Target = None) -> torch.Tensor:
    """Vanilla gradient saliency, (N, H, W)."""
    return input_gradient(model, images, target).abs().amax(dim=1)


@register_method("guided", "guided backprop: only positive gradients pass through active units (Springenberg "
                 "et al.)", units="guided |d logit / d pixel|", percentile=99.0, reference="captum GuidedBackprop")
def guided(model: nn.Module, images: torch.Tensor, target: Target = None) -> torch.Tensor:
    """Guided backprop saliency, (N, H, W): only positive gradients pass through active units."""
    return input_gradient(model, images, target, "guided").abs().amax(dim=1)


@register_method("rectified", "deconvnet: only positive gradients pass, whatever the unit's input (Zeiler & "
                 "Fergus; keras-vis 'relu')", units="rectified |d logit / d pixel|", percentile=99.0,
                 reference="captum Deconvolution")
def rectified(model: nn.Module, images: torch.Tensor, target: Target = None) -> torch.Tensor:
    """Rectified (deconvnet) saliency, (N, H, W): only positive gradients pass, whatever the unit's input."""
    return input_gradient(model, images, target, "rectified").abs().amax(dim=1)
