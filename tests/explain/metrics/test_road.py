"""ROAD and its noisy linear imputation on cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.explain.metrics import linear_imputation, noisy_linear_imputation, road
from tests.explain.metrics.models import SIDE, RegionModel, corner, sigmoid


def test_imputation_keeps_a_constant_and_an_interior_linear_ramp():
    rows, cols = np.mgrid[:12, :15]
    ramp = np.stack([0.3 * rows - 0.2 * cols + 1.0, 0.05 * cols])
    hole = np.zeros((12, 15), dtype=bool)
    hole[3:9, 4:11] = True
    hole[5, 2] = True
    np.testing.assert_allclose(linear_imputation(ramp, hole), ramp, atol=1e-10)
    constant = np.full((3, 12, 15), 0.7)
    np.testing.assert_allclose(linear_imputation(constant, np.random.default_rng(0).random((12, 15)) < 0.9),
                               constant, atol=1e-10)


def test_a_removed_pixel_is_the_weighted_mean_of_its_neighbours():
    image = np.random.default_rng(1).random((1, 5, 5))
    hole = np.zeros((5, 5), dtype=bool)
    hole[2, 2] = True
    neighbours = image[0, 1:4, 1:4]
    weights = np.array([[1, 2, 1], [2, 0, 2], [1, 2, 1]]) / 12
    assert linear_imputation(image, hole)[0, 2, 2] == pytest.approx((weights * neighbours).sum())
    corner_hole = np.zeros((5, 5), dtype=bool)
    corner_hole[0, 0] = True  # at the border the weights left are renormalised: (1/6, 1/6, 1/12) / (5/12)
    expected = (2 * image[0, 0, 1] + 2 * image[0, 1, 0] + image[0, 1, 1]) / 5
    assert linear_imputation(image, corner_hole)[0, 0, 0] == pytest.approx(expected)


def test_noise_goes_on_the_removed_pixels_only_with_its_standard_deviation():
    images = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    removed = torch.rand(2, 40, 40, generator=torch.Generator().manual_seed(1)) < 0.5
    quiet = noisy_linear_imputation(images, removed, noise=0)
    noisy = noisy_linear_imputation(images, removed, noise=0.05, generator=np.random.default_rng(2))
    kept = ~removed[:, None].expand_as(images)
    assert torch.equal(noisy[kept], images[kept]) and torch.equal(quiet[kept], images[kept])
    difference = (noisy - quiet)[~kept]
    assert abs(float(difference.std()) - 0.05) < 0.002 and abs(float(difference.mean())) < 0.002


def test_road_least_relevant_first_keeps_the_probability_of_a_perfect_map_exactly():
    region = corner()
    model = RegionModel(region, 4.0)
    image = torch.zeros(1, 1, SIDE, SIDE)
    image[0, 0][region] = 1.0
    perfect = region.float()[None]
    random = torch.rand(1, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    percentages = (10, 30, 50, 70)  # at most the 75% outside the region
    exact = road(model, image, perfect, percentages=percentages, noise=0.01)
    # Only pixels outside the region are imputed: the model cannot see them.
    np.testing.assert_allclose(exact.least_relevant_first.probabilities[0], sigmoid(4.0), atol=1e-6)
    most = exact.most_relevant_first.probabilities[0]
    assert 0.9 < most[0] < sigmoid(4.0) - 0.005  # 26 of the region's 64 pixels imputed, partly from its own
    # From 30% the whole region is gone: imputed from the zeros around it it is zero, plus the noise.
    np.testing.assert_allclose(most[1:], 0.5, atol=0.005)
    guess = road(model, image, random, percentages=percentages, noise=0.01)
    assert exact.most_relevant_first.mean[0] < guess.most_relevant_first.mean[0] - 0.05
    assert exact.least_relevant_first.mean[0] > guess.least_relevant_first.mean[0]
    worst = road(model, image, 1 - perfect, percentages=percentages, noise=0.01)
    assert exact.least_relevant_first.mean[0] > worst.least_relevant_first.mean[0] + 0.2
    np.testing.assert_allclose(worst.most_relevant_first.probabilities[0], sigmoid(4.0), atol=1e-6)
    np.testing.assert_allclose(exact.most_relevant_first.fractions, [0.1016, 0.3008, 0.5, 0.6992], atol=1e-4)


def test_road_is_seeded():
    model = RegionModel(corner(), 4.0)
    image = torch.rand(1, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(3))
    maps = torch.rand(1, SIDE, SIDE, generator=torch.Generator().manual_seed(4))
    first, again = road(model, image, maps, seed=1), road(model, image, maps, seed=1)
    other = road(model, image, maps, seed=2)
    np.testing.assert_array_equal(first.most_relevant_first.probabilities, again.most_relevant_first.probabilities)
    assert not np.array_equal(first.most_relevant_first.probabilities, other.most_relevant_first.probabilities)


@pytest.mark.parametrize("percentages", [(), (0, 50), (50, 100), ("x",)])
def test_road_refuses_percentages_outside_0_to_100(percentages):
    model = RegionModel(corner(), 4.0)
    with pytest.raises(ConfigError, match="strictly between 0 and 100"):
        road(model, torch.ones(1, 1, SIDE, SIDE), torch.ones(1, SIDE, SIDE), percentages=percentages)
