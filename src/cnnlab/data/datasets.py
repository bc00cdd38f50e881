"""The two dataset kinds a data spec yields: images held in memory, and image files decoded on access.

Both carry `targets` (int64 labels, so splits can be stratified without
decoding anything) and `index` (each sample's position in the whole source, so
splits can be checked for overlap and predictions traced back to their origin).
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from torch.utils.data import Dataset

from cnnlab.data.images import read_image, resize

# Decoded file datasets smaller than this stay in memory after their first epoch.
CACHE_LIMIT_BYTES = 512 * 2**20


def _as_index(indices) -> torch.Tensor:
    return torch.as_tensor(indices, dtype=torch.int64).reshape(-1)


class ArrayDataset(Dataset):
    """Images `x` (N, C, H, W) float32 in [0, 1] with labels `y` (N,) int64."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} images but y has {len(y)} labels.")
        self.x = x.float().contiguous()
        self.y = torch.as_tensor(y, dtype=torch.int64)
        self.index = torch.arange(len(x)) if index is None else _as_index(index)

    @property
    def targets(self) -> torch.Tensor:
        return self.y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def subset(self, indices: Sequence[int] | torch.Tensor) -> "ArrayDataset":
        indices = _as_index(indices)
        return ArrayDataset(self.x[indices], self.y[indices], self.index[indices])


class FileDataset(Dataset):
    """Image files read on access, resized whole to `image_size`, as (C, H, W) tensors in [0, 1].

    Decoded tensors are kept in memory when the whole set fits in
    `CACHE_LIMIT_BYTES`; subsets share that cache.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], targets, image_size: int, channels: int = 3,
                 index: torch.Tensor | None = None, cache: dict | None = None):
        self.paths = [str(p) for p in paths]
        self.targets = torch.as_tensor(targets, dtype=torch.int64).reshape(-1)
        if len(self.paths) != len(self.targets):
            raise ValueError(f"{len(self.paths)} paths but {len(self.targets)} targets.")
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.index = torch.arange(len(self.paths)) if index is None else _as_index(index)
        if cache is None and len(self.paths) * self.channels * self.image_size**2 * 4 <= CACHE_LIMIT_BYTES:
            cache = {}
        self._cache = cache

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        path = self.paths[i]
        image = None if self._cache is None else self._cache.get(path)
        if image is None:
            image = resize(read_image(path, self.channels, self.image_size), self.image_size)
            if self._cache is not None:
                self._cache[path] = image
        return image, int(self.targets[i])

    def subset(self, indices: Sequence[int] | torch.Tensor) -> "FileDataset":
        indices = _as_index(indices)
        return FileDataset([self.paths[i] for i in indices.tolist()], self.targets[indices], self.image_size,
                           self.channels, self.index[indices], self._cache)

    def load(self, indices: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """Decode the images at `indices` (all by default) into one (N, C, H, W) tensor."""
        indices = range(len(self)) if indices is None else _as_index(indices).tolist()
        images = [self[i][0] for i in indices]
        if not images:
            return torch.empty(0, self.channels, self.image_size, self.image_size)
        return torch.stack(images)
