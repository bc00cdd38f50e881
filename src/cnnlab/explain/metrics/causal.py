"""Deletion and insertion curves (Petsiuk et al., RISE, 2018) and the area under them.

Deletion removes the most relevant pixels first and watches the target's
probability fall: a faithful map makes it fall fast (small area). Insertion
starts from the image with every pixel removed and puts the most relevant
back first: a faithful map makes the probability rise fast (large area).
Pixels are changed in `steps` equal steps (all channels of a pixel
together); the curve has steps + 1 points, from 0 to all pixels changed,
and its area is the trapezoid rule over the fraction of pixels changed
(RISE's ``auc`` when the steps divide the pixels evenly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnlab.errors import ConfigError, invalid
from cnnlab.explain.base import Target, as_batch
from cnnlab.explain.metrics.fill import Fill, parse_fill
from cnnlab.explain.metrics.forward import predicted_targets, target_probabilities
from cnnlab.explain.metrics.order import pixel_counts, relevance_ranks
from cnnlab.explain.metrics.settings import check_steps


@dataclass
class Curve:
    """The target's probability per image at each fraction of pixels changed."""

    fractions: np.ndarray  # (K,) share of the pixels changed (deletion, insertion) or removed (ROAD)
    probabilities: np.ndarray  # (N, K)

    @property
    def area(self) -> np.ndarray:
        """Area under each image's curve by the trapezoid rule over `fractions`, (N,)."""
        return area(self.fractions, self.probabilities)

    @property
    def mean(self) -> np.ndarray:
        """Each image's mean over the points of its curve, (N,)."""
        return self.probabilities.mean(axis=1)


def area(fractions: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Trapezoid-rule area under `values` (..., K) over `fractions` (K,)."""
    widths = np.diff(np.asarray(fractions, dtype=np.float64))
    values = np.asarray(values, dtype=np.float64)
    return ((values[..., 1:] + values[..., :-1]) / 2 * widths).sum(axis=-1)


def deletion(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, target: Target = None, steps: int = 20,
             fill: str | Fill = "mean", seed: int = 0) -> Curve:
    """The deletion curve: most relevant pixels replaced by `fill` first (RISE deletes onto a constant)."""
    return _curve(model, images, maps, target, steps, parse_fill(fill, "deletion fill"), seed, insert=False)


def insertion(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, target: Target = None, steps: int = 20,
              fill: str | Fill = "blur", seed: int = 0) -> Curve:
    """The insertion curve: from the image all `fill` (RISE: blurred), most relevant pixels restored first."""
    return _curve(model, images, maps, target, steps, parse_fill(fill, "insertion fill"), seed, insert=True)


def check_maps(images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """`maps` as an (N, H, W) float tensor on the images' device, one per image at the images' resolution."""
    maps = torch.as_tensor(maps).detach()
    if maps.dim() == 2:
        maps = maps[None]
    expected = (images.shape[0], *images.shape[-2:])
    if tuple(maps.shape) != expected:
        raise ConfigError(invalid("'maps'", "the evaluation", f"one map per image at the input's resolution, "
                                  f"shape {expected}", tuple(maps.shape)))
    if not torch.isfinite(maps).all():
        raise ConfigError("The maps given to the evaluation hold NaN or infinite values.")
    return maps.to(images.device, torch.float32)


def _curve(model, images, maps, target, steps, fill: Fill, seed, insert: bool) -> Curve:
    x = as_batch(images, model)
    maps = check_maps(x, maps)
    steps = check_steps(steps)
    targets = predicted_targets(model, x, target)
    count, channels, height, width = x.shape
    pixels = height * width
    ranks = relevance_ranks(maps, seed).view(count, 1, height, width)
    removed = fill.substrate(x)
    start, finish = (removed, x) if insert else (x, removed)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    changed = torch.tensor(pixel_counts(fractions, pixels), device=x.device)
    points = steps + 1

    def make(jobs: torch.Tensor) -> torch.Tensor:
        image, point = jobs // points, jobs % points
        taken = ranks[image] < changed[point].view(-1, 1, 1, 1)
        return torch.where(taken, finish[image], start[image])

    image_of = torch.arange(count, device=x.device).repeat_interleave(points)
    scores = target_probabilities(model, count * points, make, image_of, targets, channels * pixels)
    return Curve(changed.cpu().numpy() / pixels, scores.view(count, points).cpu().numpy())
