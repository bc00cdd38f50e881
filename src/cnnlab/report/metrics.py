"""What the predictions on the test images say: confusion matrix, per-class scores, confused pairs, top losses.

Plain NumPy on (N,) labels and (N, classes) probabilities; the definitions are
scikit-learn's (precision and recall are 0 where undefined, F1 their harmonic mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Counts (classes, classes): row = true class, column = predicted class."""
    return np.bincount(np.asarray(labels) * classes + np.asarray(predicted), minlength=classes**2).reshape(classes,
                                                                                                           classes)


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its total: the share of a true class given each prediction (empty rows stay 0)."""
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)


@dataclass
class ClassScores:
    precision: np.ndarray  # (classes,)
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray  # true images of each class

    def average(self, weighted: bool) -> tuple[float, float, float]:
        """Macro (every class counts once) or support-weighted means of precision, recall and F1."""
        weights = self.support if weighted else np.ones_like(self.support)
        if weights.sum() == 0:
            return 0.0, 0.0, 0.0
        return tuple(float(np.average(s, weights=weights)) for s in (self.precision, self.recall, self.f1))


def class_scores(matrix: np.ndarray) -> ClassScores:
    """Precision, recall, F1 and support of each class from a confusion matrix."""
    hits = np.diag(matrix).astype(float)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    return ClassScores(precision, recall, f1, support)


def confused_pairs(matrix: np.ndarray, most: int = 10) -> list[tuple[int, int, int]]:
    """The off-diagonal cells with the most images, as (true, predicted, count), largest first."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:most]
    pairs = [(int(i // matrix.shape[1]), int(i % matrix.shape[1]), int(off.flat[i])) for i in order]
    return [pair for pair in pairs if pair[2] > 0]


def losses(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Cross-entropy of each image, -log p(true class), (N,)."""
    chosen = probabilities[np.arange(len(labels)), labels]
    return -np.log(np.clip(chosen, 1e-12, None))


def top_losses(labels: np.ndarray, probabilities: np.ndarray, most: int = 12) -> np.ndarray:
    """Positions of the misclassified images with the highest loss, highest first."""
    wrong = np.flatnonzero(probabilities.argmax(axis=1) != labels)
    order = np.argsort(-losses(labels[wrong], probabilities[wrong]), kind="stable")
    return wrong[order[:most]]


def one_per_class(labels: np.ndarray, probabilities: np.ndarray, classes: list[int]) -> dict[int, int]:
    """For each class, the position of its most confidently right image (else its most likely one); absent
    classes are left out."""
    chosen = {}
    predicted = probabilities.argmax(axis=1)
    for c in classes:
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            continue
        right = members[predicted[members] == c]
        pool = right if len(right) else members
        chosen[c] = int(pool[np.argmax(probabilities[pool, c])])
    return chosen
