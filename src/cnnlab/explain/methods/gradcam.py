"""Grad-CAM (Selvaraju et al.) and its variants.

Grad-CAM = ReLU(sum_k alpha_k A^k), alpha_k the spatial mean of d score / d A^k,
upsampled bilinearly to the input. The backward pass stops at the layer A,
as captum's LayerGradCam does. ``gradcam-guided`` and ``gradcam-rectified``
pass the gradient to A through guided or rectified ReLUs (keras-vis
``visualize_cam`` with a backprop modifier); ``guided-gradcam`` is guided
backprop times Grad-CAM, from one forward pass.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.explain.base import Target, as_batch, borrowed, find_layer, target_scores, targets_for, upsample
from cnnlab.explain.cam import class_activation_map, layer_output, weighted_sum
from cnnlab.explain.hooks import Hooks, relu_rule
from cnnlab.explain.registry import register_method


def mean_gradient(activation: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """The activation channels weighted by their mean gradients, (N, h, w) (before the ReLU)."""
    return weighted_sum(gradient.mean(dim=(2, 3)), activation)


@register_method("gradcam", "Grad-CAM: ReLU of the layer's channels weighted by their mean gradients "
                 "(Selvaraju et al.)", units="Grad-CAM (logit units)", layer=True,
                 reference="captum LayerGradCam, pytorch-grad-cam GradCAM")
def gradcam(model: nn.Module, images: torch.Tensor, target: Target = None, layer: str | None = None,
            rule: str | None = None) -> torch.Tensor:
    """Grad-CAM maps, (N, H, W), for `layer` (default: the last spatial feature map after its activation)."""
    return class_activation_map(model, images, target, layer, mean_gradient, rule=rule)


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
        activation = layer_output(capture, name)
        score = target_scores(logits, targets_for(logits, target))
        (layer_gradient,) = torch.autograd.grad(score, activation, retain_graph=True)
        rule.rule = "guided"
        (input_gradient,) = torch.autograd.grad(score, x)
    cam = upsample(mean_gradient(activation.detach(), layer_gradient).relu(), x.shape[-2:])
    return input_gradient.abs().amax(dim=1) * cam
