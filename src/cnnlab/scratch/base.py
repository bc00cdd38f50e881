"""What every layer shares: `Parameter` (a value and its gradient), `Layer`, and torch's default initialisation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(eq=False)
class Parameter:
    """A trainable array and the gradient that `backward` accumulates into it (`+=`)."""

    name: str
    value: np.ndarray
    grad: np.ndarray

    @classmethod
    def of(cls, name: str, value: np.ndarray) -> "Parameter":
        return cls(name, value, np.zeros_like(value))


class Layer(ABC):
    """A layer computes `forward(x, training)` and, from d loss / d output, `backward(dout)` = d loss / d input.

    `forward` keeps what `backward` needs (named for what it is); `backward`
    adds parameter gradients into each `Parameter.grad`. ``backward(dout,
    input_grad=False)`` may skip d loss / d input (the first layer never needs it).
    """

    name: str = ""

    @abstractmethod
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """The layer's output for `x`, keeping what `backward` will need."""

    @abstractmethod
    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """d loss / d input from d loss / d output, adding into each parameter's `grad`."""

    def parameters(self) -> list[Parameter]:
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def fan_in_uniform(rng: np.random.Generator, shape: tuple, fan_in: int, dtype) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): torch's default for Conv2d and Linear weights and biases.

    torch draws weights with kaiming_uniform(a=sqrt(5)), whose bound
    gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + 5)) is exactly 1 / sqrt(fan_in).
    """
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
