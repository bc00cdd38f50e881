"""The model-randomisation sanity check (Adebayo et al., 2018): does the map change when the model does?

The model's parameterised layers are re-initialised from the top (the
output) down, cascading: stage k has the top k layers re-initialised, on a
deep copy, so the model itself is left as found. At each stage the map is
computed again for the same target and compared with the trained model's
map by Spearman's rank correlation. A map that explains the model decorrelates
(low correlation passes); an edge detector stays put (guided backprop barely
notices a re-initialised classifier). Layers are the modules with a
``reset_parameters`` and weights of their own, in the order the model
registers them, as Quantus' ``MPRT`` takes them; each layer's new weights
are drawn after ``torch.manual_seed(seed + 1)``, as Quantus draws them, but
inside a forked RNG, so the caller's random state is untouched. The score
is the mean correlation over the stages, Quantus'
``return_average_correlation``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from cnnlab.errors import ModelError
from cnnlab.explain.base import Target, as_batch, device_of
from cnnlab.explain.metrics.forward import explain, predicted_targets
from cnnlab.explain.metrics.settings import Settings, check_stages

STAGES = Settings.stages


@dataclass
class RandomisationResult:
    layers: list[str]  # the resettable layers, top first
    counts: list[int]  # stage s re-initialised layers[:counts[s]]
    correlations: np.ndarray  # (N, stages) Spearman correlation with the trained map

    @property
    def mean(self) -> np.ndarray:
        """Each image's correlation averaged over the stages, (N,)."""
        return self.correlations.mean(axis=1)


def resettable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules that `reset_parameters` re-initialises, top (last registered) first."""
    layers = [(name, module) for name, module in model.named_modules()
              if hasattr(module, "reset_parameters") and (next(module.parameters(recurse=False), None) is not None
                                                          or next(module.buffers(recurse=False), None) is not None)]
    return layers[::-1]


def stage_counts(layers: int, stages: int = STAGES) -> list[int]:
    """How many top layers each stage re-initialises: every count when there are few layers, else spaced
    geometrically from the top layer alone to all of them (the top layers matter most)."""
    check_stages(stages)
    if layers <= stages:
        return list(range(1, layers + 1))
    if stages == 1:
        return [1]
    return sorted({int(round(layers ** (i / (stages - 1)))) for i in range(stages)})


def cascade(model: nn.Module, counts: list[int], seed: int = 0) -> Iterator[tuple[list[str], nn.Module]]:
    """For each count, the names re-initialised so far and one deep copy of `model` with its top `count`
    layers re-initialised; the same copy goes on to the next stage (cascading)."""
    twin = copy.deepcopy(model)
    layers = resettable_layers(twin)
    device = device_of(model)
    done = 0
    for count in counts:
        for name, module in layers[done:count]:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(seed + 1)  # as Quantus seeds it
                module.reset_parameters()
        done = count
        yield [name for name, _ in layers[:count]], twin


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation of each row of `a` with the same row of `b` (ties take their mean rank).

    A constant row of `b` keeps nothing of `a`'s order: 0; a constant row of
    `a` has no order to keep: NaN.
    """
    a, b = np.asarray(a, np.float64).reshape(len(a), -1), np.asarray(b, np.float64).reshape(len(b), -1)
    ranks_a, ranks_b = rankdata(a, axis=1), rankdata(b, axis=1)
    ranks_a -= ranks_a.mean(axis=1, keepdims=True)
    ranks_b -= ranks_b.mean(axis=1, keepdims=True)
    norm = np.sqrt((ranks_a**2).sum(axis=1) * (ranks_b**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = (ranks_a * ranks_b).sum(axis=1) / norm
    correlation[(np.ptp(b, axis=1) == 0) & (np.ptp(a, axis=1) > 0)] = 0.0
    correlation[np.ptp(a, axis=1) == 0] = np.nan
    return correlation


def randomisation(model: nn.Module, images: torch.Tensor, method: Callable[..., torch.Tensor], target: Target = None,
                  stages: int = STAGES, seed: int = 0, options: dict | None = None,
                  trained_maps: torch.Tensor | None = None) -> RandomisationResult:
    """Rank correlation of `method`'s maps on the trained model and on the cascade of re-initialised copies.

    `trained_maps` saves recomputing the trained model's maps when the caller has them.
    """
    x = as_batch(images, model)
    targets = predicted_targets(model, x, target)
    layers = [name for name, _ in resettable_layers(model)]
    if not layers:
        raise ModelError(f"The model {type(model).__name__} has no layer with parameters to re-initialise.")
    counts = stage_counts(len(layers), stages)
    trained = explain(method, model, x, targets, options) if trained_maps is None else trained_maps
    trained = trained.detach().cpu().flatten(1).numpy()
    correlations = [spearman(trained, explain(method, twin, x, targets, options).cpu().flatten(1).numpy())
                    for _, twin in cascade(model, counts, seed)]
    return RandomisationResult(layers, counts, np.stack(correlations, axis=1))
