"""Preprocessing and flips against Keras 3's own ImageDataGenerator (on the torch backend).

Featurewise and samplewise normalisation match Keras exactly. ZCA keeps two
deliberate differences (see `cnnlab.data.preprocess.Preprocess`): each pixel is
centred on its training mean, and epsilon sits inside the square root. So ZCA
is compared with Keras on data already centred per pixel and with eigenvalues
far above epsilon, where the definitions coincide, and the epsilon with the
textbook formula where they do not.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from cnnlab.data import AugmentOptions, Augmenter, load_data, make_preprocess, parse_augment
from cnnlab.data.preprocess import Preprocess

# Keras says when one option implies another (featurewise-std centres too); cnnlab does the same, silently.
pytestmark = pytest.mark.filterwarnings("ignore:This ImageDataGenerator specifies")


@pytest.fixture(scope="module")
def keras_generator():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    def make(fit_on: np.ndarray | None = None, **options):
        generator = ImageDataGenerator(data_format="channels_first", **options)
        if fit_on is not None:
            generator.fit(fit_on)
        return generator

    return make


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", image_size=8, channels=3, seed=0)


def keras_standardize(generator, images: np.ndarray) -> np.ndarray:
    """Each image through `standardize`, one at a time, as Keras' iterators call it."""
    return np.stack([generator.standardize(np.copy(image)) for image in images])


@pytest.mark.parametrize("augment, keras_options", [
    ("featurewise-center,featurewise-std", {"featurewise_center": True, "featurewise_std_normalization": True}),
    ("featurewise-std", {"featurewise_std_normalization": True}),
    ("featurewise-center", {"featurewise_center": True}),
])
def test_featurewise_normalisation_equals_keras(digits, keras_generator, augment, keras_options):
    train = digits.train.x.numpy()
    keras = keras_generator(train, **keras_options)
    ours = make_preprocess(parse_augment(augment), digits.train)
    test = digits.test.x
    np.testing.assert_allclose(ours(test).numpy(), keras_standardize(keras, test.numpy()), rtol=0, atol=2e-6)


def test_samplewise_normalisation_equals_keras(digits, keras_generator):
    keras = keras_generator(samplewise_center=True, samplewise_std_normalization=True)
    ours = make_preprocess(parse_augment("samplewise-center,samplewise-std"), digits.train)
    test = digits.test.x
    np.testing.assert_allclose(ours(test).numpy(), keras_standardize(keras, test.numpy()), rtol=0, atol=2e-6)


@pytest.fixture(scope="module")
def correlated_images():
    """(600, 3, 4, 4) images with correlated pixels and a per-pixel mean, covariance well conditioned."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(48, 48)) / (2 * np.sqrt(48)) + np.eye(48)
    x = rng.normal(size=(600, 48)) @ mixing + rng.uniform(0, 3, size=48)
    return torch.tensor(x.reshape(600, 3, 4, 4), dtype=torch.float32)


def test_zca_equals_keras_on_data_centred_per_pixel(correlated_images, keras_generator):
    train, test = correlated_images[:500], correlated_images[500:]
    centre = train.numpy().mean(axis=0, keepdims=True)
    keras = keras_generator(train.numpy() - centre, zca_whitening=True, zca_epsilon=1e-6)
    ours = make_preprocess(parse_augment("zca"), train)
    np.testing.assert_allclose(ours(test).numpy(), keras_standardize(keras, test.numpy() - centre), rtol=0,
                               atol=2e-4)


def test_zca_puts_epsilon_inside_the_square_root(correlated_images):
    train = correlated_images[:500].double()
    flat = train.flatten(1).numpy()
    flat = flat - flat.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(flat.T @ flat / len(flat))
    epsilon = 0.5  # of the order of the eigenvalues, so where it goes matters
    textbook = eigenvectors @ np.diag(1 / np.sqrt(eigenvalues + epsilon)) @ eigenvectors.T
    ours = Preprocess().fit(train.float(), zca_whitening=True, zca_epsilon=epsilon)
    np.testing.assert_allclose(ours.zca.numpy(), textbook, rtol=0, atol=2e-5)


def test_a_pixel_the_training_data_never_varies_is_scaled_by_at_most_one_over_root_epsilon(correlated_images):
    train = correlated_images[:500].clone()
    train[:, 0, 0, 0] = 0.0  # a pixel that is always black, as digits' corners are
    preprocess = make_preprocess(parse_augment("zca"), train)
    probe = torch.zeros(1, 3, 4, 4)
    probe[0, 0, 0, 0] = 1e-3
    response = preprocess(probe) - preprocess(torch.zeros(1, 3, 4, 4))
    assert 0.5 < float(response.abs().max()) <= 1e-3 / np.sqrt(1e-6) * 1.001


def test_flips_equal_keras(keras_generator):
    image = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    keras = keras_generator()
    augmenter = Augmenter(AugmentOptions())
    for flips, keras_flips in (([True, False], {"flip_horizontal": True}), ([False, True], {"flip_vertical": True})):
        ours = augmenter.transform(image[None], flips=torch.tensor(flips))[0]
        theirs = keras.apply_transform(image.numpy().copy(), keras_flips)
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=1e-6)
