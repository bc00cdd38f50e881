"""The report's numbers against scikit-learn, and the architecture diagram's boxes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import log_loss, precision_recall_fscore_support
from torch import nn

from cnnlab.models import create_model, summary
from cnnlab.report import metrics
from cnnlab.report.diagram import MOST_BOXES, boxes, diagram_figure
from cnnlab.report.html import table
from cnnlab.report.plots import png


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 300)
    labels[labels == 4] = 3  # class 4 never occurs: its recall is undefined
    logits = rng.normal(size=(300, 5)) + 2.5 * np.eye(5)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities


def test_confusion_and_class_scores_equal_sklearn(predictions):
    labels, probabilities = predictions
    predicted = probabilities.argmax(axis=1)
    matrix = metrics.confusion_matrix(labels, predicted, 5)
    assert np.array_equal(matrix, sk_confusion_matrix(labels, predicted, labels=range(5)))
    scores = metrics.class_scores(matrix)
    for average, weighted in ((None, None), ("macro", False), ("weighted", True)):
        expected = precision_recall_fscore_support(labels, predicted, labels=range(5), average=average,
                                                   zero_division=0)
        got = (scores.precision, scores.recall, scores.f1) if average is None else scores.average(weighted)
        assert np.allclose(got, expected[:3])
    assert np.array_equal(scores.support, np.bincount(labels, minlength=5))
    normalised = metrics.row_normalised(matrix)
    assert np.allclose(normalised[:4].sum(axis=1), 1) and np.all(normalised[4] == 0)


def test_losses_pairs_and_chosen_images(predictions):
    labels, probabilities = predictions
    losses = metrics.losses(labels, probabilities)
    assert np.isclose(losses.mean(), log_loss(labels, probabilities, labels=range(5)))
    worst = metrics.top_losses(labels, probabilities, most=7)
    assert len(worst) == 7 and np.all(probabilities[worst].argmax(axis=1) != labels[worst])
    assert np.all(np.diff(losses[worst]) <= 0)
    wrong = probabilities.argmax(axis=1) != labels
    assert losses[worst[-1]] >= np.sort(losses[wrong])[-7]
    matrix = metrics.confusion_matrix(labels, probabilities.argmax(axis=1), 5)
    pairs = metrics.confused_pairs(matrix, most=4)
    assert [n for _, _, n in pairs] == sorted((n for _, _, n in pairs), reverse=True)
    assert all(t != p and matrix[t, p] == n for t, p, n in pairs)
    chosen = metrics.one_per_class(labels, probabilities, [0, 1, 4])
    assert set(chosen) == {0, 1}  # class 4 has no image
    for c, i in chosen.items():
        right = np.flatnonzero((labels == c) & (probabilities.argmax(axis=1) == c))
        assert labels[i] == c and probabilities[i, c] == probabilities[right, c].max()


def test_diagram_merges_activations_and_groups_deep_networks():
    model = create_model("seed-cnn", 10, (1, 28, 28))
    chain = boxes(summary(model, (1, 28, 28), print_fn=None), model)
    assert [b.label for b in chain][:3] == ["Conv2d 4, 5×5 + Tanh", "Conv2d 8, 3×3 + Tanh", "MaxPool2d 2"]
    assert [b.shape for b in chain][-1] == (10,) and sum(b.params for b in chain) == 35754
    block = lambda: nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())  # noqa: E731
    deep = nn.Sequential(*[nn.Sequential(*[block() for _ in range(3)]) for _ in range(20)], nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 3))
    table_of = summary(deep, (4, 8, 8), print_fn=None)
    grouped = boxes(table_of, deep)
    assert len(grouped) <= MOST_BOXES < len(table_of.rows)
    assert sum(b.params for b in grouped) == table_of.total_params
    assert png(diagram_figure(table_of, deep)).startswith(b"\x89PNG")


def test_table_cells_are_escaped():
    html = table(["class"], [("<script>alert(1)</script>",)])
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_many_classes_are_numbered_in_the_matrix():
    from cnnlab.report.plots import NAMED_CLASSES, confusion_figure

    classes = NAMED_CLASSES + 10
    figure = confusion_figure(np.eye(classes, dtype=int) * 3, [f"species {i}" for i in range(classes)], False)
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels[:3] == ["0", "1", "2"] and not figure.axes[0].texts  # no per-cell numbers either
