"""`LoadedModel`: a model ready to use, with its preprocessing, class names and input shape."""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from cnnlab.data.images import read_image, resize, to_channels
from cnnlab.data.preprocess import Preprocess


@dataclass
class LoadedModel:
    """A model ready to use: logits network, its preprocessing, class names and input shape."""

    model: nn.Module
    preprocess: Preprocess
    class_names: list[str]
    input_shape: tuple[int, int, int]
    interpolation: str = "bilinear"
    source: str = ""
    config: dict = field(default_factory=dict)

    @property
    def network(self) -> nn.Module:
        """Preprocessing and model as one module that takes [0, 1] images (its layers named ``model.*``)."""
        return nn.Sequential(OrderedDict(preprocess=self.preprocess, model=self.model)).eval()

    @property
    def device(self) -> torch.device:
        parameter = next(self.model.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Fit [0, 1] images of any size and channel count to the model's input shape (resized whole)."""
        channels, height, width = self.input_shape
        return resize(to_channels(images, channels), (height, width), self.interpolation)

    def load_images(self, paths: Sequence[str | os.PathLike]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Read image files: a prepared (N, C, H, W) batch and the originals at their own resolution."""
        originals = [read_image(p, 1 if self.input_shape[0] == 1 else 3) for p in paths]
        return torch.stack([self.prepare(o) for o in originals]), originals

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (on the CPU) for prepared [0, 1] images."""
        return self.network(images.to(self.device)).float().softmax(dim=-1).cpu()
