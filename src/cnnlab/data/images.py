"""Reading image files into float tensors by their real range, within a pixel budget, and resizing them."""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.nn import functional as F

from cnnlab.data.paths import printable
from cnnlab.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# The most pixels decoded for one image (8192 x 8192): below PIL's own decompression-bomb warning
# (89 megapixels), and 805 MB as RGB float32. A small PNG can declare a 100-megapixel canvas.
MAX_PIXELS = 8192 * 8192
# Float images may overshoot [0, 1] this much (resampling ringing) and are clipped; beyond it they are refused.
FLOAT_SLACK = 0.01
# PIL warns from 89 megapixels on; every image that big is refused here with a message of its own.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"))


class ImageError(DataError):
    """An image file that cannot be used; `reason` says why without naming the file (for lists of skipped files)."""

    def __init__(self, label: str, reason: str, subject: str = "image"):
        super().__init__(f"The {subject} {label} is {reason}.")
        self.reason = reason


def special_file_kind(mode: int) -> str | None:
    """What a non-regular file is ('a FIFO (named pipe)', 'a socket', ...) from its st_mode; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "not a regular file")


def read_image(path: str | os.PathLike, channels: int = 3, size: int | None = None) -> torch.Tensor:
    """The image at `path` as a float (C, H, W) tensor in [0, 1] with 1 (grey) or 3 (RGB) channels.

    `size` is the side the caller will resize to: a JPEG larger than that is
    decoded at a reduced scale (PIL's draft mode), never smaller than `size`.
    See `decode_image` for how each pixel format is converted. Raises
    DataError naming the file when it is missing, not a regular file (a FIFO
    is never opened), over the pixel budget, truncated or not an image.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:
        raise DataError(f"The image {printable(path)} does not exist.") from None
    kind = special_file_kind(mode)
    if kind:
        raise ImageError(printable(path), f"{kind}, not an image file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(printable(path), f"unreadable ({error.strerror or error})") from None
    return decode_image(data, path, channels, size)


def decode_image(data: bytes, name: str | os.PathLike, channels: int = 3, size: int | None = None) -> torch.Tensor:
    """Decode the bytes of an image file (`name` is for messages), as `read_image` describes.

    Pixel formats are scaled by their real range: 8-bit and palette images by
    255 (a palette through its colours), 16-bit by 65535, non-negative 32-bit
    integers by 2**31 - 1 (as skimage's img_as_float), and float images keep
    their values, which must lie in [0, 1]: an overshoot up to FLOAT_SLACK is
    clipped, anything beyond (or NaN, or a negative integer) is refused, since
    no scale can be guessed for it. Alpha is dropped.
    """
    label = printable(name)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if size is not None and image.format == "JPEG":
                image.draft(image.mode, (size, size))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(label, too_many_pixels(width, height))
            image.load()
            array = _unit_range(image, label, channels)
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(label, too_many_pixels(*_declared_size(data))) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as error:
        detail = str(error).splitlines()[0].split(" <_io.")[0] if str(error) else "unreadable"  # no object reprs
        raise ImageError(label, f"not a readable image ({error.__class__.__name__}: {detail})", "file") from None
    tensor = torch.from_numpy(np.ascontiguousarray(array[None] if array.ndim == 2 else array.transpose(2, 0, 1)))
    return to_channels(tensor, channels)


def too_many_pixels(width: int, height: int) -> str:
    return (f"{width}x{height} pixels ({width * height / 1e6:.1f} megapixels), over the budget of "
            f"{MAX_PIXELS / 1e6:.1f} megapixels per image; shrink it before use")


def _declared_size(data: bytes) -> tuple[int, int]:
    """The size a file's header declares, read with PIL's bomb check off (nothing is decoded)."""
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _unit_range(image: Image.Image, label: str, channels: int) -> np.ndarray:
    """(H, W) or (H, W, 3) float32 in [0, 1] from a loaded PIL image, scaled by its pixel format's range.

    Single-band formats beyond 8 bits come back grey; 8-bit, palette and
    multi-band ones through PIL's convert to 'L' (for `channels` 1) or 'RGB'.
    """
    if image.mode in _SIXTEEN_BIT_MODES:
        return np.asarray(image).astype(np.float32) / np.float32(65535)
    if image.mode == "I":
        values = np.asarray(image)
        if values.size and values.min() < 0:
            raise ImageError(label, f"made of negative integers (down to {values.min()}); cnnlab reads integer "
                                    f"images as intensities from 0, so rescale it to unsigned values")
        bits = 16 if image.format == "PNG" else _tiff_bits(image)
        return (values / float(2**bits - 1 if bits <= 16 else 2**31 - 1)).astype(np.float32)
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if not (np.isfinite(low) and np.isfinite(high)) or low < -FLOAT_SLACK or high > 1 + FLOAT_SLACK:
            raise ImageError(label, f"made of float values in [{low:g}, {high:g}]; cnnlab reads float images as "
                                    f"intensities in [0, 1], so rescale it to [0, 1]")
        return np.clip(values, 0.0, 1.0)
    return np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / np.float32(255)


def _tiff_bits(image: Image.Image) -> int:
    bits = getattr(image, "tag_v2", {}).get(258, (32,))
    return int(bits[0] if isinstance(bits, tuple) else bits)


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
