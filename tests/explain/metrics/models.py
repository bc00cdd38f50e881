"""Constructed models whose answers are known, and the maps that explain them perfectly or not at all."""

from __future__ import annotations

import math

import torch
from torch import nn

SIDE = 16  # 256 pixels


class RegionModel(nn.Module):
    """Two classes: logit 0 = `scale` x the mean of channel 0 over `region`, minus `against` x its mean over
    `other`; logit 1 = 0. So p(class 0) = sigmoid(logit 0)."""

    def __init__(self, region: torch.Tensor, scale: float = 4.0, other: torch.Tensor | None = None,
                 against: float = 0.0):
        super().__init__()
        self.register_buffer("region", region.float() / region.float().sum())
        self.register_buffer("other", torch.zeros_like(self.region) if other is None
                             else other.float() / other.float().sum())
        self.scale, self.against = scale, against

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x[:, 0]
        logit = self.scale * (first * self.region).sum(dim=(1, 2)) - self.against * (first * self.other).sum(dim=(1, 2))
        return torch.stack([logit, torch.zeros_like(logit)], dim=1)


def corner(rows: int = 8, cols: int = 8, side: int = SIDE) -> torch.Tensor:
    """A (side, side) bool mask of the top-left rows x cols pixels."""
    mask = torch.zeros(side, side, dtype=torch.bool)
    mask[:rows, :cols] = True
    return mask


def sigmoid(value: float) -> float:
    return 1 / (1 + math.exp(-value))
