"""Grad-CAM (Selvaraju et al.) and its variants.

Grad-CAM = ReLU(sum_k alpha_k A^k), alpha_k the spatial mean of d score / d A^k,
upsampled bilinearly to the input. The backward pass stops at the layer A,
as captum's LayerGradCam does. ``gradcam-guided`` and ``gradcam-rectified``
pass the gradient to A through guided or rectified ReLUs (keras-vis
``visualize_cam`` with a backprop modifier); ``guided-gradcam`` is guided
backprop times Grad-CAM, from one forward pass.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import ModelError
from cnnlab.explain.base import Target, as_batch, borrowed, find_layer, target_scores, targets_for, upsample
from cnnlab.explain.hooks import Hooks, relu_rule
from cnnlab.explain.registry import register_method


def class_activation(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """ReLU of the activation channels weighted by their mean gradients, (N, h, w)."""
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    return F.relu((weights * activation.detach()).sum(dim=1))


def _layer_output(capture, name: str) -> torch.Tensor:
    if capture.value is None or capture.value.dim() != 4:
        shape = None if capture.value is None else tuple(capture.value.shape)
        raise ModelError(f"Grad-CAM needs a layer with a (N, C, H, W) output; {name!r} gave {shape}. "
                         f"Name a convolutional layer.")
    return capture.value


@register_method("gradcam", "Grad-CAM: ReLU of the layer's channels weighted by their mean gradients "
                 "(Selvaraju et al.)", units="Grad-CAM (logit units)", layer=True,
                 reference="captum LayerGradCam, pytorch-grad-cam GradCAM")
def gradcam(model: nn.Module, images: torch.Tensor, target: Target = None, layer: str | None = None,
            rule: str | None = None) -> torch.Tensor:
    """Grad-CAM maps, (N, H, W), for `layer` (default: the last convolutional layer)."""
    x = as_batch(images, model)
    name, module = find_layer(model, layer, x)
    with borrowed(model), Hooks() as hooks:
        capture = hooks.capture(module)
        with relu_rule(rule) if rule else nullcontext():
            logits = model(x)
        activation = _layer_output(capture, name)
        (gradient,) = torch.autograd.grad(target_scores(logits, targets_for(logits, target)), activation)
    return upsample(class_activation(activation, gradient), x.shape[-2:])


@register_method("gradcam-guided", "Grad-CAM with guided-backprop gradients from the logit to the layer "
                 "(keras-vis visualize_cam, 'guided')", units="Grad-CAM (guided gradients)", layer=True)
def gradcam_guided(model: nn.Module, images: torch.Tensor, target: Target = None,
                   layer: str | None = None) -> torch.Tensor:
    """Grad-CAM with guided-backprop gradients from the score to the layer, (N, H, W)."""
    return gradcam(model, images, target, layer, "guided")


@register_method("gradcam-rectified", "Grad-CAM with rectified gradients from the logit to the layer "
                 "(keras-vis visualize_cam, 'relu')", units="Grad-CAM (rectified gradients)", layer=True)
def gradcam_rectified(model: nn.Module, images: torch.Tensor, target: Target = None,
                      layer: str | None = None) -> torch.Tensor:
    """Grad-CAM with rectified (deconvnet) gradients from the score to the layer, (N, H, W)."""
    return gradcam(model, images, target, layer, "rectified")


@register_method("guided-gradcam", "guided backprop times the upsampled Grad-CAM (Selvaraju et al.)",
                 units="guided |gradient| x Grad-CAM", layer=True, percentile=99.0, reference="captum GuidedGradCam")
def guided_gradcam(model: nn.Module, images: torch.Tensor, target: Target = None,
                   layer: str | None = None) -> torch.Tensor:
    """Guided Grad-CAM, (N, H, W): max over channels of |guided backprop| times the upsampled Grad-CAM."""
    x = as_batch(images, model).requires_grad_()
    name, module = find_layer(model, layer, x)
    with borrowed(model), Hooks() as hooks:
        capture = hooks.capture(module, cut=False)
        with relu_rule(None) as rule:
            logits = model(x)
        activation = _layer_output(capture, name)
        score = target_scores(logits, targets_for(logits, target))
        (layer_gradient,) = torch.autograd.grad(score, activation, retain_graph=True)
        rule.rule = "guided"
        (input_gradient,) = torch.autograd.grad(score, x)
    cam = upsample(class_activation(activation, layer_gradient), x.shape[-2:])
    return input_gradient.abs().amax(dim=1) * cam
