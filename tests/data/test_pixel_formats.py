"""Image files are read by their real range (skimage's img_as_float is the reference), within a pixel budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.util import img_as_float

from cnnlab.data.images import MAX_PIXELS, read_image, resize
from cnnlab.errors import DataError

from ..hostile import declared_png, image_bytes


def read(tmp_path, data: bytes, name: str = "image.png", channels: int = 1, size=None) -> np.ndarray:
    path = tmp_path / name
    path.write_bytes(data)
    return read_image(path, channels, size).numpy()


def test_a_16_bit_png_is_scaled_by_65535(tmp_path):
    pixels = np.linspace(0, 65535, 12 * 10).astype(np.uint16).reshape(12, 10)
    image = read(tmp_path, image_bytes(pixels))
    np.testing.assert_allclose(image[0], img_as_float(pixels), rtol=0, atol=1e-7)
    assert read(tmp_path, image_bytes(pixels), channels=3).shape == (3, 12, 10)


def test_a_32_bit_integer_tiff_is_scaled_as_skimage_does(tmp_path):
    pixels = np.linspace(0, 2**31 - 1, 8 * 8).astype(np.int32).reshape(8, 8)
    image = read(tmp_path, image_bytes(pixels, "TIFF"), "image.tif")
    np.testing.assert_allclose(image[0], img_as_float(pixels), rtol=1e-6, atol=0)


def test_a_float_tiff_keeps_its_values(tmp_path):
    pixels = np.random.default_rng(0).random((9, 7), dtype=np.float32)
    image = read(tmp_path, image_bytes(pixels, "TIFF"), "image.tif")
    np.testing.assert_array_equal(image[0], pixels)


@pytest.mark.parametrize("low, high", [(0.0, 255.0), (-1.0, 1.0), (0.0, np.nan)])
def test_a_float_tiff_outside_the_unit_range_is_refused_naming_its_range(tmp_path, low, high):
    pixels = np.linspace(low, high, 16, dtype=np.float32).reshape(4, 4)
    with pytest.raises(DataError, match=r"image.tif is made of float values in \[.*\]; cnnlab reads float images"):
        read(tmp_path, image_bytes(pixels, "TIFF"), "image.tif")


def test_a_palette_image_is_read_through_its_colours(tmp_path):
    rng = np.random.default_rng(1)
    colours = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    indices = rng.integers(0, 16, (6, 5), dtype=np.uint8)
    picture = Image.fromarray(indices, mode="P")
    picture.putpalette(colours.flatten().tolist())
    picture.save(tmp_path / "palette.png")
    image = read_image(tmp_path / "palette.png", 3).numpy()
    np.testing.assert_allclose(image.transpose(1, 2, 0), colours[indices] / 255.0, rtol=0, atol=1e-7)


def test_a_large_jpeg_is_decoded_at_reduced_scale_but_never_below_the_target(tmp_path):
    rng = np.random.default_rng(2)
    smooth = np.kron(rng.integers(0, 256, (30, 40, 3)), np.ones((16, 16, 1))).astype(np.uint8)  # 480 x 640
    data = image_bytes(smooth, "JPEG", quality=95)
    reduced = read(tmp_path, data, "photo.jpg", channels=3, size=100)
    full = read(tmp_path, data, "photo.jpg", channels=3)
    assert full.shape == (3, 480, 640) and reduced.shape == (3, 120, 160)  # scale 1/4: the last one >= 100
    small = [resize(torch.from_numpy(image), 100) for image in (reduced, full)]
    assert float((small[0] - small[1]).abs().mean()) < 0.01


def test_an_image_over_the_pixel_budget_is_refused_from_its_header_before_decoding(tmp_path):
    side = int(MAX_PIXELS**0.5) + 1
    with pytest.raises(DataError) as caught:
        read(tmp_path, declared_png(side, side), "huge.png")
    assert f"huge.png is {side}x{side} pixels" in str(caught.value)
    assert "budget" in str(caught.value)  # the garbage pixel data was never decoded


def test_a_bomb_beyond_pils_own_limit_gets_the_same_message(tmp_path):
    with pytest.raises(DataError, match=r"bomb.png is 20000x10000 pixels \(200.0 megapixels\), over the budget"):
        read(tmp_path, declared_png(20000, 10000), "bomb.png")


def test_eight_bit_images_are_unchanged(tmp_path):
    pixels = np.random.default_rng(3).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read(tmp_path, image_bytes(pixels), channels=3).transpose(1, 2, 0),
                                  pixels.astype(np.float32) / 255)
