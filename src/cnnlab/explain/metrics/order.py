"""The order in which the perturbation metrics take pixels: most relevant first, ties in a seeded random order."""

from __future__ import annotations

import torch


def relevance_ranks(maps: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Each pixel's place in its map's order, (N, H*W): 0 for the largest value, H*W - 1 for the smallest.

    Pixels of equal value (Grad-CAM's zeros, a flat patch) are taken in a
    random order drawn from `seed`, not row by row, so that ties do not
    favour the top of the image.
    """
    flat = maps.detach().flatten(1).float()
    shuffle = torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(seed)).to(flat.device)
    order = shuffle[flat[:, shuffle].argsort(dim=1, descending=True, stable=True)]
    places = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, places)


def pixel_counts(fractions, pixels: int) -> list[int]:
    """How many of `pixels` each fraction in [0, 1] takes, rounded to the nearest pixel."""
    return [int(round(float(f) * pixels)) for f in fractions]
