"""Build a torch `nn.Sequential` from parsed spec layers, with the spec's layer names."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from cnnlab import spec as specs


def build_sequential(layers: list[specs.Layer], input_shape: tuple[int, int, int], model: str = "model") -> nn.Sequential:
    """The torch network for `layers` on inputs of shape (C, H, W); names match the NumPy engine's."""
    specs.check_fits(layers, input_shape, model)
    shapes = specs.output_shapes(layers, input_shape, model)
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    shape = tuple(input_shape)
    for layer, out_shape in zip(layers, shapes):
        modules[layer.name] = _module(layer, shape)
        shape = out_shape
    network = nn.Sequential(modules)
    network.spec = specs.to_string(layers)
    return network


def _module(layer: specs.Layer, in_shape: tuple) -> nn.Module:
    a = layer.args
    if layer.kind == "conv":
        padding = a["kernel"] // 2 if a["padding"] == "same" else (0 if a["padding"] == "valid" else a["padding"])
        return nn.Conv2d(in_shape[0], a["filters"], a["kernel"], stride=a["stride"], padding=padding)
    if layer.kind == "maxpool":
        return nn.MaxPool2d(a["size"], stride=a["stride"] or a["size"])
    if layer.kind == "avgpool":
        return nn.AvgPool2d(a["size"], stride=a["stride"] or a["size"])
    if layer.kind == "dense":
        return nn.Linear(in_shape[0], a["units"])
    if layer.kind == "dropout":
        return nn.Dropout(a["rate"])
    if layer.kind == "flatten":
        return nn.Flatten()
    return {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[layer.kind]()
