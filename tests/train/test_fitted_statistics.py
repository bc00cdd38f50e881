"""Featurewise statistics are fitted on the training split that the run's own seed and splits draw, nothing else."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnlab.data import load_data
from cnnlab.train import train

SPLITS = {"seed": 3, "validation_split": 0.25, "test_split": 0.3, "train_fraction": 0.8}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("fitted") / "run"
    train("digits", "conv(2,3)-relu-flatten-dense(classes)", out=out, epochs=1, image_size=8, device="cpu",
          augment="featurewise-center,featurewise-std", quiet=True, print_fn=lambda _: None, **SPLITS)
    return json.loads((out / "config.json").read_text())["preprocess"]


def test_the_stored_mean_and_std_are_the_training_splits(fitted):
    splits = load_data("digits", image_size=8, **SPLITS)
    train_pixels = splits.train.x.numpy().astype(np.float64)
    np.testing.assert_allclose(fitted["mean"], [train_pixels.mean()], rtol=1e-6)
    np.testing.assert_allclose(fitted["std"], [train_pixels.std()], rtol=1e-6)  # population std, as Keras
    everything = np.concatenate([part.x.numpy() for part in (splits.train, splits.val, splits.test)])
    assert abs(fitted["mean"][0] - everything.mean()) > 1e-4, "the test must tell the two apart"
