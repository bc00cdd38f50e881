"""Average Drop and Increase in Confidence (Chattopadhay et al., Grad-CAM++, 2018).

Each map is scaled to [0, 1] (minus its minimum, over its maximum; a
constant map becomes zeros, as pytorch-grad-cam's ``scale_cam_image``
makes it) and multiplied into its image, so only what the map shows is
left. With Y the target's probability on the image and O on the product:
Average Drop is the mean over images of max(0, Y - O) / Y x 100 (lower is
better), Increase in Confidence the share of images with O > Y x 100
(higher is better), as torchcam's ``ClassificationMetric`` defines them.
pytorch-grad-cam's ``DropInConfidence`` is max(0, Y - O) without the
division by Y. The product is taken in the units the model receives: for
a cnnlab network, [0, 1] images, so hidden pixels turn black; torchcam and
pytorch-grad-cam multiply the normalised tensor, so hidden pixels take the
normalisation's mean colour (the same thing when the model normalises
nothing, as the digits models do).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnlab.explain.base import Target, as_batch, targets_for
from cnnlab.explain.metrics.causal import check_maps
from cnnlab.explain.metrics.forward import probabilities


@dataclass
class ConfidenceResult:
    before: np.ndarray  # (N,) Y: the target's probability on the image
    after: np.ndarray  # (N,) O: on the image times its map

    @property
    def drop(self) -> np.ndarray:
        """Each image's drop in confidence, max(0, Y - O) / Y, in percent, (N,)."""
        return np.maximum(0.0, self.before - self.after) / self.before * 100

    @property
    def increase(self) -> np.ndarray:
        """100 where the confidence rose (O > Y), 0 elsewhere, (N,)."""
        return (self.after > self.before) * 100.0


def scaled(maps: torch.Tensor) -> torch.Tensor:
    """Each map minus its minimum, divided by its maximum: values in [0, 1]; a constant map becomes zeros."""
    flat = maps.flatten(1)
    shifted = flat - flat.min(dim=1, keepdim=True).values
    top = shifted.max(dim=1, keepdim=True).values
    return torch.where(top > 0, shifted / top.clamp_min(torch.finfo(flat.dtype).tiny), 0.0).view_as(maps)


def confidence_change(model: nn.Module, images: torch.Tensor, maps: torch.Tensor,
                      target: Target = None) -> ConfidenceResult:
    """Y and O for each image: the target's probability on the image and on the image times its scaled map."""
    x = as_batch(images, model)
    maps = check_maps(x, maps)
    before = probabilities(model, x)
    targets = targets_for(before, target)
    after = probabilities(model, x * scaled(maps)[:, None])
    pick = targets[:, None]
    return ConfidenceResult(before.gather(1, pick)[:, 0].double().cpu().numpy(),
                            after.gather(1, pick)[:, 0].double().cpu().numpy())
