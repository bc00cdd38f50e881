"""SmoothGrad, SmoothGrad-squared and VarGrad (Smilkov et al. 2017; Adebayo et al. 2018) over a gradient method.

Each sample adds Gaussian noise of standard deviation `noise` x (max - min of
the image) to the image, as the paper does, and takes the base method's
per-channel attributions there: |gradient| for saliency and guided (captum's
Saliency, abs=True), input x gradient for input-x-gradient. SmoothGrad is
their mean over samples, SmoothGrad-squared the mean of their squares,
VarGrad their variance: captum's NoiseTunnel with nt_type 'smoothgrad',
'smoothgrad_sq' and 'vargrad'. The map then reduces channels as the base
does: max for saliency and guided, sum for input-x-gradient.

The noise is drawn on the CPU from `seed` alone, sample by sample, and every
image in a batch gets the same noise pattern (scaled to its own range), so
an image's map is the same alone or in a batch and on any device.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import nn

from cnnlab.errors import ConfigError, unknown
from cnnlab.explain.base import Target, as_batch, borrowed
from cnnlab.explain.chunks import DEFAULT_BUDGET_MB, chunks, plan
from cnnlab.explain.methods.saliency import input_gradient
from cnnlab.explain.registry import Option, register_method


class Base(NamedTuple):
    attribute: Callable  # (model, noisy images, targets) -> (B, C, H, W)
    reduce: Callable  # (N, C, H, W) -> (N, H, W)


def _max(values: torch.Tensor) -> torch.Tensor:
    return values.amax(dim=1)


def _sum(values: torch.Tensor) -> torch.Tensor:
    return values.sum(dim=1)


BASES = {
    "saliency": Base(lambda model, x, targets: input_gradient(model, x, targets).abs(), _max),
    "guided": Base(lambda model, x, targets: input_gradient(model, x, targets, "guided").abs(), _max),
    "input-x-gradient": Base(lambda model, x, targets: x * input_gradient(model, x, targets), _sum),
}
KINDS = ("smoothgrad", "smoothgrad-squared", "vargrad")


def noise_samples(shape: torch.Size, samples: int, seed: int) -> torch.Tensor:
    """Standard normal noise, (samples, *shape), drawn on the CPU from `seed`: sample k is the same for any count."""
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randn(shape, generator=generator) for _ in range(samples)])


def noise_tunnel(model: nn.Module, images: torch.Tensor, target: Target = None, kind: str = "smoothgrad",
                 base: str = "saliency", samples: int = 32, noise: float = 0.15, seed: int = 0,
                 budget_mb: float = DEFAULT_BUDGET_MB) -> torch.Tensor:
    """The base's attributions over noisy copies, per channel, (N, C, H, W): their mean, mean square or variance."""
    if base not in BASES:
        raise ConfigError(unknown(f"base method of {kind}", base, BASES))
    x = as_batch(images, model)
    spread = noise * (x.flatten(1).amax(dim=1) - x.flatten(1).amin(dim=1))
    standard = noise_samples(x.shape[1:], int(samples), seed).to(x.device)
    total, total_squares = torch.zeros_like(x), torch.zeros_like(x)
    with borrowed(model):
        targets, size = plan(model, x, target, budget_mb)
        for image, sample in chunks(len(x), len(standard), size, x.device):
            noisy = x[image] + spread[image].view(-1, 1, 1, 1) * standard[sample]
            attributions = BASES[base].attribute(model, noisy, targets[image])
            total.index_add_(0, image, attributions)
            total_squares.index_add_(0, image, attributions * attributions)
    mean, mean_square = total / len(standard), total_squares / len(standard)
    if kind == "smoothgrad":
        return mean
    if kind == "smoothgrad-squared":
        return mean_square
    return (mean_square - mean * mean).clamp(min=0)  # clamp: rounding can leave -1e-9 where the variance is 0


OPTIONS = {"base": Option("saliency", "the gradient method smoothed: saliency, guided or input-x-gradient", str),
           "samples": Option(32, "noisy copies per image (the paper uses 50)", int, 1),
           "noise": Option(0.15, "noise standard deviation as a fraction of the image's max - min (the paper "
                           "suggests 0.1-0.2)", float, 0.0),
           "seed": Option(0, "seed of the noise", int),
           "budget_mb": Option(DEFAULT_BUDGET_MB, "memory for one forward + backward pass of a chunk of "
                               "(image, sample) pairs, in MiB", float, 0.001)}


def _map(kind: str):
    def compute(model: nn.Module, images: torch.Tensor, target: Target = None, base: str = "saliency",
                samples: int = 32, noise: float = 0.15, seed: int = 0,
                budget_mb: float = DEFAULT_BUDGET_MB) -> torch.Tensor:
        attributions = noise_tunnel(model, images, target, kind, base, samples, noise, seed, budget_mb)
        return BASES[base].reduce(attributions)

    compute.__name__ = compute.__qualname__ = kind.replace("-", "_")
    compute.__doc__ = f"{kind} maps, (N, H, W), channels reduced as the base method does."
    return compute


smoothgrad = register_method(
    "smoothgrad", "SmoothGrad: the base gradient map averaged over noisy copies (Smilkov et al.)",
    units="mean |d logit / d pixel| (of the base)", signed=True, percentile=99.0, slow=True, options=OPTIONS,
    reference="captum NoiseTunnel 'smoothgrad'")(_map("smoothgrad"))
smoothgrad_squared = register_method(
    "smoothgrad-squared", "SmoothGrad-squared: the mean square of the base's attributions over noisy copies",
    units="mean (d logit / d pixel)^2 (of the base)", percentile=99.0, slow=True, options=OPTIONS,
    reference="captum NoiseTunnel 'smoothgrad_sq'")(_map("smoothgrad-squared"))
vargrad = register_method(
    "vargrad", "VarGrad: the variance of the base's attributions over noisy copies (Adebayo et al.)",
    units="variance of d logit / d pixel (of the base)", percentile=99.0, slow=True, options=OPTIONS,
    reference="captum NoiseTunnel 'vargrad'")(_map("vargrad"))
