"""ROAD (Rong et al., 2022): remove a share of the pixels, most or least relevant first, and impute them.

Removing pixels by setting them to a constant tells the model where they
were (the mask's shape leaks the explanation); ROAD fills them by noisy
linear imputation instead (`imputation`), so the probability falls because
information is gone. For each percentage, the target's probability on the
imputed image: most relevant first (MoRF), a faithful map makes it low;
least relevant first (LeRF), a faithful map keeps it high. The score of
each is the mean over the percentages, as pytorch-grad-cam's
``ROADMostRelevantFirstAverage`` averages (over the change in the score;
here the probability itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from cnnlab.explain.base import Target, as_batch
from cnnlab.explain.metrics.causal import Curve, check_maps
from cnnlab.explain.metrics.forward import predicted_targets, target_probabilities
from cnnlab.explain.metrics.imputation import noisy_linear_imputation
from cnnlab.explain.metrics.order import pixel_counts, relevance_ranks
from cnnlab.explain.metrics.settings import PERCENTAGES, Settings, check_noise, check_percentages

NOISE = Settings.road_noise  # the authors' noise, in the model's input units


@dataclass
class RoadResult:
    most_relevant_first: Curve  # MoRF: lower is more faithful
    least_relevant_first: Curve  # LeRF: higher is more faithful


def road(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, target: Target = None,
         percentages: Sequence[float] = PERCENTAGES, noise: float = NOISE, seed: int = 0) -> RoadResult:
    """MoRF and LeRF curves: the target's probability with each percentage of pixels removed and imputed."""
    x = as_batch(images, model)
    maps = check_maps(x, maps)
    percentages = check_percentages(percentages)
    noise = check_noise(noise)
    targets = predicted_targets(model, x, target)
    count, channels, height, width = x.shape
    pixels = height * width
    ranks = relevance_ranks(maps, seed).view(count, height, width)
    removed_counts = torch.tensor(pixel_counts(np.array(percentages) / 100, pixels), device=x.device)
    generator = np.random.default_rng(seed)
    curves = {}
    for order in ("most", "least"):
        scores = []
        for index in range(count):
            if order == "most":
                removed = ranks[index] < removed_counts.view(-1, 1, 1)
            else:
                removed = ranks[index] >= pixels - removed_counts.view(-1, 1, 1)
            copies = x[index].expand(len(percentages), -1, -1, -1)
            imputed = noisy_linear_imputation(copies, removed, noise, generator)
            image_of = torch.full((len(percentages),), index, device=x.device)
            scores.append(target_probabilities(model, len(percentages), lambda jobs: imputed[jobs], image_of,
                                               targets, channels * pixels))
        fractions = removed_counts.cpu().numpy() / pixels
        curves[order] = Curve(fractions, torch.stack(scores).cpu().numpy())
    return RoadResult(curves["most"], curves["least"])
