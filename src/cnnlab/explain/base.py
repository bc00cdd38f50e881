"""The fixed sequence every explanation shares: borrow the model, run it, pick targets, put the model back.

A method module supplies only the step that differs (which backward rule,
which layer, how to combine). Maps are float tensors, one per image:
(N, H, W) at the input's resolution.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import ConfigError, ModelError, invalid, similar
from cnnlab.explain.layers import ACTIVATIONS, SEPARATOR, ActivatedOutput, default_layer, split_name

Target = int | Sequence[int] | torch.Tensor | None


@contextmanager
def borrowed(model: nn.Module):
    """Run `model` in eval mode with its parameters frozen; restore both exactly afterwards, also on error.

    Frozen parameters mean the forward pass records only what the
    explanation differentiates, and no ``.grad`` is ever written.
    """
    was_training = {module: module.training for module in model.modules()}
    requires_grad = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for parameter, _ in requires_grad:
            parameter.requires_grad_(False)
        yield model
    finally:
        for parameter, flag in requires_grad:
            parameter.requires_grad_(flag)
        for module, flag in was_training.items():
            module.training = flag


def device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def targets_for(logits: torch.Tensor, target: Target) -> torch.Tensor:
    """One class index per image: `target` (an int, or one per image) or, when None, the predicted class."""
    count, classes = logits.shape[0], logits.shape[-1]
    if target is None:
        return logits.argmax(dim=-1)
    indices = torch.as_tensor(target, dtype=torch.long, device=logits.device).flatten()
    if indices.numel() == 1:
        indices = indices.expand(count)
    if indices.numel() != count:
        raise ConfigError(invalid("'target'", "the explanation", f"one class or {count} classes (one per image)",
                                  indices.tolist()))
    bad = [int(i) for i in indices if not 0 <= int(i) < classes]
    if bad:
        raise ConfigError(invalid("'target'", "the explanation", f"a class index in [0, {classes - 1}]", bad[0]))
    return indices


def target_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The summed pre-softmax scores of the targets; each image's gradient is its own (eval mode)."""
    return logits.gather(1, targets[:, None]).sum()


def layer_names(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_modules() if name]


def find_layer(model: nn.Module, name: str | None, images: torch.Tensor | None = None) -> tuple[str, nn.Module]:
    """The layer called `name` (``model.`` may be left off) and its module, or when `name` is None the last
    spatial feature map after its activation, found by tracing `images` (`cnnlab.explain.layers`).

    A name ``SOURCE+ACTIVATION`` (a functional activation applied to a module's
    output) gives an `ActivatedOutput`, which takes forward hooks as a module does.
    """
    if name is None:
        name = default_layer(model, images)
    source, activation = split_name(name)
    modules = dict(model.named_modules())
    for candidate in (source, f"model.{source}"):
        if candidate in modules and candidate:
            if activation is None:
                return candidate, modules[candidate]
            if activation not in ACTIVATIONS:
                raise ModelError(f"Unknown activation {activation!r} in layer {name!r}."
                                 f"{similar(activation, ACTIVATIONS)}")
            return f"{candidate}{SEPARATOR}{activation}", ActivatedOutput(model, modules[candidate], activation)
    short = [n[len("model."):] if n.startswith("model.") else n for n in layer_names(model)]
    raise ModelError(f"Unknown layer {source!r}.{similar(source, short)} "
                     f"The model's layers are listed by 'cnnlab summary MODEL'.")


def upsample(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(N, h, w) maps resized bilinearly to `size` (H, W), as captum and pytorch-grad-cam do."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def as_batch(images: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Images as a detached float (N, C, H, W) batch on the model's device."""
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4:
        raise ConfigError(invalid("'images'", "the explanation", "a (N, C, H, W) or (C, H, W) tensor",
                                  tuple(images.shape)))
    return images.detach().to(device_of(model), torch.float32)
