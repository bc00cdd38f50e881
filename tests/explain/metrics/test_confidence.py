"""Average Drop and Increase in Confidence on a model with evidence for and against the class."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.explain.metrics import confidence_change
from cnnlab.explain.metrics.confidence import scaled
from tests.explain.metrics.models import SIDE, RegionModel, corner, sigmoid


@pytest.fixture
def for_and_against():
    """Logit 0 = 3 x mean(top-left quarter) - 1 x mean(bottom-right quarter), on an all-ones image."""
    evidence = corner()
    counter = torch.flip(corner(), dims=(0, 1))
    return RegionModel(evidence, 3.0, counter, 1.0), torch.ones(1, 1, SIDE, SIDE), evidence, counter


def test_a_map_on_the_evidence_raises_the_confidence_and_drops_nothing(for_and_against):
    model, image, evidence, _ = for_and_against
    result = confidence_change(model, image, evidence.float()[None])
    assert result.before[0] == pytest.approx(sigmoid(2.0)) and result.after[0] == pytest.approx(sigmoid(3.0))
    assert result.drop[0] == 0.0  # O > Y: the drop is clipped at zero
    assert result.increase[0] == 100.0


def test_a_map_on_the_counter_evidence_drops_by_the_relative_change(for_and_against):
    model, image, _, counter = for_and_against
    result = confidence_change(model, image, counter.float()[None])
    y, o = sigmoid(2.0), sigmoid(-1.0)
    assert result.drop[0] == pytest.approx((y - o) / y * 100)
    assert result.increase[0] == 0.0


def test_a_constant_map_hides_everything(for_and_against):
    model, image, *_ = for_and_against
    result = confidence_change(model, image, torch.full((1, SIDE, SIDE), 3.0))
    assert result.after[0] == pytest.approx(0.5)


def test_maps_are_scaled_to_0_1_per_image_before_they_multiply():
    maps = torch.tensor([[[-2.0, 0.0], [2.0, 6.0]], [[5.0, 5.0], [5.0, 5.0]]])
    np.testing.assert_allclose(scaled(maps), [[[0, 0.25], [0.5, 1]], [[0, 0], [0, 0]]])
    model = RegionModel(corner(), 3.0)
    image = torch.ones(1, 1, SIDE, SIDE)
    # A map of 2s on the evidence and 1s elsewhere scales to 1 and 0: the same as the indicator.
    doubled = confidence_change(model, image, (corner().float() + 1)[None])
    assert doubled.after[0] == pytest.approx(sigmoid(3.0))


def test_a_map_that_keeps_all_the_evidence_changes_nothing():
    model = RegionModel(corner(), 3.0)  # no counter-evidence: hiding the rest leaves the logit as it was
    result = confidence_change(model, torch.rand(2, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(0)),
                               corner().float().expand(2, -1, -1))
    np.testing.assert_array_equal(result.after, result.before)
    assert result.drop.tolist() == [0.0, 0.0] and result.increase.tolist() == [0.0, 0.0]
