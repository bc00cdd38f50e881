"""A run's predictions on (a sample of) its test split, the split rebuilt by the run itself.

Only the sampled images are ever decoded, a batch at a time; the report later
fetches the few it shows by position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cnnlab.errors import ConfigError, DataError, invalid
from cnnlab.progress import progress
from cnnlab.run import LoadedModel, Run

BATCH = 64


@dataclass
class Evaluation:
    """Labels and class probabilities of `len(positions)` test images out of `total`."""

    dataset: object  # the test split: ArrayDataset or FileDataset
    positions: np.ndarray  # (N,) which test images were evaluated, ascending
    labels: np.ndarray  # (N,)
    probabilities: np.ndarray  # (N, classes)
    total: int  # images in the whole test split
    spec: str
    loaded: LoadedModel
    seed: int  # of the random draw when the split was sampled

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return float((self.predicted == self.labels).mean()) if len(self.labels) else 0.0

    @property
    def sampled(self) -> bool:
        return len(self.positions) < self.total

    def images(self, chosen) -> torch.Tensor:
        """The evaluated images at positions `chosen` (into `labels`), fitted to the model: (k, C, H, W)."""
        return _load(self.dataset, self.positions[np.asarray(chosen, dtype=np.int64)], self.loaded)


def evaluate(run: Run, loaded: LoadedModel, data: str | None = None, samples: int | None = 1000) -> Evaluation:
    """Predict `samples` test images drawn at random with the run's seed (all when the split is no larger)."""
    if samples is not None and (int(samples) != samples or samples < 1):
        raise ConfigError(invalid("--samples option", "cnnlab report", "an integer >= 1", samples))
    spec = data or run.config.data
    seed = run.config.train.seed
    splits = run.splits(data)
    if list(splits.class_names) != list(loaded.class_names):
        raise DataError(f"The data {spec} has classes {list(splits.class_names)[:5]}...; the run was trained on "
                        f"{list(loaded.class_names)[:5]}...; report on data with the same classes.")
    test, total = splits.test, len(splits.test)
    positions = np.arange(total)
    if samples is not None and samples < total:
        positions = np.sort(np.random.default_rng(seed).choice(total, size=int(samples), replace=False))
    labels = np.asarray(test.targets)[positions]
    starts = range(0, len(positions), BATCH)
    probabilities = [loaded.predict(_load(test, positions[start:start + BATCH], loaded)).numpy()
                     for start in progress(starts, desc="evaluating")]
    classes = len(loaded.class_names)
    probabilities = np.concatenate(probabilities) if probabilities else np.zeros((0, classes), np.float32)
    return Evaluation(test, positions, labels, probabilities, total, spec, loaded, seed)


def _load(dataset, indices: np.ndarray, loaded: LoadedModel) -> torch.Tensor:
    if hasattr(dataset, "x"):
        images = dataset.x[torch.as_tensor(indices, dtype=torch.int64)]
    else:
        images = dataset.load(indices)
    return loaded.prepare(images)
