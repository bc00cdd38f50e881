"""Which parameters of a backbone train: `--freeze backbone|none|until:LAYER`, and keeping frozen parts frozen.

A frozen part keeps its weights *and* its BatchNorm statistics: `frozen_in_eval`
puts every fully frozen module (and optionally every BatchNorm layer) in eval
mode before each forward pass, since the Trainer switches the whole model to
train mode at every epoch.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from torch import nn

from cnnlab.errors import ConfigError, similar


@dataclass(frozen=True)
class FreezeSpec:
    """What stays frozen: the whole backbone, nothing, or every layer before `first_trainable`."""

    kind: str  # "backbone", "none" or "until"
    first_trainable: str | None = None  # module name of the first layer that trains (kind "until")

    def __str__(self) -> str:
        return f"until:{self.first_trainable}" if self.kind == "until" else self.kind

    @property
    def head_only(self) -> bool:
        """True when only the new head trains, so that backbone features can be cached."""
        return self.kind == "backbone"


def parse_freeze(text: str, option: str = "--freeze") -> FreezeSpec:
    """'backbone', 'none' (or 'all' for `--unfreeze`) or 'until:LAYER'."""
    value = (text or "").strip()
    if option == "--unfreeze":
        if value == "all":
            return FreezeSpec("none")
    elif value in ("backbone", "none"):
        return FreezeSpec(value)
    if value.startswith("until:") and value[6:].strip():
        return FreezeSpec("until", value[6:].strip())
    allowed = "'all' or 'until:LAYER'" if option == "--unfreeze" else "'backbone', 'none' or 'until:LAYER'"
    raise ConfigError(f"The {option} option of cnnlab finetune must be {allowed}, where LAYER is the first layer "
                      f"that trains (e.g. 'until:layer4' for a ResNet, 'until:blocks.5' for EfficientNet). "
                      f"Got {text!r} instead.")


def layer_names(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters, in parameter order: the values LAYER may take."""
    names: list[str] = []
    for parameter_name, _ in model.named_parameters():
        parts = parameter_name.split(".")[:-1]
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name not in names:
                names.append(name)
    return names


def apply_freeze(model: nn.Module, classifier: str, spec: FreezeSpec) -> list[str]:
    """Set `requires_grad` as `spec` says (the head `classifier` always trains); returns the frozen parameter names."""
    if spec.kind == "until":
        names = layer_names(model)
        if spec.first_trainable not in names:
            raise ConfigError(f"The layer {spec.first_trainable!r} of until:LAYER is not in this backbone."
                              f"{similar(spec.first_trainable, names)} Its top-level layers: "
                              f"{', '.join(n for n in names if '.' not in n)}.")
    trainable = spec.kind == "none"
    frozen = []
    for name, parameter in model.named_parameters():
        if spec.kind == "until" and _inside(name, spec.first_trainable):
            trainable = True
        is_head = _inside(name, classifier)
        parameter.requires_grad_(trainable or is_head)
        if not parameter.requires_grad:
            frozen.append(name)
    return frozen


def _inside(parameter_name: str, module_name: str) -> bool:
    return parameter_name.startswith(module_name + ".")


def parameter_groups(model: nn.Module, classifier: str, head_lr: float, backbone_lr: float) -> list[dict]:
    """Optimiser parameter groups: the head at `head_lr` first, then the trainable backbone at `backbone_lr`."""
    head, backbone = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (head if _inside(name, classifier) else backbone).append(parameter)
    groups = [{"params": head, "lr": head_lr, "name": "head"}]
    if backbone:
        groups.append({"params": backbone, "lr": backbone_lr, "name": "backbone"})
    return groups


def frozen_modules(model: nn.Module) -> list[nn.Module]:
    """The largest modules whose parameters are all frozen (each with at least one parameter)."""
    found: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        parameters = list(module.parameters())
        if parameters and not any(p.requires_grad for p in parameters):
            found.append(module)
            return
        for child in module.children():
            visit(child)

    visit(model)
    return found


@contextmanager
def frozen_in_eval(model: nn.Module, batchnorm: bool = False):
    """While active, the modules frozen on entry (and with `batchnorm`, every BatchNorm layer) run in eval mode.

    The Trainer switches the whole model to train mode at every epoch. Without
    this, BatchNorm layers of a frozen backbone would normalise with batch
    statistics and overwrite their running averages. With `batchnorm`, trainable
    BatchNorm layers keep learning their scale and shift but normalise with the
    pretrained statistics, as Keras' transfer-learning guide advises; that needs
    a small backbone learning rate (with Adam at 1e-3 EfficientNet-Lite0
    diverged on digits), so it is not the default.
    """
    fixed = frozen_modules(model)
    if batchnorm:
        fixed += [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def hook(module, args):
        if module.training:
            for part in fixed:
                part.eval()

    handle = model.register_forward_pre_hook(hook)
    try:
        yield model
    finally:
        handle.remove()
