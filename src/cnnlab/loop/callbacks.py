"""Keras-style callbacks. A callback reacts to the loop's events; to stop training it only sets a flag."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from cnnlab.files import atomic_write, save_weights, write_text
from cnnlab.run.history import HISTORY_FIELDS, history_csv

__all__ = ["HISTORY_FIELDS", "Callback", "CallbackList", "CSVLogger", "EarlyStopping", "ModelCheckpoint",
           "ReduceLROnPlateau", "TensorBoard", "tensorboard_available"]


class Callback:
    """Hooks the Trainer calls; `trainer` is set before `on_train_begin`."""

    trainer = None
    records_state = False  # True for callbacks that save the trainer's state: they run after all others

    def on_train_begin(self) -> None: ...

    def on_epoch_begin(self, epoch: int) -> None: ...

    def on_batch_end(self, batch: int, logs: dict) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...

    def on_interrupt(self, epoch: int, batch: int) -> None:
        """Training is being stopped after `batch` of `epoch` (0-based) by an interrupt."""

    def on_train_end(self) -> None: ...

    def state_dict(self) -> dict:
        """What a resumed run needs to carry on exactly."""
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class CallbackList(Callback):
    """Calls each callback in order; those that save state go last, so their state includes the others'."""

    def __init__(self, callbacks, trainer):
        self._trainer = trainer
        self.callbacks = sorted(callbacks, key=lambda c: c.records_state)
        for callback in self.callbacks:
            callback.trainer = trainer

    def add(self, callback: Callback) -> None:
        """Add a callback (it runs after the others unless they save state)."""
        callback.trainer = self._trainer
        self.callbacks = sorted([*self.callbacks, callback], key=lambda c: c.records_state)

    def on_train_begin(self) -> None:
        for c in self.callbacks:
            c.on_train_begin()

    def on_epoch_begin(self, epoch: int) -> None:
        for c in self.callbacks:
            c.on_epoch_begin(epoch)

    def on_batch_end(self, batch: int, logs: dict) -> None:
        for c in self.callbacks:
            c.on_batch_end(batch, logs)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        for c in self.callbacks:
            c.on_epoch_end(epoch, logs)

    def on_interrupt(self, epoch: int, batch: int) -> None:
        for c in self.callbacks:
            c.on_interrupt(epoch, batch)

    def on_train_end(self) -> None:
        for c in self.callbacks:
            c.on_train_end()

    def state_dict(self) -> dict:
        return {type(c).__name__: c.state_dict() for c in self.callbacks}

    def load_state_dict(self, state: dict) -> None:
        for callback in self.callbacks:
            callback.load_state_dict(state.get(type(callback).__name__, {}))


class _Monitor(Callback):
    """Shared by callbacks that watch one metric for improvement."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0):
        self.monitor = monitor
        self.min_delta = min_delta
        self.mode = "max" if "accuracy" in monitor else "min"
        self.best = -math.inf if self.mode == "max" else math.inf
        self.wait = 0

    def _improved(self, logs: dict) -> bool:
        value = logs.get(self.monitor)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        better = value > self.best + self.min_delta if self.mode == "max" else value < self.best - self.min_delta
        if better:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        return better

    def state_dict(self) -> dict:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict) -> None:
        self.best = state.get("best", self.best)
        self.wait = state.get("wait", self.wait)


class EarlyStopping(_Monitor):
    """Stop after `patience` epochs without improvement; then restore the best weights (Keras' behaviour).

    `model` is the network whose weights count when the trainer trains only a
    part of it (a head on cached features); by default the trainer's model.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, restore_best_weights: bool = True,
                 min_delta: float = 0.0, model=None):
        super().__init__(monitor, min_delta)
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.model = model
        self.best_weights = None

    def _model(self):
        return self.model if self.model is not None else self.trainer.model

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self._improved(logs):
            if self.restore_best_weights:
                self.best_weights = {k: v.detach().clone() for k, v in self._model().state_dict().items()}
        elif self.wait >= self.patience:
            self.trainer.stop_training = True
            self.trainer.print_fn(f"Early stopping: no better {self.monitor} for {self.patience} epochs.")

    def on_train_end(self) -> None:
        if self.restore_best_weights and self.best_weights is not None and self.trainer.stop_training:
            self._model().load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.best_weights = state.get("best_weights", self.best_weights)


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by `factor` after `patience` epochs without improvement."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.5, patience: int = 3, min_lr: float = 1e-6):
        super().__init__(monitor)
        self.factor, self.patience, self.min_lr = factor, patience, min_lr

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if not self._improved(logs) and self.wait >= self.patience:
            self.trainer.scale_lr(self.factor, self.min_lr)
            self.wait = 0


class CSVLogger(Callback):
    """Rewrite history.csv after every epoch (atomically), one row per epoch."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        write_text(self.path, history_csv(self.trainer.history))


class ModelCheckpoint(_Monitor):
    """Keep the latest resumable state in `DIR/state.pt` and the best weights in `DIR/best.safetensors`."""

    records_state = True

    def __init__(self, directory: str | Path, monitor: str = "val_loss"):
        super().__init__(monitor)
        self.directory = Path(directory)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self._improved(logs):
            save_weights(self.directory / "best.safetensors", self.trainer.model.state_dict())
        state = self.trainer.state_dict()
        atomic_write(self.directory / "state.pt", lambda p: torch.save(state, p))


class TensorBoard(Callback):
    """Scalars per epoch for TensorBoard, when the tensorboard package is installed."""

    def __init__(self, log_dir: str | Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir))

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        for key, value in logs.items():
            if isinstance(value, float) and key not in ("seconds", "epoch"):
                self.writer.add_scalar(key, value, epoch)

    def on_train_end(self) -> None:
        self.writer.close()


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True
