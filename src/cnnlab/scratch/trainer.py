"""`ScratchTrainer`: Keras-style fit / evaluate / predict for a scratch `Sequential` and its optimiser."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from cnnlab.scratch.activations import softmax
from cnnlab.scratch.losses import softmax_cross_entropy
from cnnlab.scratch.network import Sequential
from cnnlab.scratch.optim import SGD


class ScratchTrainer:
    """Mini-batch training with the same batch order and bookkeeping as cnnlab's torch Trainer.

    Epoch e (0-based) visits the samples in the order
    ``np.random.default_rng(seed + e).permutation(n)`` (0..n-1 without
    shuffle), in consecutive batches, the last partial batch kept. A callback
    may set ``trainer.stop_training = True`` to end `fit` after the epoch.
    """

    def __init__(self, net: Sequential, optimizer: SGD):
        self.net, self.optimizer = net, optimizer
        self.stop_training = False

    def fit(self, x: np.ndarray, y: np.ndarray, validation_data: tuple | None = None, epochs: int = 10,
            batch_size: int = 100, shuffle: bool = True, seed: int = 0,
            on_epoch_end: Callable[[int, dict], None] | None = None,
            on_batch_end: Callable[[int, dict], None] | None = None) -> list[dict]:
        """Train; return one dict per epoch: epoch (from 1), lr, loss, accuracy, val_loss, val_accuracy, seconds.

        loss and accuracy are over the epoch's training batches (weighted by batch
        size, as the network was during the epoch); lr is the rate of the next
        update; val_* are None without validation data.
        """
        x, y = np.asarray(x, dtype=self.net.dtype), _labels(y)
        n, history = len(x), []
        self.stop_training = False
        for epoch in range(epochs):
            start = time.perf_counter()
            order = np.random.default_rng(seed + epoch).permutation(n) if shuffle else np.arange(n)
            loss_sum, correct = 0.0, 0
            for batch, first in enumerate(range(0, n, batch_size)):
                rows = order[first:first + batch_size]
                loss, batch_correct = self.train_step(x[rows], y[rows])
                loss_sum += loss * len(rows)
                correct += batch_correct
                if on_batch_end is not None:
                    on_batch_end(batch, {"loss": loss, "size": len(rows), "lr": self.optimizer.current_lr})
            logs = {"epoch": epoch + 1, "lr": self.optimizer.current_lr, "loss": loss_sum / n,
                    "accuracy": correct / n, "val_loss": None, "val_accuracy": None}
            if validation_data is not None:
                logs["val_loss"], logs["val_accuracy"] = self.evaluate(*validation_data)
            logs["seconds"] = time.perf_counter() - start
            history.append(logs)
            if on_epoch_end is not None:
                on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        return history

    def train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """One update on one batch; returns the batch's mean loss and its number of correct predictions."""
        self.optimizer.zero_grad()
        logits = self.net.forward(x, training=True)
        loss, dlogits = softmax_cross_entropy(logits, y)
        self.net.backward(dlogits)
        self.optimizer.step()
        return loss, int((logits.argmax(axis=1) == y).sum())

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> tuple[float, float]:
        """Mean loss and accuracy over (x, y), without dropout."""
        y = _labels(y)
        loss_sum, correct = 0.0, 0
        for first in range(0, len(x), batch_size):
            logits = self.net.forward(x[first:first + batch_size], training=False)
            labels = y[first:first + batch_size]
            loss, _ = softmax_cross_entropy(logits, labels)
            loss_sum += loss * len(labels)
            correct += int((logits.argmax(axis=1) == labels).sum())
        return loss_sum / len(x), correct / len(x)

    def predict(self, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """Class probabilities (N, classes), without dropout."""
        return np.concatenate([softmax(self.net.forward(x[first:first + batch_size], training=False))
                               for first in range(0, len(x), batch_size)])


def _labels(y: np.ndarray) -> np.ndarray:
    """Class indices from indices or one-hot rows."""
    y = np.asarray(y)
    return y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)
