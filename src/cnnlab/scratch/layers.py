"""The layers around the convolutions: `Dense` (torch.nn.Linear), `Flatten` and inverted `Dropout`."""

from __future__ import annotations

import numpy as np

from cnnlab.scratch.base import Layer, Parameter, fan_in_uniform


class Dense(Layer):
    """torch.nn.Linear: y = x @ weight.T + bias, weight (out, in), bias (out,)."""

    def __init__(self, in_features: int, out_features: int, name: str = "dense",
                 rng: np.random.Generator | None = None, dtype=np.float32):
        rng = rng if rng is not None else np.random.default_rng(0)
        self.name = name
        weight = fan_in_uniform(rng, (out_features, in_features), in_features, dtype)
        self.weight = Parameter.of(f"{name}.weight", weight)
        self.bias = Parameter.of(f"{name}.bias", fan_in_uniform(rng, (out_features,), in_features, dtype))

    def parameters(self) -> list[Parameter]:
        return [self.weight, self.bias]

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = x  # (N, in)
        return x @ self.weight.value.T + self.bias.value  # (N, out)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        self.weight.grad += dout.T @ self.inputs
        self.bias.grad += dout.sum(axis=0)
        return dout @ self.weight.value if input_grad else None


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W) in C order, as torch.nn.Flatten, so dense weights carry over between engines."""

    def __init__(self, name: str = "flatten"):
        self.name = name

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        self.input_shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray:
        return dout.reshape(self.input_shape)


class Dropout(Layer):
    """Inverted dropout: in training, zero each value with probability `rate` and scale the rest by 1 / (1 - rate).

    Evaluation is then the identity. The masks come from the layer's own
    seeded generator, so a run is repeatable.
    """

    def __init__(self, rate: float, name: str = "dropout", seed: int | list[int] = 0):
        self.name, self.rate = name, rate
        self.rng = np.random.default_rng(seed)
        self.mask = None

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        if not training or self.rate == 0:
            self.mask = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float64 if x.dtype == np.float64 else np.float32) >= self.rate
        self.mask = keep * x.dtype.type(1 / (1 - self.rate))  # 0 or 1 / (1 - rate), same shape as x
        return x * self.mask

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray:
        return dout if self.mask is None else dout * self.mask
