"""Reading image files into float tensors, and resizing them for a model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.nn import functional as F

from cnnlab.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def read_image(path: str | os.PathLike, channels: int = 3) -> torch.Tensor:
    """The image at `path` as a float (C, H, W) tensor in [0, 1] with 1 (grey) or 3 (RGB) channels.

    Raises DataError naming the file when it is missing, truncated or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"The image {path} does not exist.")
    try:
        with Image.open(path) as image:
            image.load()
            image = image.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(f"The file {path} is not a readable image ({error.__class__.__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else 'unreadable'}).") from None
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy())


def resize(images: torch.Tensor, size: int | tuple[int, int], interpolation: str = "bilinear") -> torch.Tensor:
    """Resize a (N, C, H, W) or (C, H, W) batch whole (no crop) to `size`, antialiased, clamped to [0, 1]."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    single = images.dim() == 3
    batch = images[None] if single else images
    if tuple(batch.shape[-2:]) != size:
        mode = interpolation if interpolation in ("bilinear", "bicubic") else "bilinear"
        batch = F.interpolate(batch.float(), size=size, mode=mode, antialias=True, align_corners=False).clamp_(0, 1)
    return batch[0] if single else batch


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Repeat grey to RGB or average RGB to grey along dim -3, so any image fits any model."""
    have = images.shape[-3]
    if have == channels:
        return images
    if have == 1:
        return images.expand(*images.shape[:-3], channels, *images.shape[-2:]).contiguous()
    return images.mean(dim=-3, keepdim=True)
