"""Activation maximisation, filters, feature maps and the overlay helper, checked by their numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from .conftest import digits
from matplotlib import colormaps

from cnnlab import explain
from cnnlab.errors import ConfigError, ModelError
from cnnlab.explain.activation_max import total_variation


def test_activation_max_draws_what_the_digits_model_calls_each_digit(digits_model):
    images = explain.activation_max(digits_model, range(10), (1, 28, 28), steps=120)
    assert images.shape == (10, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    with torch.no_grad():
        probabilities = digits_model(images).softmax(dim=-1)
    assert probabilities.argmax(dim=-1).tolist() == list(range(10))
    assert probabilities.max(dim=-1).values.min() > 0.9
    again = explain.activation_max(digits_model, range(10), (1, 28, 28), steps=120)
    assert torch.equal(images, again)  # seeded


def test_regularisers_and_input_range_do_what_they_say(digits_model):
    plain = explain.activation_max(digits_model, [3], (1, 28, 28), steps=60, tv=0, l2=0, blur_every=0, jitter=0)
    smooth = explain.activation_max(digits_model, [3], (1, 28, 28), steps=60, tv=20, l2=0, blur_every=0, jitter=0)
    assert total_variation(smooth) < 0.5 * total_variation(plain)
    shrunk = explain.activation_max(digits_model, [3], (1, 28, 28), steps=60, tv=0, l2=50, blur_every=0, jitter=0)
    assert (shrunk - 0.5).abs().mean() < 0.5 * (plain - 0.5).abs().mean()
    ranged = explain.activation_max(digits_model, [3], (1, 28, 28), steps=20, input_range=(-1, 2))
    assert ranged.min() >= -1 and ranged.max() <= 2 and ranged.max() > 1


def test_activation_max_of_a_channel_raises_that_channel(digits_model):
    start = torch.full((1, 1, 28, 28), 0.5)
    image = explain.activation_max(digits_model, [5], (1, 28, 28), layer="conv2", steps=60)
    maps = explain.feature_maps(digits_model, torch.cat([start, image]), ["conv2"])["conv2"]
    assert maps[1, 5].mean() > maps[0, 5].mean() + 0.5
    with pytest.raises(ModelError, match="channel of layer 'conv2'"):
        explain.activation_max(digits_model, [8], (1, 28, 28), layer="conv2", steps=1)


def test_filters_and_feature_maps_are_the_layers_own(digits_model, resnet18):
    assert torch.equal(explain.filters(digits_model), digits_model.conv1.weight.detach())
    assert explain.filters(resnet18).shape == (64, 3, 7, 7)
    with pytest.raises(ModelError, match="no 2-D convolution filters"):
        explain.filters(digits_model, "dense1")
    x = digits(2)[0]
    maps = explain.feature_maps(digits_model, x, ["conv1", "tanh2"])
    with torch.no_grad():
        assert torch.allclose(maps["conv1"], digits_model.conv1(x))
        assert torch.allclose(maps["tanh2"], digits_model[:4](x))
    assert list(explain.feature_maps(digits_model, x)) == ["conv1", "conv2", "conv3"]


def test_overlay_blends_the_min_max_scaled_map_through_the_colormap():
    image = np.full((4, 5, 3), 0.2)
    heatmap = np.arange(20, dtype=float).reshape(4, 5) * 3 + 7
    assert np.array_equal(explain.overlay(image, heatmap, alpha=0.0), np.full((4, 5, 3), 51, dtype=np.uint8))
    coloured = colormaps["jet"]((heatmap - 7) / 57)[..., :3]
    assert np.array_equal(explain.overlay(image, heatmap, alpha=1.0), (255 * coloured).round().astype(np.uint8))
    grey = torch.full((1, 4, 5), 0.2)  # a (C, H, W) grey tensor works the same
    assert np.array_equal(explain.overlay(grey, heatmap, alpha=0.3), explain.overlay(image, heatmap, alpha=0.3))
    with pytest.raises(ValueError, match="shape"):
        explain.overlay(image, np.zeros((2, 2)))


def test_bad_input_range_is_a_config_error(digits_model):
    with pytest.raises(ConfigError, match="input_range"):
        explain.activation_max(digits_model, [1], (1, 28, 28), input_range=(1, 0))
