"""Pooling over k x k windows with a stride: max (gradient to the winner) and average (gradient shared).

Both loop over the k * k offsets of a window, never over pixels: offset (i, j)
of every window at once is the strided slice ``x[:, :, i::stride, j::stride]``.
"""

from __future__ import annotations

import numpy as np

from cnnlab.scratch.base import Layer


def _offset_slices(size: int, stride: int, h_out: int, w_out: int):
    """For each offset (i, j) in row-major order, the slices picking it from every window."""
    for i in range(size):
        for j in range(size):
            yield (slice(None), slice(None), slice(i, i + stride * (h_out - 1) + 1, stride),
                   slice(j, j + stride * (w_out - 1) + 1, stride))


class MaxPool2D(Layer):
    """torch.nn.MaxPool2d(size, stride): the gradient goes to each window's maximum; on ties the first one wins."""

    def __init__(self, size: int, stride: int | None = None, name: str = "maxpool"):
        self.name, self.size, self.stride = name, size, stride or size

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        h, w = x.shape[2:]
        h_out, w_out = (h - self.size) // self.stride + 1, (w - self.size) // self.stride + 1
        windows = _offset_slices(self.size, self.stride, h_out, w_out)
        out = x[next(windows)].copy(order="K")  # (N, C, H_out, W_out), stored like x
        for window in windows:
            np.maximum(out, x[window], out=out)
        self.inputs, self.outputs = x, out
        return out

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray:
        x, out = self.inputs, self.outputs
        dx = np.zeros_like(x, dtype=dout.dtype)
        routed = np.zeros_like(out, dtype=bool)  # windows whose maximum has had its gradient
        for window in _offset_slices(self.size, self.stride, *out.shape[2:]):
            # scanning offsets row-major, only the first maximum of a window takes the gradient, as in torch
            winner = (x[window] == out) & ~routed
            routed |= winner
            dx[window] += winner * dout
        return dx


class AvgPool2D(Layer):
    """torch.nn.AvgPool2d(size, stride): each output is its window's mean, so each input gets dout / (k * k)."""

    def __init__(self, size: int, stride: int | None = None, name: str = "avgpool"):
        self.name, self.size, self.stride = name, size, stride or size

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        h, w = x.shape[2:]
        h_out, w_out = (h - self.size) // self.stride + 1, (w - self.size) // self.stride + 1
        windows = _offset_slices(self.size, self.stride, h_out, w_out)
        out = x[next(windows)].copy(order="K")
        for window in windows:
            out += x[window]
        self.inputs = x
        return out * x.dtype.type(1 / self.size ** 2)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray:
        dx = np.zeros_like(self.inputs, dtype=dout.dtype)
        share = dout * dout.dtype.type(1 / self.size ** 2)
        for window in _offset_slices(self.size, self.stride, *dout.shape[2:]):
            dx[window] += share
        return dx
