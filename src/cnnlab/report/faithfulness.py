"""The report's faithfulness section: the methods drawn on the page, ranked on a few test images.

The settings are coarse so the section costs seconds, not minutes: a few
images, few deletion/insertion steps, three ROAD percentages, two
randomisation stages (the top layer, then all). ``cnnlab explain
--evaluate`` measures with the full defaults and any registered method.
"""

from __future__ import annotations

from html import escape

import torch

from cnnlab.explain.metrics import METRICS, Settings, evaluate
from cnnlab.explain.metrics.plot import curves_figure
from cnnlab.explain.registry import METHODS
from cnnlab.report import metrics as scores
from cnnlab.report.html import figure, section, table
from cnnlab.report.plots import png

METHODS_SHOWN = ("saliency", "guided", "gradcam", "occlusion")  # the maps drawn under "Inside the network"
IMAGES, IMAGES_BIG = 4, 2
SETTINGS = Settings(steps=10, road_percentages=(20, 50, 80), stages=2)
SETTINGS_BIG = Settings(steps=8, road_percentages=(50,), stages=1)


def faithfulness_section(evaluation, network, has_conv: bool, big: bool, pictures) -> str:
    """The table ranking the page's methods on one confidently right test image of each of the first classes,
    and their deletion and insertion curves."""
    names = evaluation.loaded.class_names
    count = IMAGES_BIG if big else IMAGES
    chosen = scores.one_per_class(evaluation.labels, evaluation.probabilities, list(range(min(count, len(names)))))
    methods = [m for m in METHODS_SHOWN if m in METHODS and (has_conv or not METHODS[m].layer)]
    if not chosen or not methods:
        return section("faithfulness", "Faithfulness", '<p class="note">No test image to evaluate the maps on.</p>')
    classes = list(chosen)
    images = evaluation.images([chosen[c] for c in classes])
    settings = SETTINGS_BIG if big else SETTINGS
    result = evaluate(network, images, methods, torch.as_tensor(classes), "all", settings,
                      names=[f"test image #{evaluation.positions[chosen[c]]}" for c in classes])
    headers = ["rank", "method", *result.headers(), "mean rank"]
    mean_ranks = result.mean_ranks()
    rows = [[place, method, *(result.cell(method, m) + (" ★" if result.best(method, m) else "") for m in result.metrics),
             f"{mean_ranks[method]:.2f}"] for place, method in enumerate(result.order(), 1)]
    picture = pictures.add("faithfulness-curves", png(curves_figure(result, ("deletion", "insertion"))),
                           "deletion and insertion curves of each method")
    better = {m: "higher" if METRICS[m].higher_is_better else "lower" for m in result.metrics}
    definitions = "".join(f"<li><b>{escape(METRICS[m].label)}</b> ({better[m]} is better): "
                          f"{escape(METRICS[m].summary)}</li>" for m in result.metrics)
    lead = (f"How well each map explains the network, on {len(classes)} test images (one per class, each explained "
            f"for its class): mean ± standard deviation over the images, ★ the best of each column, methods ranked "
            f"by their mean rank. Coarse settings: {escape(settings.describe(result.metrics))}.")
    body = (table(headers, rows, numeric=range(2, len(headers))) + f"<ul class=\"note\">{definitions}</ul>"
            + figure(picture, "Mean target probability over the images as pixels are changed, most relevant first."))
    return section("faithfulness", "Faithfulness", body, lead)
