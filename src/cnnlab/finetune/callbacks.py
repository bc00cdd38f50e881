"""Callbacks that save and restore the whole model while a Trainer may be training only its head.

On cached features the Trainer's model is the head alone; a run directory, a
checkpoint and early stopping's best weights must still be the whole network,
and stay valid when a later phase trains the backbone too.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnlab.train.callbacks import Callback, EarlyStopping, ModelCheckpoint
from cnnlab.train.rundir import atomic_write, save_weights


class FullModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that writes `model`'s weights, whatever part of it the Trainer trains."""

    def __init__(self, directory: str | Path, model: nn.Module, monitor: str = "val_loss"):
        super().__init__(directory, monitor)
        self.model = model

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self._improved(logs):
            save_weights(self.directory / "best.safetensors", self.model.state_dict())
        state = {**self.trainer.state_dict(), "model": self.model.state_dict()}
        atomic_write(self.directory / "state.pt", lambda p: torch.save(state, p))


class FullModelEarlyStopping(EarlyStopping):
    """EarlyStopping that keeps and restores `model`'s best weights across phases."""

    def __init__(self, model: nn.Module, **options):
        super().__init__(**options)
        self.model = model

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self._improved(logs):
            if self.restore_best_weights:
                self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        elif self.wait >= self.patience:
            self.trainer.stop_training = True
            self.trainer.print_fn(f"Early stopping: no better {self.monitor} for {self.patience} epochs.")

    def on_train_end(self) -> None:
        if self.restore_best_weights and self.best_weights is not None and self.trainer.stop_training:
            self.model.load_state_dict(self.best_weights)


class AddSeconds(Callback):
    """Adds time spent outside the loop (extracting features) to one epoch's `seconds`, before it is logged."""

    def __init__(self, epoch: int, seconds: float):
        self.epoch, self.seconds = epoch, seconds

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if epoch == self.epoch:
            logs["seconds"] += self.seconds
