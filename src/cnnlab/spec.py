"""Spec strings: a Sequential CNN written as one line, shared by the torch and NumPy engines.

A spec is layers joined by '-', for example
``conv(32,3)-relu-conv(64,3)-relu-maxpool(2)-dropout(0.25)-flatten-dense(128)-relu-dropout(0.5)-dense(10)``.

Layers and their arguments:

- ``conv(filters, kernel[, stride][, padding])``: padding is ``valid`` (default), ``same`` or a number
- ``maxpool(size[, stride])``, ``avgpool(size[, stride])``: stride defaults to size
- ``relu``, ``tanh``, ``sigmoid``: activations
- ``dropout(rate)``, ``flatten``
- ``dense(units)``: ``dense(classes)`` takes the data set's number of classes

The network ends in logits; softmax lives in the loss. This module imports
neither torch nor NumPy, so both engines build from the same parsed layers
with the same names (``conv1``, ``tanh1``, ``maxpool1``, ``dense2`` ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cnnlab.errors import ModelError, SpecError, similar, unknown
from cnnlab.memory import FLOAT32_BYTES, beyond_memory

NAMED_SPECS = {
    "seed-cnn": "conv(4,5)-tanh-conv(8,3)-tanh-maxpool(2)-conv(16,3)-tanh-maxpool(2)"
    "-flatten-dense(128)-tanh-dense(classes)",
    "mnist-cnn": "conv(32,3)-relu-conv(64,3)-relu-maxpool(2)-dropout(0.25)"
    "-flatten-dense(128)-relu-dropout(0.5)-dense(classes)",
    "simple-cnn": "conv(8,3)-sigmoid-maxpool(2)-flatten-dense(128)-sigmoid-dense(classes)",
}

# kind -> (positional parameter names, defaults for the optional ones)
_SIGNATURES: dict[str, tuple[tuple[str, ...], dict[str, object]]] = {
    "conv": (("filters", "kernel", "stride", "padding"), {"stride": 1, "padding": "valid"}),
    "maxpool": (("size", "stride"), {"stride": None}),
    "avgpool": (("size", "stride"), {"stride": None}),
    "relu": ((), {}),
    "tanh": ((), {}),
    "sigmoid": ((), {}),
    "dropout": (("rate",), {}),
    "flatten": ((), {}),
    "dense": (("units",), {}),
}
ACTIVATIONS = ("relu", "tanh", "sigmoid")
_TOKEN = re.compile(r"^([a-z0-9_]+)(?:\((.*)\))?$")


@dataclass(frozen=True)
class Layer:
    """One parsed layer: its kind, its unique name and its arguments."""

    kind: str
    name: str
    args: dict = field(default_factory=dict)


def resolve(model: str, num_classes: int | None = None, known: tuple[str, ...] = ()) -> list[Layer]:
    """Parse a registered name (``seed-cnn``) or a spec string into layers.

    A bare word that is neither a registered name nor a valid spec is reported
    as an unknown model, with the closest names among ``NAMED_SPECS`` and ``known``.
    """
    if model in NAMED_SPECS:
        return parse(NAMED_SPECS[model], num_classes)
    try:
        return parse(model, num_classes)
    except SpecError:
        if "(" not in model:
            raise SpecError(unknown("model", model, [*NAMED_SPECS, *known])
                            + " Or give a spec string such as 'conv(8,3)-relu-flatten-dense(classes)'.") from None
        raise


def parse(text: str, num_classes: int | None = None) -> list[Layer]:
    """Parse a spec string; ``dense(classes)`` becomes ``dense(num_classes)``."""
    tokens = _split(text)
    if not tokens:
        raise SpecError(f"The model spec {text!r} is empty; expected layers such as 'conv(8,3)-relu-flatten-dense(10)'.")
    counts: dict[str, int] = {}
    layers = []
    for token in tokens:
        kind, args = _parse_token(token, text, num_classes)
        counts[kind] = counts.get(kind, 0) + 1
        layers.append(Layer(kind, f"{kind}{counts[kind]}", args))
    if layers[-1].kind != "dense":
        raise SpecError(f"The model spec {text!r} must end with a dense layer that outputs one logit per class.")
    return layers


def to_string(layers: list[Layer]) -> str:
    """Write layers back as a spec string that `parse` reads to the same layers."""
    parts = []
    for layer in layers:
        positional, defaults = _SIGNATURES[layer.kind]
        values = [layer.args[p] for p in positional]
        while values and positional[len(values) - 1] in defaults and values[-1] == defaults[positional[len(values) - 1]]:
            values.pop()  # drop trailing defaults only, so positions still line up
        parts.append(f"{layer.kind}({','.join(str(v) for v in values)})" if values else layer.kind)
    return "-".join(parts)


def output_shapes(layers: list[Layer], input_shape: tuple[int, int, int], model: str = "model") -> list[tuple]:
    """Each layer's output shape (without batch) for an input of shape (C, H, W).

    Raises ModelError naming the layer when the input is too small or a dense
    layer meets an unflattened tensor.
    """
    shape: tuple = tuple(input_shape)
    shapes = []
    for layer in layers:
        shape = _next_shape(layer, shape, input_shape, model)
        shapes.append(shape)
    return shapes


def parameter_count(layers: list[Layer], input_shape: tuple[int, int, int]) -> int:
    """The number of weights and biases of the network, counted from the spec without building it."""
    count, shape = 0, tuple(input_shape)
    for layer, out_shape in zip(layers, output_shapes(layers, input_shape)):
        if layer.kind == "conv":
            count += layer.args["filters"] * (shape[0] * layer.args["kernel"] ** 2 + 1)
        elif layer.kind == "dense":
            count += layer.args["units"] * (shape[0] + 1)
        shape = out_shape
    return count


def check_fits(layers: list[Layer], input_shape: tuple[int, int, int], model: str = "model") -> None:
    """Raise ModelError, naming the size, when the parameters and one image's activations exceed the memory.

    Checked before anything is allocated, so `dense(1000000000000)` is a message, not a failed allocation.
    """
    shapes = output_shapes(layers, input_shape, model)
    parameters = parameter_count(layers, input_shape)
    activations = sum(_product(shape) for shape in shapes)
    reason = beyond_memory((parameters + activations) * FLOAT32_BYTES)
    if reason:
        raise ModelError(f"The model {model} has {parameters:,} parameters and {activations:,} activation values "
                         f"per image; as float32 it {reason}. Use fewer filters or units.")


def _product(shape: tuple) -> int:
    total = 1
    for size in shape:
        total *= size
    return total


def _next_shape(layer: Layer, shape: tuple, input_shape: tuple, model: str) -> tuple:
    a = layer.args
    size_text = "x".join(str(s) for s in input_shape[1:])
    if layer.kind in ("conv", "maxpool", "avgpool"):
        if len(shape) != 3:
            raise ModelError(f"The layer {layer.name} of {model} needs a (C, H, W) input but follows a flatten.")
        c, h, w = shape
        kernel = a["kernel"] if layer.kind == "conv" else a["size"]
        stride = a["stride"] or kernel
        pad = 0
        if layer.kind == "conv":
            pad = kernel // 2 if a["padding"] == "same" else (0 if a["padding"] == "valid" else a["padding"])
        h_out, w_out = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
        if h_out < 1 or w_out < 1:
            raise ModelError(
                f"The model {model} cannot take {size_text} images: layer {layer.name} gets {h}x{w} "
                f"and needs at least {kernel}x{kernel}; use a larger --image-size."
            )
        return (a["filters"] if layer.kind == "conv" else c, h_out, w_out)
    if layer.kind == "flatten":
        return (_product(shape),)
    if layer.kind == "dense":
        if len(shape) != 1:
            raise ModelError(f"The layer {layer.name} of {model} needs a flat input; put 'flatten' before it.")
        return (a["units"],)
    return shape


def _split(text: str) -> list[str]:
    """Split on '-' outside parentheses, so negative numbers are never needed."""
    tokens, depth, current = [], 0, ""
    for ch in text.replace(" ", ""):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "-" and depth == 0:
            tokens.append(current)
            current = ""
        else:
            current += ch
    tokens.append(current)
    if depth != 0:
        raise SpecError(f"The model spec {text!r} has unbalanced parentheses.")
    if any(t == "" for t in tokens) and text.strip():
        raise SpecError(f"The model spec {text!r} has an empty layer between two '-'.")
    return [t for t in tokens if t]


def _parse_token(token: str, text: str, num_classes: int | None) -> tuple[str, dict]:
    match = _TOKEN.match(token.lower())
    if not match:
        raise SpecError(f"The layer {token!r} in model spec {text!r} is malformed; expected NAME or NAME(ARGS).")
    kind, raw = match.group(1), match.group(2)
    if kind not in _SIGNATURES:
        raise SpecError(f"Unknown layer {kind!r} in model spec {text!r}.{similar(kind, _SIGNATURES)} "
                        f"Known: {', '.join(_SIGNATURES)}.")
    positional, defaults = _SIGNATURES[kind]
    values = [v for v in (raw or "").split(",") if v != ""]
    args: dict = dict(defaults)
    for i, value in enumerate(values):
        if "=" in value:
            key, value = value.split("=", 1)
        elif i < len(positional):
            key = positional[i]
        else:
            raise SpecError(f"The layer {token!r} in model spec {text!r} takes at most {len(positional)} arguments.")
        if key not in positional:
            raise SpecError(f"The layer {token!r} has no argument {key!r}; it takes {', '.join(positional) or 'none'}.")
        args[key] = _value(kind, key, value, token, num_classes)
    missing = [p for p in positional if p not in args]
    if missing:
        raise SpecError(f"The layer {token!r} in model spec {text!r} needs {', '.join(missing)}.")
    return kind, args


def _value(kind: str, key: str, value: str, token: str, num_classes: int | None):
    if key == "units" and value == "classes":
        if num_classes is None:
            raise SpecError(f"The layer {token!r} needs the number of classes, which is known only with data.")
        return int(num_classes)
    if key == "padding" and value in ("valid", "same"):
        return value
    try:
        number = float(value) if key == "rate" else int(value)
    except ValueError:
        expected = "a number in [0, 1)" if key == "rate" else "a positive integer"
        raise SpecError(f"The argument {key} of layer {token!r} must be {expected}. Got {value!r} instead.") from None
    if key == "rate" and not 0 <= number < 1:
        raise SpecError(f"The argument rate of layer {token!r} must be in [0, 1). Got {value!r} instead.")
    if key != "rate" and (number < 0 or (number == 0 and key != "padding")):
        raise SpecError(f"The argument {key} of layer {token!r} must be a positive integer. Got {value!r} instead.")
    return number
