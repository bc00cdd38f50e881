"""Readable references for the NumPy engine's tests: per-pixel loops, finite differences, the digits data."""

from __future__ import annotations

import numpy as np


def conv3d_loop(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The classic tutorial's loop: slide an (x, y, C) kernel over an (H, W, C) image, one output pixel at a time."""
    kx, ky, _ = kernel.shape
    out = np.zeros((image.shape[0] - kx + 1, image.shape[1] - ky + 1))
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[r, c] = np.sum(image[r:r + kx, c:c + ky, :] * kernel)
    return out


def conv2d_loop(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
    """torch.nn.Conv2d written as nested loops over images, filters and output pixels."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, _, h, w = x.shape
    out_channels, _, k, _ = weight.shape
    h_out, w_out = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((n, out_channels, h_out, w_out), dtype=x.dtype)
    for image in range(n):
        for f in range(out_channels):
            for r in range(h_out):
                for c in range(w_out):
                    window = x[image, :, r * stride:r * stride + k, c * stride:c * stride + k]
                    out[image, f, r, c] = np.sum(window * weight[f]) + bias[f]
    return out


def numerical_gradient(f, array: np.ndarray, indices=None, eps: float = 1e-6) -> np.ndarray:
    """Central differences (f(a + eps) - f(a - eps)) / 2 eps of the scalar f() at `indices` of `array` (all by default).

    `array` is perturbed in place and restored.
    """
    flat = array.reshape(-1)
    indices = range(flat.size) if indices is None else indices
    grads = []
    for i in indices:
        original = flat[i]
        flat[i] = original + eps
        plus = f()
        flat[i] = original - eps
        minus = f()
        flat[i] = original
        grads.append((plus - minus) / (2 * eps))
    return np.array(grads)


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """|a - b| / (|a| + |b|) over whole arrays: the usual gradient-check measure."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def assert_close(actual, expected, rtol: float, what: str = "") -> None:
    """max |actual - expected| <= rtol * max |expected|: relative to the array's scale, so zeros do not break it."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(float(np.abs(expected).max()), 1e-300)
    error = float(np.abs(actual - expected).max()) / scale
    assert error <= rtol, f"{what}: relative error {error:.3g} > {rtol:.0e}"


def digits_28(dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 1,797 8x8 digits scaled to [0, 1] and upscaled to 28x28 as cnnlab does: (N, 1, 28, 28), labels."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    images = F.interpolate(images, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    return images.numpy().astype(dtype), digits.target.astype(np.int64)
