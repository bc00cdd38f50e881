"""Uploaded bytes to image tensors and back: formats allowed, a pixel budget, PNG and .npy encodings.

Only the bytes of an upload are read, in memory; its file name is never used.
Pillow is asked for a few raster formats only (no EPS, which would start
Ghostscript, nor any other plugin), and the size in the header is checked
against the pixel budget before a single pixel is decoded.
"""

from __future__ import annotations

import base64
import io
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnlab.errors import CnnlabError

FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
MAX_PIXELS = 50_000_000  # phone cameras give 12-48 megapixels; a decompression bomb claims far more
WORKING_SIDE = 2048  # larger uploads are reduced to this longest side first: the model sees 224 or less
DISPLAY_SIDE = 512  # longest side of the images and maps the page shows


class NotAnImage(CnnlabError, ValueError):
    """The upload is not an image in one of the allowed formats (HTTP 415)."""


class TooManyPixels(CnnlabError, ValueError):
    """The image's header claims more pixels than the budget (HTTP 400)."""


def open_image(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The image in `data`, header read and size checked, pixels not yet decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise TooManyPixels(f"The image has more than {max_pixels:,} pixels; scale it down.") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise NotAnImage(f"The upload is not an image; send a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} "
                             f"file.") from None
    width, height = image.size
    if width * height > max_pixels:
        raise TooManyPixels(f"The image is {width}x{height} ({width * height:,} pixels); the limit is "
                            f"{max_pixels:,} pixels, so scale it down.")
    if width < 1 or height < 1:
        raise NotAnImage(f"The image is {width}x{height}; it has no pixels.")
    return image


def decode(data: bytes, channels: int, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """The upload as a float (C, H, W) tensor in [0, 1], upright (EXIF), grey or RGB as `read_image` makes it,
    reduced to `WORKING_SIDE` on its longest side when larger."""
    image = open_image(data, max_pixels)
    mode = "L" if channels == 1 else "RGB"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's notes on odd palettes or EXIF are not the user's problem
        try:
            image.draft(mode, (WORKING_SIDE, WORKING_SIDE))  # JPEG: decode at a reduced scale, never below the side
            image.load()
            image = ImageOps.exif_transpose(image)
            image = image.convert(mode)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise NotAnImage(f"The image cannot be decoded ({error.__class__.__name__}: "
                             f"{(str(error).splitlines() or ['damaged'])[0]}); it is truncated or damaged.") from None
    if max(image.size) > WORKING_SIDE:
        image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy())


def display_size(height: int, width: int, side: int = DISPLAY_SIDE) -> tuple[int, int]:
    """(H, W) scaled down to fit `side` on the longest edge, never up."""
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def png(picture: np.ndarray) -> bytes:
    """An (H, W, 3) or (H, W) uint8 array as PNG bytes (fast compression: the page is on the same machine)."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def data_url(png_bytes: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """A (C, H, W) [0, 1] tensor as an (H, W) or (H, W, 3) uint8 array."""
    array = (image.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
