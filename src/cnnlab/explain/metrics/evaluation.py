"""`evaluate`: every chosen metric for every method on one model and one batch of images."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from cnnlab.errors import ConfigError, invalid
from cnnlab.explain.base import Target, as_batch, upsample
from cnnlab.explain.metrics.confidence import confidence_change
from cnnlab.explain.metrics.causal import deletion, insertion
from cnnlab.explain.metrics.forward import explain, predicted_targets
from cnnlab.explain.metrics.pointing import pointing_game
from cnnlab.explain.metrics.model_randomisation import randomisation
from cnnlab.explain.metrics.remove_and_debias import road
from cnnlab.explain.metrics.settings import Settings, metric_names
from cnnlab.explain.metrics.table import Faithfulness
from cnnlab.explain.registry import Method, get_method


def evaluate(model: nn.Module, images: torch.Tensor, methods: str | Sequence[str | Method] = "gradcam",
             target: Target = None, metrics: str | Sequence[str] | None = "all", settings: Settings | None = None,
             method_options: dict[str, dict] | None = None, regions: Sequence[np.ndarray | None] | None = None,
             names: Sequence[str] | None = None, print_fn: Callable[[str], None] | None = None,
             **changes) -> Faithfulness:
    """Score each method's maps of `images` (N, C, H, W) for `target` (default: the predicted classes).

    `settings` (or keyword changes to the defaults, e.g. ``steps=10``) tune
    the metrics; `method_options` maps a method's name to its options
    (``{"gradcam": {"layer": "conv2"}}``); `regions` gives each image's
    object mask (H0, W0) at its own resolution for the pointing game (maps
    are resized bilinearly to it), None for images without one.
    """
    settings = replace(settings or Settings(), **changes)
    chosen = metric_names(metrics, regions is not None)
    settings.check(chosen)
    methods = [m if isinstance(m, Method) else get_method(str(m).strip())
               for m in (methods.split(",") if isinstance(methods, str) else methods)]
    x = as_batch(images, model)
    if regions is not None and len(regions) != len(x):
        raise ConfigError(invalid("'regions'", "the evaluation", f"one region (or None) per image, {len(x)}",
                                  len(regions)))
    targets = predicted_targets(model, x, target)
    table = Faithfulness([m.name for m in methods], chosen, settings,
                         list(names) if names is not None else [f"image {i}" for i in range(len(x))],
                         targets.cpu().tolist())
    for method in methods:
        started = time.perf_counter()
        options = method.check(dict((method_options or {}).get(method.name, {})))
        maps = explain(method, model, x, targets, options)
        scores, curves = table.scores[method.name], table.curves[method.name]
        common = {"target": targets, "seed": settings.seed}
        if "deletion" in chosen:
            curves["deletion"] = deletion(model, x, maps, steps=settings.steps, fill=settings.deletion_fill, **common)
            scores["deletion"] = curves["deletion"].area
        if "insertion" in chosen:
            curves["insertion"] = insertion(model, x, maps, steps=settings.steps, fill=settings.insertion_fill,
                                            **common)
            scores["insertion"] = curves["insertion"].area
        if "road-morf" in chosen or "road-lerf" in chosen:
            result = road(model, x, maps, percentages=settings.road_percentages, noise=settings.road_noise, **common)
            curves["road-morf"], curves["road-lerf"] = result.most_relevant_first, result.least_relevant_first
            scores["road-morf"], scores["road-lerf"] = curves["road-morf"].mean, curves["road-lerf"].mean
        if "average-drop" in chosen or "increase" in chosen:
            change = confidence_change(model, x, maps, targets)
            scores["average-drop"], scores["increase"] = change.drop, change.increase
        if "randomisation" in chosen:
            result = randomisation(model, x, method, stages=settings.stages, options=options, trained_maps=maps,
                                   **common)
            table.randomisation[method.name] = result
            scores["randomisation"] = result.mean
        if "pointing" in chosen:
            full = [None if region is None else upsample(heatmap[None], region.shape)[0]
                    for heatmap, region in zip(maps, regions)]
            scores["pointing"] = pointing_game(full, regions, settings.tolerance)
        table.seconds[method.name] = time.perf_counter() - started
        if print_fn is not None:
            print_fn(f"evaluated {method.name} on {len(x)} images in {table.seconds[method.name]:.1f} s")
    return table
