"""Stochastic gradient descent with momentum, Nesterov momentum and Keras' time-based learning-rate decay."""

from __future__ import annotations

import numpy as np

from cnnlab.errors import ConfigError, invalid
from cnnlab.scratch.base import Parameter


class SGD:
    """torch.optim.SGD(params, lr, momentum, nesterov, dampening=0, weight_decay=0) with lr / (1 + decay * t).

    Update t (t = 0 first) uses learning rate lr_t = lr / (1 + decay * t) and, per parameter:
        buffer = g                       at t = 0, else momentum * buffer + g
        step   = g + momentum * buffer   with Nesterov, else buffer (plain g without momentum)
        value -= lr_t * step
    """

    def __init__(self, parameters: list[Parameter], lr: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, decay: float = 0.0):
        if not lr > 0:
            raise ConfigError(invalid("'lr' parameter", "SGD", "a float in (0, inf)", lr))
        if not 0 <= momentum < 1:
            raise ConfigError(invalid("'momentum' parameter", "SGD", "a float in [0, 1)", momentum))
        if not decay >= 0:
            raise ConfigError(invalid("'decay' parameter", "SGD", "a float in [0, inf)", decay))
        if nesterov and momentum == 0:
            raise ConfigError(invalid("'momentum' parameter", "SGD", "> 0 when nesterov is on", momentum))
        self.parameters = list(parameters)
        self.lr, self.momentum, self.nesterov, self.decay = lr, momentum, nesterov, decay
        self.iterations = 0  # updates made so far: t of the next update
        self.buffers: list[np.ndarray | None] = [None] * len(self.parameters)

    @property
    def current_lr(self) -> float:
        """The learning rate the next `step` uses."""
        return self.lr / (1 + self.decay * self.iterations)

    def step(self) -> None:
        lr = self.current_lr
        for index, param in enumerate(self.parameters):
            grad = param.grad
            if self.momentum:
                buffer = self.buffers[index]
                if buffer is None:
                    buffer = self.buffers[index] = grad.copy()
                else:
                    buffer *= self.momentum
                    buffer += grad
                grad = grad + self.momentum * buffer if self.nesterov else buffer
            param.value -= lr * grad
        self.iterations += 1

    def zero_grad(self) -> None:
        for param in self.parameters:
            param.grad[...] = 0
