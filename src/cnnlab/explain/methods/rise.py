"""RISE (Petsiuk et al. 2018): the target's probability averaged over random masks, weighted by each mask.

saliency = sum_m P(target | image * mask_m) mask_m / (masks * p). Each mask
is a `cells` x `cells` grid of cells kept with probability `p`, upsampled
bilinearly to (cells + 1) x the cell size and cropped to the image at a
random shift of less than one cell, as the authors' code does (torch's
bilinear resize instead of skimage's). Forward passes only: the model may be
any function of the image. The masks come from `seed` alone and are shared
by every image, so an image's map is the same alone or in a batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import ConfigError, invalid
from cnnlab.explain.base import Target, as_batch, borrowed
from cnnlab.explain.chunks import DEFAULT_BUDGET_MB, chunks, plan
from cnnlab.explain.registry import Option, register_method


def mask_grids(masks: int, cells: int, p: float, size: tuple[int, int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept cells, (masks, cells, cells) of 0 and 1, and each mask's shift (row, column) in pixels."""
    if not 0 < p <= 1:
        raise ConfigError(invalid("'p' option", "method 'rise'", "a probability in (0, 1]", p))
    generator = torch.Generator().manual_seed(seed)
    grids = (torch.rand(masks, cells, cells, generator=generator) < p).float()
    cell = [math.ceil(side / cells) for side in size]
    shifts = torch.stack([torch.randint(c, (masks,), generator=generator) for c in cell], dim=1)
    return grids, shifts


def upsampled(grids: torch.Tensor, shifts: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Masks at the image's `size`, (masks, H, W): each grid resized bilinearly and cropped at its shift."""
    cells = grids.shape[-1]
    large = [(cells + 1) * math.ceil(side / cells) for side in size]
    # Clamped: bilinear weights can sum to 1 + 1e-7, and a mask is a fraction of the pixel kept.
    smooth = F.interpolate(grids[:, None], size=large, mode="bilinear", align_corners=False)[:, 0].clamp(0, 1)
    return torch.stack([s[r:r + size[0], c:c + size[1]] for s, (r, c) in zip(smooth, shifts.tolist())])


def rise_masks(masks: int = 1000, cells: int = 7, p: float = 0.5, size: tuple[int, int] = (224, 224),
               seed: int = 0) -> torch.Tensor:
    """Every mask `rise` uses for an image of `size`, (masks, H, W), values in [0, 1]."""
    return upsampled(*mask_grids(masks, cells, p, size, seed), size)


@register_method("rise", "RISE: the target's probability over random masks, averaged with each mask as weight "
                 "(Petsiuk et al.)", units="probability of the target when the pixel is seen", gradients=False,
                 slow=True, reference="the RISE formula (Petsiuk et al.)",
                 options={"masks": Option(1000, "random masks per image (the paper uses 4000-8000; 1000 keeps a "
                                          "CPU at seconds per image)", int, 1),
                          "cells": Option(7, "mask grid cells per side", int, 1),
                          "p": Option(0.5, "probability that a cell is kept", float, 0.0),
                          "seed": Option(0, "seed of the masks", int),
                          "budget_mb": Option(DEFAULT_BUDGET_MB, "memory for one forward pass of a chunk of "
                                              "(image, mask) pairs, in MiB", float, 0.001)})
@torch.no_grad()
def rise(model: nn.Module, images: torch.Tensor, target: Target = None, masks: int = 1000, cells: int = 7,
         p: float = 0.5, seed: int = 0, budget_mb: float = DEFAULT_BUDGET_MB) -> torch.Tensor:
    """RISE maps, (N, H, W): the target's mean softmax probability over the masks that show each pixel."""
    x = as_batch(images, model)
    size = tuple(x.shape[-2:])
    grids, shifts = mask_grids(int(masks), int(cells), p, size, seed)
    total = torch.zeros(len(x), *size, device=x.device)
    with borrowed(model):
        targets, per_pass = plan(model, x, target, budget_mb)
        for image, mask in chunks(len(x), len(grids), per_pass, x.device):
            first, last = int(mask[0]), int(mask[-1]) + 1  # repeat-major: the chunk's masks are consecutive
            made = upsampled(grids[first:last], shifts[first:last], size).to(x.device)[mask - first]
            probability = model(x[image] * made[:, None]).float().softmax(dim=-1)
            total.index_add_(0, image, probability.gather(1, targets[image][:, None])[:, :, None] * made)
    return total / (len(grids) * p)
