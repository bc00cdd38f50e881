"""The cascading model-randomisation check: what it re-initialises, how it correlates, and known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from cnnlab import explain
from cnnlab.errors import ModelError
from cnnlab.explain.metrics import cascade, randomisation, spearman
from cnnlab.explain.metrics.model_randomisation import resettable_layers, stage_counts


def small_cnn() -> nn.Module:
    """Conv, BatchNorm (with statistics of its own, as after training), conv, two dense layers."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                          nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].running_mean.uniform_(-0.1, 0.1)
    return model


def test_the_cascade_reinitialises_the_top_layers_of_a_copy_and_leaves_the_model_and_rng_alone():
    model = small_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert [name for name, _ in resettable_layers(model)] == ["8", "6", "3", "1", "0"]
    rng = torch.get_rng_state()
    seen = []
    for names, twin in cascade(model, [1, 2, 4], seed=3):
        assert twin is not model
        changed = {key.split(".")[0] for key, value in twin.state_dict().items()
                   if not torch.equal(value, before[key])}
        seen.append((names, changed))
    assert seen == [(["8"], {"8"}), (["8", "6"], {"8", "6"}), (["8", "6", "3", "1"], {"8", "6", "3", "1"})]
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())


def test_each_layer_is_reinitialised_from_the_seed():
    model = small_cnn()
    torch.manual_seed(8)
    expected = nn.Linear(16, 3).weight  # reset_parameters after manual_seed(seed + 1), as Quantus draws it
    (_, twin), = cascade(model, [1], seed=7)
    assert torch.equal(twin[8].weight, expected)


def test_stages_run_from_the_top_layer_to_all_spaced_geometrically():
    assert stage_counts(3, 4) == [1, 2, 3]
    assert stage_counts(5, 4) == [1, 2, 3, 5]
    assert stage_counts(150, 4) == [1, 5, 28, 150]
    assert stage_counts(150, 1) == [1]


def test_spearman_is_the_rank_correlation_with_ties_averaged():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, (4, 50)).astype(float)  # many ties
    b = a + rng.normal(0, 2, (4, 50))
    np.testing.assert_allclose(spearman(a, b), [spearmanr(x, y)[0] for x, y in zip(a, b)], atol=1e-12)
    x = rng.random((1, 100))
    assert spearman(x, np.exp(8 * x))[0] == pytest.approx(1.0)  # monotone: rank 1 where Pearson is not
    assert np.corrcoef(x[0], np.exp(8 * x[0]))[0, 1] < 0.9
    assert spearman(x, np.zeros_like(x))[0] == 0.0
    assert np.isnan(spearman(np.zeros_like(x), x)[0])


def test_a_map_that_ignores_the_model_keeps_correlation_one():
    model = small_cnn()
    images = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))

    def squared_pixels(network, x, target=None):
        return x[:, 0] ** 2

    result = randomisation(model, images, squared_pixels, stages=5)
    np.testing.assert_allclose(result.correlations, 1.0)
    assert result.counts == [1, 2, 3, 4, 5] and result.layers[0] == "8"


def test_saliency_of_a_linear_model_decorrelates_once_its_weights_are_redrawn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 2)).eval()
    images = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    result = randomisation(model, images, explain.saliency, stages=1)
    # |d logit / d pixel| is |w| of the target row: independent draws before and after.
    assert np.abs(result.correlations).max() < 0.2
    assert result.layers == ["1"]


def test_a_model_without_parameters_is_refused():
    with pytest.raises(ModelError, match="no layer with parameters"):
        randomisation(nn.Sequential(nn.Flatten()), torch.rand(1, 1, 4, 4), explain.saliency)
