"""Deterministic preprocessing that travels with a model: the same in training, evaluation and explanation.

Images enter as float tensors in [0, 1], shape (N, C, H, W). `Preprocess` is an
`nn.Module`, so explanations can differentiate through it back to the pixels.
"""

from __future__ import annotations

import torch
from torch import nn


class Preprocess(nn.Module):
    """Samplewise centring/scaling, then featurewise (per-channel) normalisation, then ZCA whitening.

    Featurewise statistics and the ZCA matrix are fitted on the training split
    only (`fit`). The definitions are those of Keras 3's ImageDataGenerator:
    standard deviations are population ones (NumPy's ``std``, ddof 0), and
    ``eps`` = 1e-6 is added to them before dividing. Three choices differ, on
    purpose, and the tests compare with Keras accordingly:

    - ZCA centres each pixel (feature) on its training mean, the textbook
      definition (Bell & Sejnowski; Kessy et al. 2018): whitened training data
      then has exactly zero mean and identity covariance. Keras centres only
      per channel, and only with featurewise_center, so its output keeps a
      per-pixel mean and a covariance that is not the identity. On data that is
      already centred per pixel, the two matrices agree.
    - ZCA's epsilon goes inside the square root, W = U diag(1 / sqrt(lambda +
      eps)) U^T, as in Keras 2 and the literature: a direction the training data
      never varies in (a pixel always black) is scaled by at most 1 / sqrt(eps)
      = 1000. Keras 3 adds it to sqrt(lambda) instead, which scales such a
      direction by up to sqrt(N) / eps, a million times more.
    - Featurewise statistics are fitted on the samplewise-normalised images,
      the ones they are applied to; Keras fits them on the raw images. The two
      agree unless samplewise and featurewise options are combined.
    """

    def __init__(self, mean=None, std=None, samplewise_center: bool = False, samplewise_std: bool = False,
                 zca: torch.Tensor | None = None, zca_mean: torch.Tensor | None = None, eps: float = 1e-6):
        super().__init__()
        self.samplewise_center = samplewise_center
        self.samplewise_std = samplewise_std
        self.eps = eps
        self.register_buffer("mean", None if mean is None else torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", None if std is None else torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("zca", zca)
        self.register_buffer("zca_mean", zca_mean)

    @property
    def is_identity(self) -> bool:
        return not (self.samplewise_center or self.samplewise_std) and self.mean is None and self.zca is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.samplewise_center:
            x = x - x.mean(dim=(1, 2, 3), keepdim=True)
        if self.samplewise_std:
            x = x / (x.std(dim=(1, 2, 3), keepdim=True, correction=0) + self.eps)
        if self.mean is not None:
            x = (x - self.mean.to(x.dtype)) / (self.std.to(x.dtype) + self.eps)
        if self.zca is not None:
            flat = x.flatten(1) - self.zca_mean.to(x.dtype)
            x = (flat @ self.zca.to(x.dtype)).view_as(x)
        return x

    def fit(self, images: torch.Tensor, featurewise_center: bool = False, featurewise_std: bool = False,
            zca_whitening: bool = False, zca_epsilon: float = 1e-6) -> "Preprocess":
        """Fit per-channel mean/std and the ZCA matrix on (N, C, H, W) training images (see the class docstring)."""
        x = images.float()
        if self.samplewise_center or self.samplewise_std:
            x = Preprocess(samplewise_center=self.samplewise_center, samplewise_std=self.samplewise_std)(x)
        if featurewise_center or featurewise_std:
            # summed in float64: a float32 sum over millions of pixels drifts in the fourth digit
            wide = x.double()
            mean = wide.mean(dim=(0, 2, 3)) if featurewise_center else torch.zeros(x.shape[1], dtype=torch.float64)
            std = wide.std(dim=(0, 2, 3), correction=0) if featurewise_std else torch.ones(x.shape[1],
                                                                                            dtype=torch.float64)
            self.mean, self.std = mean.float().view(-1, 1, 1), std.float().view(-1, 1, 1)
            x = (x - self.mean) / (self.std + self.eps)
        if zca_whitening:
            flat = x.flatten(1).double()
            centre = flat.mean(dim=0)
            flat = flat - centre
            sigma = flat.T @ flat / flat.shape[0]
            eigenvalues, eigenvectors = torch.linalg.eigh(sigma)
            scale = 1.0 / torch.sqrt(eigenvalues.clamp(min=0) + zca_epsilon)
            self.zca = ((eigenvectors * scale) @ eigenvectors.T).float()
            self.zca_mean = centre.float()
        return self

    def config(self) -> dict:
        """The JSON-able part (the ZCA matrix is stored with the weights)."""
        return {"mean": None if self.mean is None else self.mean.flatten().tolist(),
                "std": None if self.std is None else self.std.flatten().tolist(),
                "samplewise_center": self.samplewise_center, "samplewise_std": self.samplewise_std}

    @classmethod
    def from_config(cls, config: dict, tensors: dict | None = None) -> "Preprocess":
        tensors = tensors or {}
        return cls(config.get("mean"), config.get("std"), config.get("samplewise_center", False),
                   config.get("samplewise_std", False), tensors.get("zca"), tensors.get("zca_mean"))
