"""make_preprocess fits normalisation and ZCA on the training split only, with the promised statistics."""

from __future__ import annotations

import pytest
import torch

from cnnlab.data import ArrayDataset, load_data, make_preprocess, parse_augment
from cnnlab.data.augment import training_images
from cnnlab.errors import ConfigError


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", image_size=8, channels=3)


def test_no_normalisation_gives_the_identity(digits):
    preprocess = make_preprocess(parse_augment("rotation=10"), digits.train)
    assert preprocess.is_identity


def test_featurewise_center_and_std_use_training_statistics_only(digits):
    preprocess = make_preprocess(parse_augment("featurewise-center,featurewise-std"), digits.train)
    train = preprocess(digits.train.x)
    torch.testing.assert_close(train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(train.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(preprocess.mean.flatten(), digits.train.x.mean(dim=(0, 2, 3)))
    assert preprocess(digits.test.x).mean(dim=(0, 2, 3)).abs().min() > 1e-4  # test statistics were not used


def test_samplewise_center_and_std_normalise_each_image(digits):
    out = make_preprocess(parse_augment("samplewise-center,samplewise-std"), digits.train)(digits.test.x)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3)), torch.zeros(len(out)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(1, 2, 3), correction=0), torch.ones(len(out)), atol=1e-4, rtol=0)


def test_zca_whitened_training_data_has_identity_covariance():
    generator = torch.Generator().manual_seed(0)
    mixing = torch.randn(16, 16, generator=generator)
    x = (torch.randn(4000, 16, generator=generator) @ mixing).view(-1, 1, 4, 4)
    splits_train = ArrayDataset(x[:3000], torch.zeros(3000))
    preprocess = make_preprocess(parse_augment("zca"), splits_train)
    white = preprocess(splits_train.x).flatten(1).double()
    centred = white - white.mean(0)
    covariance = centred.T @ centred / len(centred)
    torch.testing.assert_close(covariance, torch.eye(16, dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(preprocess.zca_mean, x[:3000].flatten(1).mean(0), atol=1e-4, rtol=0)


def test_zca_refuses_images_too_large_for_its_matrix():
    x = torch.rand(10, 3, 64, 64)
    with pytest.raises(ConfigError, match="'zca' option.*Lower --image-size"):
        make_preprocess(parse_augment("zca"), x)


def test_file_datasets_are_fitted_on_a_seeded_sample(image_folder):
    splits = load_data(f"folder:{image_folder}", image_size=8)
    sample = training_images(splits.train, max_images=5, seed=1)
    assert sample.shape == (5, 3, 8, 8)
    assert torch.equal(sample, training_images(splits.train, max_images=5, seed=1))
    preprocess = make_preprocess(parse_augment("featurewise-center"), splits.train, max_images=5, seed=1)
    torch.testing.assert_close(preprocess.mean.flatten(), sample.mean(dim=(0, 2, 3)))
