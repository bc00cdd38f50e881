"""The vectorised convolutions against the per-pixel loops of the classic tutorials."""

import numpy as np
import pytest
from .scratch_reference import conv2d_loop, conv3d_loop

from cnnlab.scratch import Conv2D, conv3d


@pytest.mark.parametrize("image_shape, kernel_shape", [((9, 7, 3), (3, 3, 3)), ((8, 10, 2), (2, 5, 2)),
                                                       ((6, 6, 1), (6, 1, 1))])
def test_conv3d_matches_the_loop_with_its_own_kernel_size_on_each_axis(image_shape, kernel_shape):
    rng = np.random.default_rng(0)
    image, kernel = rng.standard_normal(image_shape), rng.standard_normal(kernel_shape)
    expected = conv3d_loop(image, kernel)
    result = conv3d(image, kernel)
    assert result.shape == (image_shape[0] - kernel_shape[0] + 1, image_shape[1] - kernel_shape[1] + 1)
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12)


def test_conv3d_rejects_mismatched_channels():
    with pytest.raises(ValueError, match="same C"):
        conv3d(np.zeros((5, 5, 3)), np.zeros((3, 3, 2)))


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), (3, 2)])
def test_conv2d_forward_matches_the_per_pixel_loop(stride, padding):
    rng = np.random.default_rng(1)
    layer = Conv2D(3, 4, 3, stride, padding, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 3, 9, 8))
    expected = conv2d_loop(x, layer.weight.value, layer.bias.value, stride, padding)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)
