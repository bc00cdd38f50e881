"""The architecture diagram: layers as boxes from input to output, each with its output shape.

Built from `cnnlab.models.summary` rows. Parameter-free layers that keep the
shape (activations, dropout) join the box before them; deep networks are shown
as their blocks (rows grouped by name prefix) so the picture stays readable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from torch import nn

from cnnlab.models.summary import Summary

MOST_BOXES = 36
COLOURS = {"conv": "#cfe2f3", "pool": "#d9ead3", "dense": "#fce5cd", "norm": "#ead1dc", "shape": "#eeeeee",
           "block": "#d0e0e3", "other": "#fff2cc"}


@dataclass
class Box:
    name: str
    kind: str  # a key of COLOURS
    label: str  # what the layer does, e.g. "Conv2d 4, 5×5 + Tanh"
    shape: tuple
    params: int
    layers: list[str] = field(default_factory=list)


def boxes(summary: Summary, model: nn.Module | None = None) -> list[Box]:
    """The summary's rows as boxes: shape-keeping parameter-free layers merged into the box before them."""
    modules = dict(model.named_modules()) if model is not None else {}
    result: list[Box] = []
    for row in summary.rows:
        _add_layer(result, row, modules)
    return result if len(result) <= MOST_BOXES else _grouped(summary, modules)


def _add_layer(result: list[Box], row, modules: dict) -> None:
    """Append the layer's box, or join it to the box before when it keeps the shape and only activates,
    drops or normalises."""
    last = result[-1] if result else None
    if last is not None and row.output_shape == last.shape and last.kind != "block" and row.type != "Flatten" \
            and (row.params == 0 or _kind(row.type) == "norm"):
        last.label += "" if row.type == "Identity" else f" + {_describe(row.type, modules.get(row.name))}"
        last.params += row.params
        last.layers.append(row.name)
    else:
        result.append(Box(row.name, _kind(row.type), _describe(row.type, modules.get(row.name)), row.output_shape,
                          row.params, [row.name]))


def _grouped(summary: Summary, modules: dict) -> list[Box]:
    """Rows grouped by the deepest name prefix that still gives at most MOST_BOXES consecutive groups."""
    depth = 1
    while _groups(summary, depth + 1) and len(_groups(summary, depth + 1)) <= MOST_BOXES:
        depth += 1
    groups = _groups(summary, depth)
    if len(groups) > MOST_BOXES:  # even the top level is too long: keep evenly spread groups whole
        per_box = math.ceil(len(groups) / MOST_BOXES)
        groups = [sum(groups[i:i + per_box], []) for i in range(0, len(groups), per_box)]
    result: list[Box] = []
    for rows in groups:
        if len(rows) == 1:
            _add_layer(result, rows[0], modules)
            continue
        prefix = _common_prefix([r.name for r in rows])
        result.append(Box(prefix or f"{rows[0].name} … {rows[-1].name}", "block", f"{len(rows)} layers",
                          rows[-1].output_shape, sum(r.params for r in rows), [r.name for r in rows]))
    return result


def _groups(summary: Summary, depth: int) -> list[list]:
    groups: list[list] = []
    key = None
    for row in summary.rows:
        this = ".".join(row.name.split(".")[:depth])
        if groups and this == key:
            groups[-1].append(row)
        else:
            groups.append([row])
            key = this
    return groups


def _common_prefix(names: list[str]) -> str:
    parts = [n.split(".") for n in names]
    common = []
    for pieces in zip(*parts):
        if len(set(pieces)) > 1:
            break
        common.append(pieces[0])
    return ".".join(common)


def _kind(layer_type: str) -> str:
    lowered = layer_type.lower()
    for kind, words in (("conv", ("conv",)), ("pool", ("pool",)), ("dense", ("linear", "dense")),
                        ("norm", ("norm",)), ("shape", ("flatten", "reshape", "view"))):
        if any(w in lowered for w in words):
            return kind
    return "other"


def _describe(layer_type: str, module: nn.Module | None) -> str:
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = "×".join(str(k) for k in module.kernel_size)
        stride = "" if set(module.stride) == {1} else f", stride {module.stride[0]}"
        groups = "" if module.groups == 1 else (", depthwise" if module.groups == module.in_channels else
                                                f", {module.groups} groups")
        return f"{layer_type} {module.out_channels}, {kernel}{stride}{groups}"
    if isinstance(module, nn.Linear):
        return f"{layer_type} {module.out_features}"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        size = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
        return f"{layer_type} {size}"
    if isinstance(module, nn.Dropout):
        return f"{layer_type} {module.p:g}"
    return layer_type


def shape_text(shape: tuple) -> str:
    return "×".join(str(s) for s in shape) if shape else "-"


def diagram_figure(summary: Summary, model: nn.Module | None = None, title: str = "") -> Figure:
    """Boxes top to bottom from the input; a box's width grows with the size of its output."""
    chain = boxes(summary, model)
    sizes = [math.prod(summary.input_shape)] + [max(math.prod(b.shape), 1) for b in chain]
    low, high = math.log(min(sizes)), math.log(max(sizes))

    def width(size: int) -> float:
        return 0.6 + 0.4 * ((math.log(size) - low) / (high - low) if high > low else 1.0)

    step, box_height = 0.72, 0.5
    count = len(chain) + 1
    figure = Figure(figsize=(4.8, 0.3 + step * count + (0.3 if title else 0)))
    axis = figure.add_axes((0, 0, 1, 1))
    axis.set_xlim(-0.5, 0.5)
    axis.set_ylim(-step * count, 0.1)
    axis.axis("off")
    entries = [("input", "", summary.input_shape, 0, "shape")] + [(b.name, b.label, b.shape, b.params, b.kind)
                                                                   for b in chain]
    for index, ((name, label, shape, params, kind), size) in enumerate(zip(entries, sizes)):
        top = -index * step
        half = 0.47 * width(size)
        axis.add_patch(FancyBboxPatch((-half, top - box_height), 2 * half, box_height,
                                      boxstyle="round,pad=0,rounding_size=0.03", facecolor=COLOURS[kind],
                                      edgecolor="#555555", linewidth=0.8))
        heading = name if not label else f"{name}: {label}"
        axis.text(0, top - 0.17, heading, ha="center", va="center", fontsize=9, fontweight="bold")
        detail = shape_text(shape) + (f"   ·   {params:,} params" if params else "")
        axis.text(0, top - 0.37, detail, ha="center", va="center", fontsize=8.5, color="#333333")
        if index:
            axis.add_patch(FancyArrowPatch((0, top + step - box_height), (0, top), arrowstyle="-|>",
                                           mutation_scale=9, color="#555555", linewidth=0.8))
    if title:
        figure.suptitle(title, fontsize=10, y=1.0)
    return figure
