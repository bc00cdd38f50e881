"""Convolution: the one-image `conv3d` of the classic tutorial, and the batched, trainable `Conv2D`.

Both are cross-correlations (no kernel flip), as in torch and Keras. Neither
loops over pixels: `sliding_window_view` gives every k x k window of the input
as a view (no copy), and one matrix product multiplies all windows by all
kernels at once ("im2col").
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnlab.scratch.base import Layer, Parameter, fan_in_uniform


def conv3d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Valid cross-correlation of an (H, W, C) image with an (x, y, C) kernel: an (H - x + 1, W - y + 1) map.

    Each output pixel is the sum over the x * y * C window under the kernel of
    window * kernel; the kernel may be rectangular.
    """
    if image.ndim != 3 or kernel.ndim != 3 or image.shape[2] != kernel.shape[2]:
        raise ValueError(f"conv3d needs an (H, W, C) image and an (x, y, C) kernel with the same C; "
                         f"got {image.shape} and {kernel.shape}.")
    windows = sliding_window_view(image, kernel.shape[:2], axis=(0, 1))  # (H_out, W_out, C, x, y)
    return np.tensordot(windows, kernel.transpose(2, 0, 1), axes=3)


class Conv2D(Layer):
    """torch.nn.Conv2d on (N, C, H, W) input: weight (C_out, C_in, k, k), bias (C_out,), stride, zero padding.

    Arrays keep the shape (N, C, H, W) but are stored batch-last (memory order
    C, H, W, N): a shifted window slice then copies runs of W * N contiguous
    numbers instead of W, which makes im2col and col2im several times faster,
    and it is the order in which the matrix product produces the output anyway.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 name: str = "conv", rng: np.random.Generator | None = None, dtype=np.float32):
        rng = rng if rng is not None else np.random.default_rng(0)
        fan_in = in_channels * kernel_size * kernel_size
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.name, self.kernel_size, self.stride, self.padding = name, kernel_size, stride, padding
        self.weight = Parameter.of(f"{name}.weight", fan_in_uniform(rng, shape, fan_in, dtype))
        self.bias = Parameter.of(f"{name}.bias", fan_in_uniform(rng, (out_channels,), fan_in, dtype))
        self.columns: np.ndarray | None = None  # every input window, one per column; reused between batches

    def parameters(self) -> list[Parameter]:
        return [self.weight, self.bias]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        k, s, p = self.kernel_size, self.stride, self.padding
        x = batch_last(x)
        if p:
            padded = np.zeros((x.shape[1], x.shape[2] + 2 * p, x.shape[3] + 2 * p, len(x)), dtype=x.dtype)
            padded[:, p:-p, p:-p] = x.transpose(1, 2, 3, 0)
            x = padded.transpose(3, 0, 1, 2)
        n, c = x.shape[:2]
        windows = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # (N, C, H_out, W_out, k, k), a view
        h_out, w_out = windows.shape[2:4]
        columns_shape = (c, k, k, h_out, w_out, n)
        if self.columns is None or self.columns.shape != columns_shape or self.columns.dtype != x.dtype:
            self.columns = np.empty(columns_shape, dtype=x.dtype)
        np.copyto(self.columns, windows.transpose(1, 4, 5, 2, 3, 0))  # the one copy: im2col
        self.padded_shape = x.shape
        kernels = self.weight.value.reshape(len(self.weight.value), -1)  # (C_out, C*k*k)
        out = kernels @ self.columns.reshape(c * k * k, -1)  # (C_out, H_out*W_out*N)
        out += self.bias.value[:, None]
        return out.reshape(-1, h_out, w_out, n).transpose(3, 0, 1, 2)  # (N, C_out, H_out, W_out), batch-last

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        k, s, p = self.kernel_size, self.stride, self.padding
        c, _, _, h_out, w_out, n = self.columns.shape
        # (C_out, H_out*W_out*N), a view when dout is stored batch-last as the forward output was
        dout_rows = batch_last(dout).transpose(1, 2, 3, 0).reshape(len(self.weight.value), -1)
        columns = self.columns.reshape(c * k * k, -1)  # (C*k*k, H_out*W_out*N)
        # (columns @ dout_rows.T).T is dout_rows @ columns.T; BLAS does the long sum faster this way round
        self.weight.grad += (columns @ dout_rows.T).T.reshape(self.weight.value.shape)
        self.bias.grad += dout_rows.sum(axis=1)
        if not input_grad:
            return None
        kernels = self.weight.value.reshape(len(self.weight.value), -1)
        dcolumns = (kernels.T @ dout_rows).reshape(c, k, k, h_out, w_out, n)
        # col2im: each kernel offset (i, j) adds its share back onto the pixels it read.
        _, _, h, w = self.padded_shape
        dx = np.zeros((c, h, w, n), dtype=dcolumns.dtype)
        for i in range(k):
            for j in range(k):
                dx[:, i:i + s * (h_out - 1) + 1:s, j:j + s * (w_out - 1) + 1:s] += dcolumns[:, i, j]
        dx = dx.transpose(3, 0, 1, 2)  # (N, C, H, W), batch-last
        return dx[:, :, p:h - p, p:w - p] if p else dx


def batch_last(x: np.ndarray) -> np.ndarray:
    """The same (N, C, H, W) array stored batch-last (memory order C, H, W, N); copies only if it is not already."""
    return np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
