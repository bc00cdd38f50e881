"""`Sequential` runs layers forward and back in reverse; `build` makes one from a model name or spec string."""

from __future__ import annotations

import numpy as np

from cnnlab import spec as specs
from cnnlab.errors import ModelError
from cnnlab.scratch.activations import ReLU, Sigmoid, Tanh
from cnnlab.scratch.base import Layer, Parameter
from cnnlab.scratch.conv import Conv2D
from cnnlab.scratch.layers import Dense, Dropout, Flatten
from cnnlab.scratch.pool import AvgPool2D, MaxPool2D


class Sequential:
    """Layers applied in order; backward walks them in reverse, each turning d loss / d output into d loss / d input."""

    def __init__(self, layers: list[Layer], dtype=np.float32, spec: str = ""):
        self.layers, self.dtype, self.spec = list(layers), np.dtype(dtype), spec

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Logits (N, classes) for images x (N, C, H, W); `training` switches dropout on."""
        x = np.asarray(x, dtype=self.dtype)
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    __call__ = forward

    def backward(self, dout: np.ndarray, input_grad: bool = False) -> np.ndarray | None:
        """Add every parameter's d loss / d parameter into its `.grad`; with `input_grad`, return d loss / d x."""
        dout = np.asarray(dout, dtype=self.dtype)
        for position in range(len(self.layers) - 1, -1, -1):
            dout = self.layers[position].backward(dout, input_grad=input_grad or position > 0)
        return dout

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad[...] = 0

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters under torch's names and shapes: ``conv1.weight`` (out, in, k, k) ..."""
        return {p.name: p.value.copy() for p in self.parameters()}

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays (a torch model's state_dict, a safetensors file) into the parameters, in place."""
        params = {p.name: p for p in self.parameters()}
        missing, unexpected = sorted(set(params) - set(state)), sorted(set(state) - set(params))
        if missing or unexpected:
            raise ModelError(f"The weights do not fit this network: missing {missing or 'none'}, "
                             f"unexpected {unexpected or 'none'}.")
        for name, param in params.items():
            value = np.asarray(state[name])
            if value.shape != param.value.shape:
                raise ModelError(f"The weight {name} has shape {value.shape}; this network needs {param.value.shape}.")
            param.value[...] = value

    def __repr__(self) -> str:
        return f"Sequential({self.spec!r}, {[layer.name for layer in self.layers]})"


def build(model: str, num_classes: int, input_shape: tuple[int, int, int], seed: int = 0,
          dtype=np.float32) -> Sequential:
    """The NumPy network for a registered name (``seed-cnn``) or spec string, on (C, H, W) inputs.

    Layer and parameter names, shapes and the initialisation scheme are those of
    ``cnnlab.models.create_model``; weights are drawn in layer order from
    ``np.random.default_rng(seed)``, and each dropout layer has its own generator.
    """
    layer_specs = specs.resolve(model, num_classes)
    specs.check_fits(layer_specs, input_shape, model)
    shapes = specs.output_shapes(layer_specs, input_shape, model)
    rng = np.random.default_rng(seed)
    layers, in_shape = [], tuple(input_shape)
    for position, (layer, out_shape) in enumerate(zip(layer_specs, shapes)):
        layers.append(_layer(layer, in_shape, rng, dtype, [seed, position]))
        in_shape = out_shape
    return Sequential(layers, dtype, specs.to_string(layer_specs))


def _layer(layer: specs.Layer, in_shape: tuple, rng: np.random.Generator, dtype, dropout_seed: list[int]) -> Layer:
    a, name = layer.args, layer.name
    if layer.kind == "conv":
        padding = a["kernel"] // 2 if a["padding"] == "same" else (0 if a["padding"] == "valid" else a["padding"])
        return Conv2D(in_shape[0], a["filters"], a["kernel"], a["stride"], padding, name, rng, dtype)
    if layer.kind == "maxpool":
        return MaxPool2D(a["size"], a["stride"], name)
    if layer.kind == "avgpool":
        return AvgPool2D(a["size"], a["stride"], name)
    if layer.kind == "dense":
        return Dense(in_shape[0], a["units"], name, rng, dtype)
    if layer.kind == "dropout":
        return Dropout(a["rate"], name, dropout_seed)
    if layer.kind == "flatten":
        return Flatten(name)
    return {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}[layer.kind](name)
