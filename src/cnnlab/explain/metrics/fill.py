"""What a removed pixel becomes: the image blurred, the image's mean colour, or a constant.

RISE (Petsiuk et al., 2018) deletes onto a constant (zero in normalised
units, about the data set's mean colour) and inserts onto a blurred copy
(an 11x11 Gaussian kernel of sigma 5 px). Here ``blur:S`` blurs with a
Gaussian of sigma S px at the model's input resolution in a (2*round(S)+1)-px
kernel (RISE's kernel at S = 5), reflected at the edges where RISE pads
with zeros; ``mean`` is each image's own mean colour; a number is that
value in the model's input units ([0, 1] images in cnnlab).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from cnnlab.errors import ConfigError, invalid

DEFAULT_SIGMA = 5.0


@dataclass(frozen=True)
class Fill:
    """One way to fill removed pixels: kind "blur" (with `value` the sigma in px), "mean" or "constant"."""

    kind: str
    value: float = 0.0

    def __str__(self) -> str:
        return {"blur": f"blur:{self.value:g}", "mean": "mean"}.get(self.kind, f"{self.value:g}")

    def describe(self) -> str:
        """The fill in words, for tables and captions."""
        if self.kind == "blur":
            return f"Gaussian blur, sigma {self.value:g} px"
        return "the image's mean colour" if self.kind == "mean" else f"the constant {self.value:g}"

    def substrate(self, images: torch.Tensor) -> torch.Tensor:
        """What `images` (N, C, H, W) look like with every pixel removed."""
        if self.kind == "mean":
            return images.mean(dim=(2, 3), keepdim=True).expand_as(images).clone()
        if self.kind == "constant":
            return torch.full_like(images, self.value)
        radius = max(1, round(self.value))
        radius = min(radius, min(images.shape[-2:]) - 1)  # reflection needs a pad smaller than the image
        if radius < 1:
            return images.clone()
        return gaussian_blur(images, self.value, radius)


def gaussian_blur(images: torch.Tensor, sigma: float, radius: int) -> torch.Tensor:
    """`images` (N, C, H, W) convolved with a normalised Gaussian of `sigma` px over +-`radius` px, one axis at a
    time, reflected at the edges (torchvision's ``gaussian_blur``)."""
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, [radius] * 4, mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def parse_fill(text: str | float | Fill, what: str = "fill") -> Fill:
    """A `Fill` from ``blur``, ``blur:SIGMA``, ``mean`` or a number."""
    if isinstance(text, Fill):
        return text
    spec = str(text).strip().lower()
    expected = "'blur', 'blur:SIGMA' (px, > 0), 'mean' or a number in the model's input units"
    if spec == "mean":
        return Fill("mean")
    if spec == "blur" or spec.startswith("blur:"):
        try:
            sigma = float(spec.split(":", 1)[1]) if ":" in spec else DEFAULT_SIGMA
        except ValueError:
            raise ConfigError(invalid(f"'{what}'", "the evaluation", expected, text)) from None
        if not sigma > 0:
            raise ConfigError(invalid(f"'{what}'", "the evaluation", expected, text))
        return Fill("blur", sigma)
    try:
        value = float(spec)
    except ValueError:
        raise ConfigError(invalid(f"'{what}'", "the evaluation", expected, text)) from None
    if not math.isfinite(value):
        raise ConfigError(invalid(f"'{what}'", "the evaluation", expected, text))
    return Fill("constant", value)
