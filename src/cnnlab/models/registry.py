"""The model registry: every name `create_model` knows, each with a short builder.

A builder takes ``num_classes`` and ``input_shape`` (C, H, W) and returns an
``nn.Module`` whose output is one logit per class. Tests run every registered
model through forward and backward, so a new entry is tested by registering it.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from cnnlab import spec as specs
from cnnlab.models.sequential import build_sequential

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str, description: str = ""):
    """Decorator: register a builder ``fn(num_classes, input_shape) -> nn.Module`` under `name`."""

    def decorate(fn):
        _REGISTRY[name] = fn
        _DESCRIPTIONS[name] = description or (fn.__doc__ or "").strip().splitlines()[0]
        return fn

    return decorate


def list_models() -> dict[str, str]:
    """Registered names and their one-line descriptions."""
    return dict(sorted(_DESCRIPTIONS.items()))


def is_registered(name: str) -> bool:
    return name in _REGISTRY


def create_model(model: str, num_classes: int = 10, input_shape: tuple[int, int, int] = (1, 28, 28)) -> nn.Module:
    """Build a registered model or any spec string for `num_classes` classes and (C, H, W) inputs."""
    if model in _REGISTRY:
        return _REGISTRY[model](num_classes=num_classes, input_shape=tuple(input_shape))
    layers = specs.resolve(model, num_classes, known=tuple(_REGISTRY))
    return build_sequential(layers, input_shape, model)


def _register_named_spec(name: str, description: str) -> None:
    @register_model(name, description)
    def build(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        return build_sequential(specs.resolve(name, num_classes), input_shape, name)


_register_named_spec("seed-cnn", "3 small tanh conv layers, 2 max-pools, dense 128 (the classic Keras seed network)")
_register_named_spec("mnist-cnn", "Keras' MNIST CNN: conv 32, conv 64, max-pool, dropout, dense 128 (1,199,882 params)")
_register_named_spec("simple-cnn", "one sigmoid conv layer, max-pool, dense 128 (the classic from-scratch network)")
