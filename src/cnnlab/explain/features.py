"""What a network holds: its first layer's filters, and the feature maps of chosen layers for an image."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from cnnlab.errors import ModelError
from cnnlab.explain.base import as_batch, borrowed, find_layer
from cnnlab.explain.hooks import Hooks


def convolution_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, nn.modules.conv._ConvNd)]


def filters(model: nn.Module, layer: str | None = None) -> torch.Tensor:
    """The weights of `layer` (default: the first convolutional layer), (out, in, kh, kw)."""
    if layer is None:
        names = convolution_names(model)
        if not names:
            raise ModelError(f"The model {type(model).__name__} has no convolutional layer.")
        layer = names[0]
    name, module = find_layer(model, layer)
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise ModelError(f"The layer {name!r} has no 2-D convolution filters; name a convolutional layer.")
    return weight.detach().cpu().clone()


def default_feature_layers(model: nn.Module, most: int = 4) -> list[str]:
    """All convolutional layers when there are few, else `most` of them spread from first to last."""
    names = convolution_names(model)
    if len(names) <= most:
        return names
    return [names[round(i * (len(names) - 1) / (most - 1))] for i in range(most)]


@torch.no_grad()
def feature_maps(model: nn.Module, images: torch.Tensor,
                 layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The outputs of `layers` (default: `default_feature_layers`) for `images`, each (N, C, h, w)."""
    x = as_batch(images, model)
    chosen = [find_layer(model, name) for name in (layers or default_feature_layers(model))]
    with borrowed(model), Hooks() as hooks:
        captures = {name: hooks.capture(module, cut=False) for name, module in chosen}
        model(x)
    return {name: capture.value.detach().cpu() for name, capture in captures.items() if capture.value is not None}
