"""`summary()`: a Keras-style table of any nn.Module's layers, output shapes, parameters and multiply-adds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn


@dataclass
class LayerRow:
    name: str
    type: str
    output_shape: tuple
    params: int
    trainable: int
    mult_adds: int


@dataclass
class Summary:
    """What `summary` measured; `str()` gives the printed table."""

    title: str
    input_shape: tuple
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def mult_adds(self) -> int:
        return sum(r.mult_adds for r in self.rows)

    def __str__(self) -> str:
        name_width = max([len(f"{r.name} ({r.type})") for r in self.rows] + [20]) + 2
        shape_width = max([len(_shape_text(r.output_shape)) for r in self.rows] + [14]) + 2
        width = name_width + shape_width + 26
        lines = [f'Model: "{self.title}"  input {_shape_text(self.input_shape)}', "=" * width,
                 f"{'Layer (type)':<{name_width}}{'Output Shape':<{shape_width}}{'Param #':>12}{'Mult-Adds':>14}",
                 "=" * width]
        for r in self.rows:
            lines.append(f"{r.name + ' (' + r.type + ')':<{name_width}}{_shape_text(r.output_shape):<{shape_width}}"
                         f"{r.params:>12,}{r.mult_adds:>14,}")
        lines += ["=" * width,
                  f"Total params: {self.total_params:,}",
                  f"Trainable params: {self.trainable_params:,}",
                  f"Non-trainable params: {self.non_trainable_params:,}",
                  f"Mult-adds (forward, one image): {self.mult_adds:,} ({self.mult_adds / 1e6:.2f} M)",
                  "=" * width]
        return "\n".join(lines)


def _shape_text(shape: tuple) -> str:
    return "(None, " + ", ".join(str(s) for s in shape) + ")" if shape else "-"


def summary(model: nn.Module, input_size: tuple[int, int, int], title: str | None = None,
            print_fn: Callable[[str], None] | None = print) -> Summary:
    """Run one (1, C, H, W) input through `model` and tabulate each leaf layer; print it with `print_fn`.

    Parameters are counted once per tensor (shared ones too); a parameter that a
    leaf layer does not own directly is counted in the totals, not in a row.
    The model's train/eval mode and its gradients are left as they were.
    """
    rows: list[LayerRow] = []
    handles = []
    seen: set[int] = set()

    def hook(module: nn.Module, inputs, output) -> None:
        name = names[module]
        out = output[0] if isinstance(output, (tuple, list)) else output
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        rows.append(LayerRow(name, type(module).__name__, tuple(out.shape[1:]) if torch.is_tensor(out) else (),
                             sum(p.numel() for p in own), sum(p.numel() for p in own if p.requires_grad),
                             _mult_adds(module, out)))

    names = {}
    for name, module in model.named_modules():
        if name and (not list(module.children()) or list(module.parameters(recurse=False))):
            names[module] = name
            handles.append(module.register_forward_hook(hook))
    was_training = model.training
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    parameters = {id(p): p for p in model.parameters()}.values()
    result = Summary(title or getattr(model, "name", type(model).__name__), tuple(input_size), rows,
                     sum(p.numel() for p in parameters), sum(p.numel() for p in parameters if p.requires_grad))
    if print_fn is not None:
        print_fn(str(result))
    return result


def _mult_adds(module: nn.Module, out) -> int:
    if not torch.is_tensor(out):
        return 0
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = module.weight[0].numel()  # in_channels / groups * prod(kernel)
        return int(out[0].numel() * kernel)
    if isinstance(module, nn.Linear):
        return int(out[0].numel() * module.in_features)
    return 0
