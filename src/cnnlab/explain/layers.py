"""The layer an explanation looks at by default: the last spatial feature map, after its activation.

Found by tracing a real forward pass (forward hooks on every module and a
torch-function mode that sees every function call), then following the last
convolution's output through the ops that keep its spatial size (batch norm,
activation, residual add, dropout) up to the first pooling, flatten or change
of size. That is the layer Keras-style tools explain (a conv layer's
*activated* output) and the block output pytorch-grad-cam users pick, on
Sequential CNNs, ResNets, MobileNets and timm's ``BatchNormAct2d`` alike.

An activation applied as a function (``F.relu(self.conv2(x))``) has no module
to hook. Its output is named ``SOURCE+ACTIVATION`` (``conv2+relu``): the output
of ``SOURCE`` followed through the same size-keeping ops to the activation
``ACTIVATION`` applied to it (the last one, when there are several, as a
module called twice gives its last output). Such a name resolves to an
`ActivatedOutput`, which takes forward hooks like a module, so every method
captures it as it captures a module's output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnlab.errors import ModelError

SEPARATOR = "+"

# Activation functions by name, however they are called (F.relu, torch.relu, Tensor.relu_, ...).
ACTIVATIONS = frozenset({
    "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "selu_",
    "celu", "celu_", "gelu", "silu", "mish", "hardswish", "hardsigmoid", "sigmoid", "sigmoid_", "tanh", "tanh_",
    "softplus", "prelu", "rrelu", "logsigmoid"})


@dataclass
class _Event:
    """One module's forward or one function call of the traced pass, in the order they finished."""

    name: str  # module name, or the function's name
    kind: str  # "module" or "function"
    what: str  # the module's class name, or the function's name (to recognise pooling)
    inputs: list
    output: object


def _tensors(values) -> list[torch.Tensor]:
    found = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found += _tensors(value)
    return found


def _function_name(func) -> str:
    return getattr(func, "__name__", "")


class _Recorder(TorchFunctionMode):
    def __init__(self, events: list[_Event]):
        super().__init__()
        self.events = events

    def __torch_function__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        name = _function_name(func)
        self.events.append(_Event(name, "function", name, _tensors(args), output))
        return output


def _spatial(value) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() == 4


def _continues(event: _Event, current: torch.Tensor) -> bool | None:
    """True when `event` carries the feature map on (same spatial size, no pooling), False when it ends it,
    None when it does not touch it."""
    if event.output is current:
        return True  # an in-place op, or a container returning it
    if not isinstance(event.output, torch.Tensor) or not any(t is current for t in event.inputs):
        return None  # a question about the map (its size), or another branch
    if not _spatial(event.output) or "pool" in event.what.lower():
        return False
    return tuple(event.output.shape[-2:]) == tuple(current.shape[-2:])


def trace(model: nn.Module, images: torch.Tensor) -> list[_Event]:
    """Every module forward and function call of one forward pass of `images`, in the order they finished."""
    from cnnlab.explain.base import borrowed

    events: list[_Event] = []
    handles = []

    def hook(name):
        def record(module, inputs, output):
            events.append(_Event(name, "module", type(module).__name__, _tensors(inputs), output))

        return record

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(hook(name)))
    try:
        with borrowed(model), torch.no_grad(), _Recorder(events):
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return events


def default_layer(model: nn.Module, images: torch.Tensor | None = None) -> str:
    """The name of the last spatial feature map after its activation (see the module docstring).

    `images` (a batch the model takes) drive the traced pass; without them a
    probe image is made (`probe_input`).
    """
    events = trace(model, probe_input(model) if images is None else images[:1])
    modules = dict(model.named_modules())
    convolutions = [i for i, e in enumerate(events) if e.kind == "module"
                    and isinstance(modules[e.name], nn.modules.conv._ConvNd) and _spatial(e.output)]
    if not convolutions:
        raise ModelError(f"The model {type(model).__name__} has no 2-D convolutional layer; name one with 'layer'.")
    start = convolutions[-1]
    current = events[start].output
    named = events[start].name  # the latest point of the map that has a name
    source = named  # the module whose output the functional activations follow
    for event in events[start + 1:]:
        carried = _continues(event, current)
        if carried is None:
            continue
        if not carried:
            break
        current = event.output
        if event.kind == "module":
            named = source = event.name  # a container ends after its parts: the outermost name wins
        elif event.what in ACTIVATIONS:
            named = f"{source}{SEPARATOR}{event.what}"
    return named


def probe_input(model: nn.Module) -> torch.Tensor:
    """A grey image the model runs on: its first convolution's channels, at the first size in
    224, 64, 32, 28, 16 that the model accepts (its dense layers may fix the size)."""
    from cnnlab.explain.base import borrowed, device_of

    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ModelError(f"The model {type(model).__name__} has no 2-D convolutional layer; name one with 'layer'.")
    for size in (224, 64, 32, 28, 16):
        probe = torch.full((1, first.in_channels, size, size), 0.5, device=device_of(model))
        try:
            with borrowed(model), torch.no_grad():
                model(probe)
            return probe
        except RuntimeError:
            continue
    raise ModelError(f"Could not find an input size for {type(model).__name__}; pass the images, or name a layer.")


class ActivatedOutput:
    """The output of module `source` after the functional activation `activation` (``conv2+relu``).

    It takes forward hooks as a module does: `register_forward_hook` calls the
    hook with that activation's output, and the hook's return value replaces
    it. While `root` runs, a torch-function mode follows `source`'s output
    through the ops that keep its size to the activation.
    """

    def __init__(self, root: nn.Module, source: nn.Module, activation: str):
        self.root, self.source, self.activation = root, source, activation

    def register_forward_hook(self, hook) -> "_Handles":
        follower = _Follower(self, hook)

        def enter(module, inputs) -> None:  # returns None: a pre-hook's return value would replace the inputs
            follower.__enter__()

        def leave(module, inputs, output) -> None:
            follower.__exit__(None, None, None)

        return _Handles([self.root.register_forward_pre_hook(enter),
                         self.root.register_forward_hook(leave, always_call=True),
                         self.source.register_forward_hook(follower.start)])


class _Follower(TorchFunctionMode):
    """Follows the source's output through the forward pass and hands the activation's output to the hook."""

    def __init__(self, target: ActivatedOutput, hook):
        super().__init__()
        self.target, self.hook = target, hook
        self.current: torch.Tensor | None = None

    def start(self, module, inputs, output) -> None:
        self.current = output if _spatial(output) else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        if self.current is None:
            return output
        name = _function_name(func)
        carried = _continues(_Event(name, "function", name, _tensors(args), output), self.current)
        if carried is None:
            return output
        if not carried:
            self.current = None
            return output
        if name == self.target.activation:
            replaced = self.hook(self.target, tuple(args[:1]), output)
            output = output if replaced is None else replaced
        self.current = output
        return output


@dataclass
class _Handles:
    handles: list

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def split_name(name: str) -> tuple[str, str | None]:
    """``conv2+relu`` as (``conv2``, ``relu``); a plain module name as (name, None)."""
    source, _, activation = name.partition(SEPARATOR)
    return source, activation or None
