"""The sources that ship with the libraries cnnlab depends on, so they work offline: digits and lfw-faces."""

from __future__ import annotations

import math

import numpy as np
import torch

from cnnlab.data.datasets import ArrayDataset
from cnnlab.data.images import resize, to_channels
from cnnlab.data.specs import Source, register_spec
from cnnlab.errors import ConfigError
from cnnlab.memory import FLOAT32_BYTES, beyond_memory


def array_source(images: np.ndarray, labels: np.ndarray, class_names: list[str], image_size: int,
                 channels: int) -> Source:
    """A Source from (N, H, W) or (N, C, H, W) images in [0, 1], resized whole and brought to `channels`."""
    shape = (len(images), channels, image_size, image_size)
    needed = beyond_memory(math.prod(shape) * FLOAT32_BYTES)
    if needed:
        raise ConfigError(f"{shape[0]:,} images of {channels}x{image_size}x{image_size} in memory {needed}. "
                          f"Use a smaller --image-size.")
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    x = x[:, None] if x.dim() == 3 else x
    x = to_channels(resize(x, image_size), channels)
    return Source(ArrayDataset(x, torch.as_tensor(labels, dtype=torch.int64)), class_names)


@register_spec("digits", "1,797 handwritten digits, 10 classes, 8x8 grey upscaled (28 by default); sklearn",
               image_size=28, channels=1)
def load_digits(directory, image_size: int, channels: int) -> Source:
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    # Pixel values are counts of 0..16 set pixels in each 4x4 block of the original 32x32 bitmap.
    return array_source(digits.images / 16.0, digits.target, [str(d) for d in range(10)], image_size, channels)


@register_spec("lfw-faces", "200 grey 25x25 images: 100 faces, 100 non-faces (LFW backgrounds); skimage",
               image_size=25, channels=1)
def load_lfw_faces(directory, image_size: int, channels: int) -> Source:
    from skimage.data import lfw_subset

    images = np.asarray(lfw_subset(), dtype=np.float32)
    if images.max() > 1.0:  # documented as uint8, shipped as floats in [0, 1]
        images = images / 255.0
    # skimage's documentation: the first 100 images are faces, the next 100 are not.
    labels = np.repeat([0, 1], len(images) // 2)
    return array_source(images, labels, ["face", "non-face"], image_size, channels)
