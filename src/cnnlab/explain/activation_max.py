"""Activation maximisation: the input a network finds most typical of a class, or most exciting to a channel.

Gradient ascent on the input from faint noise, with the regularisers of
keras-vis and Yosinski et al.: random jitter each step, an L2 penalty towards
the middle of the input range, total variation, an occasional Gaussian blur,
and clipping to the input range.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import ConfigError, ModelError, invalid
from cnnlab.explain.base import borrowed, device_of, find_layer
from cnnlab.explain.hooks import Hooks
from cnnlab.progress import progress


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels, per image, (N,)."""
    return ((x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3))
            + (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3)))


def activation_max(model: nn.Module, targets: Sequence[int], input_shape: Sequence[int], layer: str | None = None,
                   steps: int = 200, lr: float = 0.05, jitter: int = 1, l2: float = 0.5, tv: float = 2.0,
                   blur_every: int = 4, blur_sigma: float = 0.5, input_range: tuple[float, float] = (0.0, 1.0),
                   seed: int = 0) -> torch.Tensor:
    """Inputs, (len(targets), C, H, W), that maximise each target.

    A target is a class (the pre-softmax logit) or, with `layer`, a channel of
    that layer's output (its spatial mean). Penalties are per image: `l2`
    times the mean squared distance from the middle of `input_range`, `tv`
    times the total variation, both against a score of order one.
    """
    low, high = map(float, input_range)
    if not high > low:
        raise ConfigError(invalid("'input_range'", "activation maximisation", "(low, high) with low < high",
                                  input_range))
    targets = torch.as_tensor(list(targets), dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    middle, span = (low + high) / 2, high - low
    start = middle + 0.05 * span * torch.randn(len(targets), *input_shape, generator=generator)
    x = start.to(device_of(model)).requires_grad_()
    optimiser = torch.optim.Adam([x], lr=lr * span)
    module = find_layer(model, layer)[1] if layer else None
    with borrowed(model), Hooks() as hooks:
        capture = hooks.capture(module, cut=False) if module is not None else None
        for step in progress(range(steps), desc="activation maximisation"):
            shift = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist() if jitter else [0, 0]
            logits = model(torch.roll(x, shifts=shift, dims=(2, 3)))
            scores = _scores(logits if capture is None else capture.value, targets.to(x.device), layer)
            penalty = l2 * ((x - middle) / span).pow(2).mean(dim=(1, 2, 3)) + tv * total_variation(x) / span
            optimiser.zero_grad()
            (penalty - scores).sum().backward()
            optimiser.step()
            with torch.no_grad():
                if blur_every and (step + 1) % blur_every == 0 and step + 1 < steps:
                    x.copy_(gaussian_blur(x, blur_sigma))
                x.clamp_(low, high)
    return x.detach()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Each channel blurred by a 3x3 Gaussian of width `sigma`, edges replicated."""
    taps = torch.exp(-torch.tensor([1.0, 0.0, 1.0], device=x.device) / (2 * sigma**2))
    kernel = (taps[:, None] * taps[None, :] / taps.sum() ** 2).to(x.dtype).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])


def _scores(output: torch.Tensor, targets: torch.Tensor, layer: str | None) -> torch.Tensor:
    if targets.numel() and not 0 <= int(targets.min()) <= int(targets.max()) < output.shape[1]:
        what = f"a channel of layer {layer!r}" if layer else "a class"
        raise ModelError(invalid("target", "activation maximisation", f"{what}: 0..{output.shape[1] - 1}",
                                 [int(t) for t in targets if not 0 <= int(t) < output.shape[1]][0]))
    chosen = output[torch.arange(len(targets)), targets]
    return chosen.flatten(1).mean(dim=1) if chosen.dim() > 1 else chosen
