"""Activations: each backward multiplies dout by the derivative, written in terms of what forward kept."""

from __future__ import annotations

import numpy as np

from cnnlab.scratch.base import Layer


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)); dy/dx = y (1 - y)."""

    def __init__(self, name: str = "sigmoid"):
        self.name = name

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        # exp of -|x| never overflows; the two branches are the same function
        e = np.exp(-np.abs(x))
        self.outputs = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.outputs

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray:
        return dout * self.outputs * (1 - self.outputs)


class Tanh(Layer):
    """y = tanh(x); dy/dx = 1 - y^2."""

    def __init__(self, name: str = "tanh"):
        self.name = name

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.outputs = np.tanh(x)
        return self.outputs

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray:
        return dout * (1 - self.outputs * self.outputs)


class ReLU(Layer):
    """y = max(x, 0); dy/dx = 1 where x > 0, else 0 (torch's choice at 0)."""

    def __init__(self, name: str = "relu"):
        self.name = name

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.positive = x > 0
        return np.where(self.positive, x, x.dtype.type(0))

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray:
        return np.where(self.positive, dout, dout.dtype.type(0))


class Softmax(Layer):
    """Probabilities over the last axis; backward is the Jacobian-vector product y * (dout - sum(dout * y)).

    For training use `softmax_cross_entropy` on logits instead: it is exact where
    softmax followed by log would round to log(0).
    """

    def __init__(self, name: str = "softmax"):
        self.name = name

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.outputs = softmax(x)
        return self.outputs

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray:
        y = self.outputs
        return y * (dout - (dout * y).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """exp(z - max z) / sum exp(z - max z): shifting by the maximum keeps exp from overflowing."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
