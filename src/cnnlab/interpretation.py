"""`interpret(run)`: what a trained run gets wrong on its own test split, for a notebook (fastai's habit).

    interp = cnnlab.interpret("runs/seed")
    interp.confusion_matrix              # (classes, classes) counts, rows = true class
    interp.per_class.recall              # precision, recall, f1, support: one value per class
    interp.top_losses(5)                 # the five test images with the highest loss
    interp.most_confused(min_count=2)    # (true, predicted, count), most first
    interp.plot_top_losses(9).savefig("top-losses.png")

The test split is the run's own, rebuilt and predicted exactly as `cnnlab
report` does (`cnnlab.report.evaluation`); the scores are the report's
(`cnnlab.report.metrics`, scikit-learn's definitions). Plots are matplotlib
Figures, neither shown nor saved.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from matplotlib.figure import Figure

from cnnlab.errors import ConfigError, invalid
from cnnlab.report import metrics as scores
from cnnlab.report.evaluation import Evaluation, evaluate
from cnnlab.report.plots import confusion_figure
from cnnlab.run import PRETRAINED_PREFIX, LoadedModel, Run


class TopLoss(NamedTuple):
    """One test image by its loss: `index` into the run's test split, class indices, p(predicted), -log p(true)."""

    index: int
    true: int
    predicted: int
    probability: float
    loss: float


def interpret(source: str | os.PathLike | LoadedModel, *, data: str | None = None,
              device: str = "auto") -> "Interpretation":
    """The Interpretation of a run directory (or a LoadedModel read from one) on its whole test split, or on the
    test split of `data`, which must have the run's classes."""
    if isinstance(source, LoadedModel):
        if source.source.startswith(PRETRAINED_PREFIX) or not source.source:
            raise ConfigError(f"cnnlab.interpret needs a run directory; {source.source or 'this model'} has no test "
                              f"split of its own.")
        run, loaded = Run.open(source.source), source
    else:
        run = Run.open(source)
        loaded = run.load_model(device)
    return Interpretation(evaluate(run, loaded, data, samples=None), str(run.path))


@dataclass(repr=False)
class Interpretation:
    """A run's predictions on its test split, and what they say: the confusion matrix, per-class scores, the
    images with the highest loss, the most confused pairs, and plots of each."""

    evaluation: Evaluation
    run_dir: str

    @property
    def class_names(self) -> list[str]:
        return list(self.evaluation.loaded.class_names)

    @property
    def labels(self) -> np.ndarray:
        """(N,) true class of each test image."""
        return self.evaluation.labels

    @property
    def probabilities(self) -> np.ndarray:
        """(N, classes) softmax of each test image."""
        return self.evaluation.probabilities

    @property
    def predicted(self) -> np.ndarray:
        return self.evaluation.predicted

    @property
    def losses(self) -> np.ndarray:
        """(N,) cross-entropy of each test image, -log p(true class)."""
        return scores.losses(self.labels, self.probabilities)

    @property
    def accuracy(self) -> float:
        return self.evaluation.accuracy

    @property
    def confusion_matrix(self) -> np.ndarray:
        """(classes, classes) image counts: row = true class, column = predicted class."""
        return scores.confusion_matrix(self.labels, self.predicted, len(self.class_names))

    @property
    def per_class(self) -> scores.ClassScores:
        """Precision, recall, F1 and support of each class (arrays in class order; `.average(weighted)`)."""
        return scores.class_scores(self.confusion_matrix)

    def top_losses(self, k: int | None = 9) -> list[TopLoss]:
        """The `k` test images with the highest loss (all with None), highest first, right or wrong."""
        losses = self.losses
        order = np.argsort(-losses, kind="stable")[:_count(k, "top_losses")]
        return [TopLoss(int(self.evaluation.positions[i]), int(self.labels[i]), int(self.predicted[i]),
                        float(self.probabilities[i, self.predicted[i]]), float(losses[i])) for i in order]

    def most_confused(self, min_count: int = 1) -> list[tuple[str, str, int]]:
        """(true class, predicted class, images) for each confusion seen at least `min_count` times, most first."""
        matrix = self.confusion_matrix
        names = self.class_names
        return [(names[t], names[p], n) for t, p, n in scores.confused_pairs(matrix, most=matrix.size)
                if n >= min_count]

    def plot_confusion_matrix(self, normalize: bool = False) -> Figure:
        """The confusion matrix as a heat map; with `normalize`, each row divided by its total (recall on the
        diagonal)."""
        matrix = self.confusion_matrix
        return confusion_figure(scores.row_normalised(matrix) if normalize else matrix, self.class_names, normalize)

    def plot_top_losses(self, k: int = 9, columns: int | None = None) -> Figure:
        """The `k` highest-loss test images in a grid, each captioned predicted / true / loss / p(predicted)."""
        chosen = self.top_losses(k)
        if not chosen:
            raise ConfigError(f"The run {self.run_dir} has no test images to plot.")
        where = {int(p): i for i, p in enumerate(self.evaluation.positions)}
        images = self.evaluation.images([where[item.index] for item in chosen])
        columns = columns or math.ceil(math.sqrt(len(chosen)))
        rows = math.ceil(len(chosen) / columns)
        figure = Figure(figsize=(2.2 * columns, 2.5 * rows))
        axes = np.array(figure.subplots(rows, columns, squeeze=False)).flatten()
        names = self.class_names
        for axis in axes:
            axis.axis("off")
        for axis, item, image in zip(axes, chosen, images):
            picture = image.permute(1, 2, 0).numpy()
            axis.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray", vmin=0, vmax=1,
                        interpolation="nearest")
            axis.set_title(f"{_short(names[item.predicted])} / {_short(names[item.true])}\n"
                           f"loss {item.loss:.2f} · p {item.probability:.2f}", fontsize=8,
                           color="black" if item.predicted == item.true else "#c62828")
        figure.suptitle("predicted / true · loss · probability of the prediction", fontsize=9)
        return figure

    def plot_per_class(self) -> Figure:
        """Precision, recall and F1 of each class as grouped bars, with each class's support under its name."""
        per_class = self.per_class
        names = self.class_names
        positions = np.arange(len(names))
        figure = Figure(figsize=(max(4.5, 0.5 * len(names) + 1.5), 3.2))
        axis = figure.subplots()
        for offset, (label, values) in zip((-0.27, 0, 0.27), (("precision", per_class.precision),
                                                             ("recall", per_class.recall), ("F1", per_class.f1))):
            axis.bar(positions + offset, values, width=0.27, label=label)
        axis.set_xticks(positions, [f"{_short(n)}\n({int(s)})" for n, s in zip(names, per_class.support)],
                        fontsize=7)
        axis.set_ylim(0, 1.05)
        axis.set_ylabel("score")
        axis.set_title("per class (test images in brackets)", fontsize=10)
        axis.legend(fontsize=7, frameon=False, ncols=3, loc="lower right")
        axis.spines[["top", "right"]].set_visible(False)
        return figure

    def __repr__(self) -> str:
        return (f"Interpretation({self.run_dir}: {len(self.labels):,} test images of {self.evaluation.spec}, "
                f"{len(self.class_names)} classes, accuracy {self.accuracy:.4f})")


def _count(k: int | None, name: str) -> int | None:
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(invalid("k argument", f"Interpretation.{name}", "an integer >= 1 or None", k))
    return k


def _short(name: str, width: int = 12) -> str:
    name = str(name)
    return name if len(name) <= width else name[: width - 1] + "…"
