"""The step every class activation map shares, and the budget of the methods that run many passes.

A CAM is ReLU(combine(A, dA)) upsampled bilinearly to the input, where A is
the layer's output (N, K, h, w) from one forward pass and dA the gradient of
the target's logit to it (the backward pass stops at the layer). A method
supplies only `combine`. Score-CAM and Ablation-CAM score many masked inputs
or ablated channels; `copies_per_pass` says how many of them one forward
pass may take within a memory budget.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import ModelError
from cnnlab.explain.base import Target, as_batch, borrowed, find_layer, target_scores, targets_for, upsample
from cnnlab.explain.hooks import Hooks, relu_rule
from cnnlab.explain.methods.occlusion import default_batch
from cnnlab.explain.registry import Option

BUDGET_MB = 512.0
BUDGET = {"budget_mb": Option(BUDGET_MB, "memory for the copies one forward pass takes, in MB", float, 1)}


@dataclass
class LayerPass:
    """What one forward pass (and, for gradient methods, one backward pass to the layer) leaves."""

    x: torch.Tensor  # (N, C, H, W) the input batch on the model's device
    module: nn.Module  # the layer
    activation: torch.Tensor  # (N, K, h, w) its output, detached
    gradient: torch.Tensor | None  # (N, K, h, w) d target logit / d activation; None without `gradient`
    logits: torch.Tensor  # (N, classes), detached
    targets: torch.Tensor  # (N,)


def layer_output(capture, name: str) -> torch.Tensor:
    """The captured (N, C, H, W) output of layer `name`; ModelError for any other shape."""
    if capture.value is None or capture.value.dim() != 4:
        shape = None if capture.value is None else tuple(capture.value.shape)
        raise ModelError(f"A class activation map needs a layer with a (N, C, H, W) output; {name!r} gave {shape}. "
                         f"Name a convolutional layer.")
    return capture.value


def layer_pass(model: nn.Module, images: torch.Tensor, target: Target = None, layer: str | None = None,
               gradient: bool = True, rule: str | None = None) -> LayerPass:
    """Run `images` once with `layer` captured and, with `gradient`, take d target logit / d layer.

    `rule` passes the gradient back through guided or rectified ReLUs (`hooks.relu_rule`).
    """
    x = as_batch(images, model)
    name, module = find_layer(model, layer, x)
    with borrowed(model), Hooks() as hooks:
        capture = hooks.capture(module)
        with relu_rule(rule) if rule else nullcontext(), nullcontext() if gradient else torch.no_grad():
            logits = model(x)
        activation = layer_output(capture, name)
        targets = targets_for(logits, target)
        gradients = torch.autograd.grad(target_scores(logits, targets), activation)[0] if gradient else None
    return LayerPass(x, module, activation.detach(), gradients, logits.detach(), targets)


def weighted_sum(weights: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    """sum_k w_k A^k, (N, h, w), for (N, K) weights and (N, K, h, w) activations."""
    return (weights[:, :, None, None] * activation).sum(dim=1)


def class_activation_map(model: nn.Module, images: torch.Tensor, target: Target, layer: str | None,
                         combine: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
                         gradient: bool = True, rule: str | None = None) -> torch.Tensor:
    """ReLU(combine(activation, gradient)) upsampled to the input, (N, H, W)."""
    step = layer_pass(model, images, target, layer, gradient, rule)
    return upsample(F.relu(combine(step.activation, step.gradient)), step.x.shape[-2:])


def bytes_per_copy(model: nn.Module, image: torch.Tensor) -> int:
    """Memory one more copy in a forward pass costs: the input, plus the largest layer output twice over
    (a layer's input and output are alive together), measured on `image` (1, C, H, W)."""
    largest = [0]

    def measure(module, inputs, output):
        if isinstance(output, torch.Tensor):
            largest[0] = max(largest[0], output.numel() * output.element_size())

    with borrowed(model), Hooks() as hooks, torch.no_grad():
        for module in model.modules():
            hooks.add(module, measure)
        model(image)
    return image.numel() * image.element_size() + 2 * largest[0]


def copies_per_pass(budget_mb: float, model: nn.Module, x: torch.Tensor) -> int:
    """Copies of an image of `x` one forward pass takes: enough to keep every thread busy (as occlusion's
    passes; on a CPU a few hundred small copies a pass run slower than a few dozen), never more than fit in
    `budget_mb`, at least one."""
    fit = int(budget_mb * 2**20 // bytes_per_copy(model, x[:1]))
    return max(1, min(fit, default_batch(x[0].numel(), x.device)))
