"""Deletion and insertion on a model whose answer is known in closed form, and the fills they use."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from cnnlab.errors import ConfigError
from cnnlab.explain.metrics import deletion, insertion, parse_fill
from cnnlab.explain.metrics.order import relevance_ranks
from tests.explain.metrics.models import SIDE, RegionModel, corner, sigmoid

SCALE = 4.0
SHARE = 0.25  # of the pixels in the region


@pytest.fixture
def region_case():
    """An all-ones image, a model that sums the top-left quarter, the perfect map, a random one and the worst."""
    region = corner()
    model = RegionModel(region, SCALE)
    image = torch.ones(1, 1, SIDE, SIDE)
    perfect = region.float()[None]
    random = torch.rand(1, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    return model, image, perfect, random, 1 - perfect


def test_deletion_of_the_perfect_map_follows_the_analytic_curve_and_area(region_case):
    model, image, perfect, random, worst = region_case
    curve = deletion(model, image, perfect, steps=32, fill=0)
    # Deleting a share f of the pixels, region first, leaves 1 - f / SHARE of the region's sum.
    expected = [sigmoid(SCALE * max(0.0, 1 - f / SHARE)) for f in curve.fractions]
    np.testing.assert_allclose(curve.probabilities[0], expected, atol=1e-6)
    np.testing.assert_allclose(curve.fractions, np.arange(33) / 32)
    np.testing.assert_allclose(curve.area, np.trapezoid(expected, curve.fractions), atol=1e-7)
    exact = SHARE * (math.log(1 + math.exp(SCALE)) - math.log(2)) / SCALE + (1 - SHARE) / 2
    assert abs(curve.area[0] - exact) < 2e-3
    random_area = deletion(model, image, random, steps=32, fill=0).area[0]
    worst_area = deletion(model, image, worst, steps=32, fill=0).area[0]
    assert curve.area[0] + 0.15 < random_area < worst_area


def test_insertion_starts_from_the_fill_and_restores_the_perfect_map_first(region_case):
    model, image, perfect, random, worst = region_case
    curve = insertion(model, image, perfect, steps=32, fill=0)
    expected = [sigmoid(SCALE * min(1.0, f / SHARE)) for f in curve.fractions]
    np.testing.assert_allclose(curve.probabilities[0], expected, atol=1e-6)
    assert curve.probabilities[0, 0] == pytest.approx(0.5)  # the all-fill image: logit 0
    exact = SHARE * (math.log(1 + math.exp(SCALE)) - math.log(2)) / SCALE + (1 - SHARE) * sigmoid(SCALE)
    assert abs(curve.area[0] - exact) < 2e-3
    assert curve.area[0] > insertion(model, image, random, steps=32, fill=0).area[0] + 0.05
    assert insertion(model, image, random, steps=32, fill=0).area[0] > insertion(model, image, worst, steps=32,
                                                                                   fill=0).area[0]


def test_curves_end_on_the_fill_and_the_image(digits_model):
    from tests.explain.conftest import digits

    images, _ = digits(3)
    maps = torch.rand(3, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        probabilities = digits_model(images).softmax(-1)
        target = probabilities.argmax(-1)
        blurred = torch.from_numpy(np.stack([[ndimage.gaussian_filter(c, 5, mode="mirror", truncate=1.0)
                                              for c in image] for image in images.numpy()]))
        on_blur = digits_model(blurred).softmax(-1)
    gathered = probabilities.gather(1, target[:, None])[:, 0].numpy()
    on_fill = on_blur.gather(1, target[:, None])[:, 0].numpy()
    removed = deletion(digits_model, images, maps, steps=7, fill="blur")
    np.testing.assert_allclose(removed.probabilities[:, 0], gathered, atol=1e-5)
    np.testing.assert_allclose(removed.probabilities[:, -1], on_fill, atol=1e-5)
    restored = insertion(digits_model, images, maps, steps=7, fill="blur")
    np.testing.assert_allclose(restored.probabilities[:, 0], on_fill, atol=1e-5)
    np.testing.assert_allclose(restored.probabilities[:, -1], gathered, atol=1e-5)


def test_batched_curves_equal_one_image_at_a_time(digits_model, monkeypatch):
    from tests.explain.conftest import digits

    images, _ = digits(4)
    maps = torch.rand(4, 28, 28, generator=torch.Generator().manual_seed(2))
    together = deletion(digits_model, images, maps, steps=9, target=3)
    monkeypatch.setattr("cnnlab.explain.metrics.forward.MAX_PER_PASS", 3)
    for i in range(4):
        alone = deletion(digits_model, images[i:i + 1], maps[i:i + 1], steps=9, target=3)
        np.testing.assert_allclose(alone.probabilities[0], together.probabilities[i], atol=1e-6)


def test_fills_are_the_mean_colour_a_constant_or_the_blur():
    images = torch.rand(2, 3, 12, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    mean = parse_fill("mean").substrate(images)
    np.testing.assert_allclose(mean[:, :, 4, 7], images.mean(dim=(2, 3)))
    assert torch.equal(parse_fill("0.25").substrate(images), torch.full_like(images, 0.25))
    for text, sigma in (("blur", 5.0), ("blur:2", 2.0)):
        reference = [[ndimage.gaussian_filter(c, sigma, mode="mirror", truncate=round(sigma) / sigma) for c in image]
                     for image in images.numpy()]
        np.testing.assert_allclose(parse_fill(text).substrate(images), np.stack(reference), atol=1e-12)
    assert parse_fill("blur").describe() == "Gaussian blur, sigma 5 px"


@pytest.mark.parametrize("text", ["purple", "blur:-1", "blur:x", "nan"])
def test_a_bad_fill_is_refused_in_one_line(text):
    with pytest.raises(ConfigError, match="must be 'blur', 'blur:SIGMA'"):
        parse_fill(text)


def test_pixels_are_ranked_largest_first_and_ties_in_a_seeded_random_order():
    values = torch.arange(12.0).view(1, 3, 4)
    assert relevance_ranks(values).tolist() == [list(range(11, -1, -1))]
    flat = torch.zeros(1, 3, 4)
    ranks = relevance_ranks(flat, seed=5)
    assert sorted(ranks[0].tolist()) == list(range(12)) and ranks[0].tolist() != list(range(12))
    assert torch.equal(ranks, relevance_ranks(flat, seed=5))
    assert not torch.equal(ranks, relevance_ranks(flat, seed=6))


def test_maps_of_the_wrong_shape_are_refused(region_case):
    model, image, *_ = region_case
    with pytest.raises(ConfigError, match=r"shape \(1, 16, 16\)"):
        deletion(model, image, torch.ones(1, 8, 8))
    with pytest.raises(ConfigError, match="'steps'"):
        insertion(model, image, torch.ones(1, SIDE, SIDE), steps=0)
