"""Augmenter against exact references (rot90, roll, flip) and against scipy.ndimage, on which Keras' own
ImageDataGenerator.apply_affine_transform is built."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from cnnlab.data import AugmentOptions, Augmenter, parse_augment
from cnnlab.errors import ConfigError

ALL = ("rotation=10,shift=0.1,width-shift=0.2,height-shift=0.3,hflip,vflip,zoom=0.1,featurewise-center,"
       "featurewise-std,samplewise-center,samplewise-std,zca")


def batch(n=4, c=3, h=9, w=9, seed=0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_parse_every_option():
    options = parse_augment(ALL)
    assert options == AugmentOptions(rotation=10, width_shift=0.2, height_shift=0.3, zoom=0.1, hflip=True,
                                      vflip=True, featurewise_center=True, featurewise_std=True,
                                      samplewise_center=True, samplewise_std=True, zca=True)
    assert options.geometric and options.preprocessing
    assert parse_augment("shift=0.1") == AugmentOptions(width_shift=0.1, height_shift=0.1)
    assert parse_augment("fill=nearest").fill == "border"


@pytest.mark.parametrize("text", ["", None, " , "])
def test_empty_means_no_augmentation(text):
    options = parse_augment(text)
    assert options == AugmentOptions() and not options.geometric and not options.preprocessing
    x = batch()
    assert Augmenter(options)(x, torch.Generator()) is x


@pytest.mark.parametrize("text, fragments", [
    ("rotaton=10", ["Unknown augment option 'rotaton'", "Similar: 'rotation'"]),
    ("horizontal-flip", ["Unknown augment option", "hflip"]),
    ("rotation=abc", ["'rotation' option of --augment", "degrees", "Got 'abc'"]),
    ("rotation", ["'rotation' option", "Got None"]),
    ("zoom=1.5", ["'zoom' option", "[0, 1)", "Got '1.5'"]),
    ("shift=1", ["'shift' option", "Got '1'"]),
    ("hflip=2", ["'hflip' option", "flag"]),
    ("fill=wrap", ["'fill' option", "zeros"]),
])
def test_bad_options_name_the_option(text, fragments):
    with pytest.raises(ConfigError) as caught:
        parse_augment(text)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


@pytest.mark.parametrize("angle, turns", [(90, 1), (-90, -1), (180, 2), (270, 3)])
def test_right_angle_rotation_equals_rot90(angle, turns):
    x = batch()
    turned = Augmenter(AugmentOptions()).transform(x, angles=angle)
    torch.testing.assert_close(turned, torch.rot90(x, turns, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_half_turn_of_a_non_square_image_equals_rot90_twice():
    x = batch(h=6, w=11)
    torch.testing.assert_close(Augmenter(AugmentOptions()).transform(x, angles=180), x.flip(-1).flip(-2),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("dx, dy", [(2, 0), (0, -3), (-1, 2)])
def test_whole_pixel_shift_equals_roll_with_zero_fill(dx, dy):
    x = batch(h=7, w=10)
    expected = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    rows, cols = torch.arange(7), torch.arange(10)
    valid = ((rows - dy >= 0) & (rows - dy < 7))[:, None] & ((cols - dx >= 0) & (cols - dx < 10))[None]
    shifted = Augmenter(AugmentOptions()).transform(x, shifts=torch.tensor([dx, dy]))
    torch.testing.assert_close(shifted, expected * valid, atol=1e-5, rtol=0)


def test_flips_equal_torch_flip():
    x = batch()
    augmenter = Augmenter(AugmentOptions())
    torch.testing.assert_close(augmenter.transform(x, flips=torch.tensor([True, False])), x.flip(-1), atol=1e-6,
                               rtol=0)
    torch.testing.assert_close(augmenter.transform(x, flips=torch.tensor([False, True])), x.flip(-2), atol=1e-6,
                               rtol=0)


@pytest.mark.parametrize("option, mirror", [("hflip", [-1]), ("vflip", [-2])])
def test_the_flip_option_mirrors_along_its_own_axis_only(option, mirror):
    x = torch.rand(64, 2, 5, 7, generator=torch.Generator().manual_seed(1))
    out = Augmenter(parse_augment(option))(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.allclose(o, i.flip(mirror), atol=1e-6) for o, i in zip(out, x)])
    kept = torch.tensor([torch.allclose(o, i, atol=1e-6) for o, i in zip(out, x)])
    assert bool((flipped | kept).all()) and 16 < int(flipped.sum()) < 48  # each image mirrored with probability 1/2


def scipy_reference(image: np.ndarray, angle, shift, zoom, flip, mode: str) -> np.ndarray:
    """The same transform by scipy.ndimage.affine_transform, in (row, col) pixel coordinates, bilinear."""
    a = math.radians(angle)
    rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    linear_xy = rotation @ np.diag(np.asarray(zoom) * np.where(flip, -1.0, 1.0))
    linear_rc = linear_xy[::-1, ::-1]  # swap x, y to row, col
    centre = (np.array(image.shape[-2:]) - 1) / 2.0
    offset = centre - linear_rc @ centre - rotation[::-1, ::-1] @ np.asarray(shift)[::-1]
    return np.stack([ndimage.affine_transform(channel, linear_rc, offset, order=1, mode=mode) for channel in image])


@pytest.mark.parametrize("fill, scipy_mode", [("zeros", "grid-constant"), ("border", "nearest"),
                                              ("reflection", "reflect")])
def test_random_affine_matches_scipy_ndimage(fill, scipy_mode):
    x = batch(n=5, c=2, h=8, w=13, seed=1)
    rng = np.random.default_rng(0)
    angles = rng.uniform(-40, 40, 5)
    shifts = rng.uniform(-2, 2, (5, 2))
    zooms = rng.uniform(0.8, 1.2, (5, 2))
    flips = rng.random((5, 2)) < 0.5
    out = Augmenter(AugmentOptions(fill=fill)).transform(x, torch.tensor(angles), torch.tensor(shifts),
                                                         torch.tensor(zooms), torch.tensor(flips))
    for i in range(5):
        expected = scipy_reference(x[i].numpy(), angles[i], shifts[i], zooms[i], flips[i], scipy_mode)
        np.testing.assert_allclose(out[i].numpy(), expected, atol=1e-5)


def test_random_draws_are_seeded_and_differ_per_sample():
    augmenter = Augmenter(parse_augment("rotation=30,shift=0.2,zoom=0.2,hflip,vflip"))
    x = batch(n=1).expand(6, -1, -1, -1)
    first = augmenter(x, torch.Generator().manual_seed(7))
    again = augmenter(x, torch.Generator().manual_seed(7))
    other = augmenter(x, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert all(not torch.equal(first[0], first[i]) for i in range(1, 6))
    assert first.shape == x.shape and first.dtype == x.dtype


def test_draws_stay_within_the_ranges():
    # A bright pixel at the centre stays put under rotation and moves sideways by at most the width shift.
    x = torch.zeros(200, 1, 21, 21)
    x[:, :, 10, 10] = 1.0
    moved = Augmenter(parse_augment("rotation=45,width-shift=0.1,height-shift=0.2"))(x, torch.Generator())
    centre_of_mass = (moved[:, 0].sum(1) * torch.arange(21)).sum(1) / moved[:, 0].sum((1, 2))
    assert (centre_of_mass - 10).abs().max() <= 0.1 * 21 + 1e-4
    assert (centre_of_mass - 10).abs().max() > 0.5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batch_gets_the_cpu_result_for_the_same_generator():
    augmenter = Augmenter(parse_augment("rotation=30,shift=0.2,zoom=0.2,hflip,vflip"))
    x = batch(n=8)
    on_cpu = augmenter(x, torch.Generator().manual_seed(3))
    on_cuda = augmenter(x.cuda(), torch.Generator().manual_seed(3))
    assert on_cuda.is_cuda
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, atol=1e-5, rtol=0)
    half = augmenter(x.cuda().half(), torch.Generator(device="cuda").manual_seed(3))
    assert half.dtype == torch.float16 and half.is_cuda
