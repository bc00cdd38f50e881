"""Everything that reaches into a model while it is explained.

- `Hooks` owns forward hooks that capture a layer's output as a fresh leaf
  tensor, so a backward pass can stop there (Grad-CAM, feature maps);
  `release()` removes them, and it works as a context manager; `add` places
  any other forward hook under the same ownership (Ablation-CAM's ablated
  channels, a pass's largest output).
- `relu_rule(rule)` is a context for the forward pass: a torch-function mode
  that swaps the backward rule of every ReLU-family activation the pass
  calls, however it is called: ``nn.ReLU`` (in place or not), ``nn.ReLU6``,
  ``F.relu``, ``torch.relu``, ``Tensor.relu_``, or a module that applies one
  internally (timm's ``BatchNormAct2d``). Module hooks (captum's approach)
  see only ``nn.ReLU`` modules and miss the rest.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

# The backward rules for ReLU-family activations; None is the ordinary gradient.
RULES = ("guided", "rectified")

_RELU = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}
_CLIPPED = {F.relu6, F.hardtanh, F.hardtanh_}
_WATCHED = _RELU | _CLIPPED


def _clip_range(func, args, kwargs) -> tuple[float, float | None] | None:
    """(low, high) of a ReLU-family activation (high None: unbounded), or None for a hardtanh not clipped at 0."""
    if func in _RELU:
        return 0.0, None
    if func is F.relu6:
        return 0.0, 6.0
    low = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
    high = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
    return (0.0, float(high)) if low == 0 else None


class _Rule:
    """The backward rule the activations of one forward pass follow; it may change between backward passes."""

    def __init__(self, rule: str | None):
        self.rule = rule


class _ReLUFamily(torch.autograd.Function):
    """Runs the activation unchanged; its backward follows ``rule.rule``:

    None:      grad * [low < y < high]             (the ordinary gradient)
    guided:    max(grad, 0) * [low < y < high]     (Springenberg et al.)
    rectified: max(grad, 0)                        (deconvnet; keras-vis "relu" modifier)

    The mask comes from the output y, which is inside (low, high) exactly when the input is.
    """

    @staticmethod
    def forward(ctx, x, func, args, kwargs, low, high, rule):
        y = func(x, *args, **kwargs)
        if y is x:  # an in-place activation: autograd must know the input was overwritten
            ctx.mark_dirty(x)
        ctx.save_for_backward(y)
        ctx.low, ctx.high, ctx.rule = low, high, rule
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        rule = ctx.rule.rule
        if rule == "rectified":
            return grad.clamp(min=0), None, None, None, None, None, None
        if ctx.high is None:
            grad = torch.ops.aten.threshold_backward(grad, y, ctx.low)
        else:
            grad = torch.ops.aten.hardtanh_backward(grad, y, ctx.low, ctx.high)
        if rule == "guided":
            grad.clamp_(min=0)  # in place on the fresh tensor: one pass more than the ordinary gradient, no copy
        return grad, None, None, None, None, None, None


class _ReLUBackwardMode(TorchFunctionMode):
    """Sees every torch function the forward pass calls and routes the ReLU-family ones through `_ReLUFamily`."""

    def __init__(self, rule: _Rule):
        super().__init__()
        self.rule = rule

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in _WATCHED or not isinstance(args[0], torch.Tensor) or not args[0].requires_grad:
            return func(*args, **kwargs)  # not an activation, or one no gradient will pass through
        clip = _clip_range(func, args, kwargs)
        if clip is None:
            return func(*args, **kwargs)
        return _ReLUFamily.apply(args[0], func, args[1:], kwargs, *clip, self.rule)


@contextmanager
def relu_rule(rule: str | None):
    """Within the context, ReLU-family activations record `rule`'s backward (None: the ordinary one).

    Yields the rule holder: switching its ``.rule`` between None and
    ``"guided"`` changes the rule of the activations already recorded, so one
    forward pass serves several backward passes.
    """
    if rule is not None and rule not in RULES:
        raise ValueError(f"Unknown backward rule {rule!r}; expected None or one of {RULES}.")
    holder = _Rule(rule)
    with _ReLUBackwardMode(holder):
        yield holder


class Capture:
    """The output of one layer (``.value``, None until the model runs), ready to differentiate against.

    With ``cut`` the output becomes a leaf, so nothing upstream of the layer is
    recorded and a backward pass to it ends there.
    """

    def __init__(self, cut: bool = True):
        self.cut = cut
        self.value: torch.Tensor | None = None

    def hook(self, module: nn.Module, inputs, output):
        if not isinstance(output, torch.Tensor):
            return None
        self.value = output.detach().requires_grad_() if self.cut else output
        # The model continues with a clone, so its later in-place ops (ResNet's `out += identity`) leave
        # `value` intact.
        return self.value.clone()


class Hooks:
    """Owns every hook placed on a model; `release()` removes them all. Use it as a context manager."""

    def __init__(self):
        self._handles: list = []

    def capture(self, module: nn.Module, cut: bool = True) -> Capture:
        """Capture `module`'s output on every forward pass (the last call wins)."""
        capture = Capture(cut)
        self._handles.append(module.register_forward_hook(capture.hook))
        return capture

    def add(self, module: nn.Module, hook) -> None:
        """Call ``hook(module, inputs, output)`` after every forward pass of `module`; a tensor it returns
        replaces the output."""
        self._handles.append(module.register_forward_hook(hook))

    def release(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> "Hooks":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
