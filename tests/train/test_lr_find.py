"""The learning-rate range test against its definition (Smith 2017; fastai's lr_find and its 'steep' rule)."""

import csv
import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.data import ArrayDataset
from cnnlab.errors import ConfigError
from cnnlab.train.lr_find import lr_find

QUIET = dict(out=None, quiet=True, print_fn=lambda _: None)


def linear():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(144, 3))


@pytest.fixture
def overlapping():
    """Three classes of 2x2 images drawn around overlapping centres: no rate drives the loss to 0, so large
    rates diverge."""
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    centres = torch.tensor([[0.3, 0.3, 0.7, 0.7], [0.7, 0.3, 0.3, 0.7], [0.5, 0.7, 0.5, 0.3]])
    x = (centres[y] + 0.15 * torch.randn(300, 4, generator=generator)).clamp(0, 1).view(300, 1, 2, 2)
    return ArrayDataset(x, y)


def tiny_linear():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3))


def fastai_smoothing(losses, beta=0.98):
    average, smoothed = 0.0, []
    for n, loss in enumerate(losses, 1):
        average = beta * average + (1 - beta) * loss
        smoothed.append(average / (1 - beta ** n))
    return np.array(smoothed)


def fastai_steep(lrs, smoothed):
    """fastai's `steep`: on the curve trimmed of its first tenth and last five points."""
    n = len(lrs)
    lrs = torch.tensor(lrs[n // 10:-5], dtype=torch.float64)
    losses = torch.tensor(smoothed[n // 10:-5], dtype=torch.float64)
    grads = (losses[1:] - losses[:-1]) / (lrs[1:].log() - lrs[:-1].log())
    return float(lrs[grads.argmin()]), float(lrs[losses.argmin()] / 10)


def test_the_schedule_is_exponential_from_start_to_end(blobs):
    result = lr_find(blobs, linear(), start=1e-5, end=1e-2, steps=20, batch_size=10, **QUIET)
    assert result.stopped == "end" and len(result.lrs) == 20
    assert result.lrs[0] == pytest.approx(1e-5, rel=1e-12) and result.lrs[-1] == pytest.approx(1e-2, rel=1e-9)
    np.testing.assert_allclose(np.diff(np.log(result.lrs)), math.log(1e3) / 19, rtol=1e-9)


def test_the_smoothed_loss_and_the_suggestions_are_fastais(blobs):
    result = lr_find(blobs, linear(), start=1e-4, end=100, steps=100, batch_size=10, momentum=0.0, **QUIET)
    np.testing.assert_allclose(result.smoothed, fastai_smoothing(result.losses), rtol=1e-12)
    steep, minimum = fastai_steep(result.lrs, result.smoothed)
    assert result.suggestion == pytest.approx(steep, rel=1e-12)
    assert result.minimum_over_ten == pytest.approx(minimum, rel=1e-12)


def test_the_suggestion_lies_where_the_loss_falls(overlapping):
    result = lr_find(overlapping, tiny_linear(), start=1e-4, end=1e4, steps=100, batch_size=10, **QUIET)
    smoothed, lrs = np.array(result.smoothed), np.array(result.lrs)
    falling_from = lrs[np.argmax(smoothed < 0.95 * smoothed[0])]  # the loss has started to fall
    lowest = lrs[np.argmin(smoothed)]
    assert falling_from <= result.suggestion < lowest
    at = int(np.flatnonzero(lrs == result.suggestion)[0])
    assert smoothed[at + 1] < smoothed[at]


def test_it_stops_once_the_smoothed_loss_passes_four_times_its_minimum(overlapping):
    result = lr_find(overlapping, tiny_linear(), start=1e-4, end=1e4, steps=100, batch_size=10, **QUIET)
    assert result.stopped == "diverged" and len(result.lrs) < 100
    smoothed = np.array(result.smoothed)
    assert smoothed[-1] > 4 * smoothed[:-1].min()
    assert all(smoothed[i] <= 4 * smoothed[:i + 1].min() for i in range(len(smoothed) - 1))


def test_a_seed_gives_the_same_curve_and_the_model_is_left_untouched(blobs):
    model = linear()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    first = lr_find(blobs, model, steps=30, batch_size=10, seed=3, **QUIET)
    second = lr_find(blobs, model, steps=30, batch_size=10, seed=3, **QUIET)
    other = lr_find(blobs, model, steps=30, batch_size=10, seed=4, **QUIET)
    assert first.losses == second.losses and first.lrs == second.lrs
    assert first.losses != other.losses  # the seed shuffles the batches
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize("options, message", [(dict(start=0.0), "--start option"),
                                              (dict(start=1.0, end=0.1), "--end option"),
                                              (dict(steps=1), "--steps option"),
                                              (dict(epochs=3), "epochs option of cnnlab lr-find would do nothing")])
def test_bad_settings_are_refused(blobs, options, message):
    with pytest.raises(ConfigError, match=message):
        lr_find(blobs, linear(), **{**QUIET, **options})


def cnnlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True, cwd=cwd)


def test_the_command_writes_the_curve_and_prints_the_suggestion(tmp_path):
    out = tmp_path / "curve"
    result = cnnlab("lr-find", "--data", "digits", "--image-size", "8", "--model",
                    "conv(4,3)-tanh-flatten-dense(classes)", "--batch-size", "32", "--steps", "40", "--start",
                    "1e-4", "--end", "100", "--out", str(out))
    assert result.returncode == 0, result.stderr
    match = re.search(r"Suggested lr (\S+) \(steepest descent of the smoothed loss\); minimum/10 (\S+);",
                      result.stdout)
    summary = json.loads((out / "lr_find.json").read_text())
    assert match and float(match.group(1)) == pytest.approx(summary["suggestion"], rel=1e-2)
    rows = list(csv.DictReader((out / "lr_find.csv").open()))
    assert len(rows) == summary["steps_done"] and summary["steps"] == 40
    assert [float(r["lr"]) for r in rows] == summary["lrs"]
    assert fastai_steep([float(r["lr"]) for r in rows], [float(r["smoothed_loss"]) for r in rows])[0] == \
        pytest.approx(summary["suggestion"])
    with Image.open(out / "lr_find.png") as image:
        assert image.format == "PNG" and image.size[0] > 300
    assert not list(out.glob(".*.tmp"))


@pytest.mark.parametrize("arguments, message", [(["--start", "0"], "--start option"),
                                                (["--epochs", "3"], "unrecognized arguments: --epochs"),
                                                (["--optimizer", "adagrad"], "Unknown --optimizer value")])
def test_the_command_refuses_bad_options_in_one_line(tmp_path, arguments, message):
    result = cnnlab("lr-find", "--data", "digits", "--model", "seed-cnn", *arguments, "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()
