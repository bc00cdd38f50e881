"""A callback of fine-tuning's own: time spent outside the loop counted in the epoch it served."""

from __future__ import annotations

from cnnlab.loop.callbacks import Callback


class AddSeconds(Callback):
    """Adds time spent outside the loop (extracting features) to one epoch's `seconds`, before it is logged."""

    def __init__(self, epoch: int, seconds: float):
        self.epoch, self.seconds = epoch, seconds

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if epoch == self.epoch:
            logs["seconds"] += self.seconds
