"""`cnnlab.interpret`: a run's confusion matrix, per-class scores and top losses, checked against scikit-learn and
torch's cross-entropy on the run's own test split; the plots are Figures with what they claim on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from sklearn import metrics as sk

import cnnlab
from cnnlab.errors import ConfigError
from cnnlab.run import Run, load_model

TINY_SPEC = "conv(4,3)-relu-maxpool(2)-flatten-dense(10)"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One epoch of a one-convolution spec on digits at 12x12: quick, and wrong often enough to be interesting."""
    from cnnlab.train.api import train

    out = tmp_path_factory.mktemp("interpret") / "tiny"
    train(data="digits", model=TINY_SPEC, epochs=1, image_size=12, out=out, quiet=True, progress=False,
          print_fn=lambda line: None)
    return out


@pytest.fixture(scope="module")
def interp(run_dir):
    return cnnlab.interpret(run_dir, device="cpu")


@pytest.fixture(scope="module")
def reference(run_dir):
    """Labels and logits of the whole test split, computed here from the run's own splits and model."""
    run = Run.open(run_dir)
    test = run.splits().test
    loaded = run.load_model("cpu")
    images = torch.stack([loaded.prepare(test[i][0]) for i in range(len(test))])
    with torch.no_grad():
        logits = loaded.network(images).double()
    return torch.as_tensor(np.asarray(test.targets)), logits


def test_the_whole_test_split_is_interpreted(interp, reference):
    labels, logits = reference
    assert len(interp.labels) == len(labels) == 360
    np.testing.assert_array_equal(interp.labels, labels.numpy())
    np.testing.assert_array_equal(interp.predicted, logits.argmax(1).numpy())


def test_confusion_matrix_has_true_classes_as_rows(interp, reference):
    labels, logits = reference
    expected = sk.confusion_matrix(labels.numpy(), logits.argmax(1).numpy(), labels=range(10))
    np.testing.assert_array_equal(interp.confusion_matrix, expected)
    assert interp.confusion_matrix.sum(axis=1).tolist() == np.bincount(labels.numpy(), minlength=10).tolist()


def test_per_class_scores_are_scikit_learns(interp, reference):
    labels, logits = reference
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        labels.numpy(), logits.argmax(1).numpy(), labels=range(10), zero_division=0)
    scores = interp.per_class
    np.testing.assert_allclose(scores.precision, precision)
    np.testing.assert_allclose(scores.recall, recall)
    np.testing.assert_allclose(scores.f1, f1)
    np.testing.assert_array_equal(scores.support, support)
    assert recall.min() < 1 < 2 * recall.max()  # the run is right and wrong: the scores are not trivial


def test_top_losses_are_torch_cross_entropy_highest_first(interp, reference):
    labels, logits = reference
    losses = F.cross_entropy(logits, labels, reduction="none")
    top = interp.top_losses(7)
    assert len(top) == 7
    expected = torch.argsort(losses, descending=True, stable=True)[:7]
    assert [t.index for t in top] == expected.tolist()
    np.testing.assert_allclose([t.loss for t in top], losses[expected].numpy(), rtol=1e-4)
    probabilities = logits.softmax(1)
    for t in top:
        assert t.true == labels[t.index] and t.predicted == logits[t.index].argmax()
        assert t.probability == pytest.approx(float(probabilities[t.index, t.predicted]), rel=1e-4)
    assert len(interp.top_losses(None)) == 360
    with pytest.raises(ConfigError, match="k argument"):
        interp.top_losses(0)


def test_most_confused_counts_off_diagonal_cells_most_first(interp, reference):
    labels, logits = reference
    predicted = logits.argmax(1)
    pairs = {}
    for t, p in zip(labels.tolist(), predicted.tolist()):
        if t != p:
            pairs[(str(t), str(p))] = pairs.get((str(t), str(p)), 0) + 1
    confused = interp.most_confused()
    assert {(t, p): n for t, p, n in confused} == pairs
    assert [n for _, _, n in confused] == sorted(pairs.values(), reverse=True)
    assert all(n >= 3 for _, _, n in interp.most_confused(min_count=3))
    assert len(interp.most_confused(min_count=3)) == sum(n >= 3 for n in pairs.values())


def test_plots_are_figures_neither_shown_nor_saved(interp, run_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    matrix = interp.plot_confusion_matrix()
    assert isinstance(matrix, Figure)
    image = matrix.axes[0].images[0].get_array()
    np.testing.assert_array_equal(image, interp.confusion_matrix)
    normalised = interp.plot_confusion_matrix(normalize=True).axes[0].images[0].get_array()
    np.testing.assert_allclose(normalised.sum(axis=1), 1)

    losses = interp.plot_top_losses(4)
    titled = [axis for axis in losses.axes if axis.get_title()]
    assert len(titled) == 4
    names = interp.class_names
    for axis, item in zip(titled, interp.top_losses(4)):
        assert axis.get_title() == (f"{names[item.predicted]} / {names[item.true]}\n"
                                    f"loss {item.loss:.2f} · p {item.probability:.2f}")
        assert axis.images[0].get_array().shape == (12, 12)

    bars = interp.plot_per_class()
    heights = [[patch.get_height() for patch in container] for container in bars.axes[0].containers]
    np.testing.assert_allclose(heights, [interp.per_class.precision, interp.per_class.recall, interp.per_class.f1])
    assert list(tmp_path.iterdir()) == []  # nothing written: saving is the caller's


def test_a_loaded_model_of_the_run_gives_the_same_interpretation(interp, run_dir):
    again = cnnlab.interpret(load_model(run_dir, "cpu"))
    np.testing.assert_array_equal(again.confusion_matrix, interp.confusion_matrix)


def test_a_pretrained_model_has_no_test_split_to_interpret():
    from cnnlab.run import LoadedModel

    loaded = LoadedModel(torch.nn.Identity(), torch.nn.Identity(), ["a"], (1, 4, 4), source="pretrained:x")
    with pytest.raises(ConfigError, match="needs a run directory"):
        cnnlab.interpret(loaded)


def test_repr_is_one_short_line(interp, run_dir):
    text = repr(interp)
    assert text == f"Interpretation({run_dir}: 360 test images of digits, 10 classes, accuracy {interp.accuracy:.4f})"
    assert interp.accuracy == pytest.approx(float(np.mean(interp.labels == interp.predicted)))
