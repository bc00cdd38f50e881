"""Outputs that must not drift: a tiny seeded run's predictions and one Grad-CAM map, against tests/golden/.

A change to the data splits, initialisation, training loop, optimiser or
Grad-CAM moves these numbers. When the change is intended, regenerate with
``pytest tests/test_golden.py --update-golden`` and commit the files.
"""

from __future__ import annotations

import pytest

from cnnlab import explain
from cnnlab.data import load_data
from cnnlab.run import load_model
from cnnlab.train import train

SPEC = "conv(4,3)-relu-maxpool(2)-flatten-dense(classes)"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden") / "run"
    train("digits", SPEC, out=out, epochs=2, image_size=8, seed=0, optimizer="adam", lr=0.01, batch_size=32,
          device="cpu", quiet=True, print_fn=lambda _: None)
    return load_model(out, "cpu")


@pytest.fixture(scope="module")
def test_images():
    return load_data("digits", image_size=8, seed=0).test.x[:16]


def test_predictions_of_a_tiny_seeded_run_do_not_drift(tiny_run, test_images, golden):
    golden("tiny_run_predictions", tiny_run.predict(test_images), atol=1e-4)


def test_a_gradcam_map_does_not_drift(tiny_run, test_images, golden):
    maps = explain.gradcam(tiny_run.network, test_images[:1], target=3, layer="model.conv1")
    golden("tiny_run_gradcam_class3", maps[0], atol=1e-4 * float(maps.abs().max()), rtol=1e-3)
