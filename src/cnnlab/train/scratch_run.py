"""`cnnlab train --engine numpy`: the from-scratch engine writing the same run directory as the torch engine.

The NumPy network starts from the very weights the torch engine would draw
with the same seed, and visits batches in the same order, so the two engines'
runs can be compared epoch by epoch. The saved tensors carry the torch
model's names, so evaluate, predict, summary, explain and report load a
scratch run as they load any other.
"""

from __future__ import annotations

import sys
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from cnnlab import scratch
from cnnlab.errors import ConfigError
from cnnlab.run import Run, TrainConfig
from cnnlab.loop.callbacks import CallbackList, EarlyStopping
from cnnlab.loop.trainer import epoch_line


def check_supported(config: TrainConfig) -> None:
    """ConfigError for the options only the torch engine has."""
    unsupported = [(config.optimizer != "sgd", f"--optimizer {config.optimizer}"),
                   (config.schedule != "time", f"--schedule {config.schedule}"),
                   (bool(config.augment), "--augment"), (config.precision != "fp32", f"--precision {config.precision}"),
                   (config.weight_decay > 0, "--weight-decay"), (config.label_smoothing > 0, "--label-smoothing"),
                   (config.reduce_lr_patience is not None, "--reduce-lr-patience"), (config.compile, "--compile")]
    for bad, option in unsupported:
        if bad:
            raise ConfigError(f"The NumPy engine does not support {option}; it trains with SGD (momentum, Nesterov, "
                              f"time-based decay) in fp32 without augmentation. Use --engine torch for {option}.")


class _Weights:
    """The scratch network's weights as torch tensors, for callbacks written against torch models."""

    def __init__(self, net):
        self.net = net

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.ascontiguousarray(v).copy()) for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict({k: v.numpy() for k, v in state.items()})


class ScratchJob:
    """A run trained by the NumPy engine, from the torch twin `network`'s initial weights."""

    def __init__(self, run: Run, splits, config: TrainConfig, network: nn.Module, *,
                 print_fn: Callable[[str], None] = print, quiet: bool = False, progress: bool = True,
                 callbacks: Iterable = ()):
        if list(callbacks):
            raise ConfigError("The NumPy engine takes no Trainer callbacks; use --engine torch for them.")
        self.splits, self.config = splits, config
        self.print_fn, self.quiet, self.progress = print_fn, quiet, progress
        classes, shape = len(splits.class_names), splits.input_shape
        self.net = scratch.build(config.model, classes, shape, seed=config.seed)
        self.net.load_state_dict({k: v.numpy() for k, v in network.state_dict().items()})
        self.optimizer = scratch.SGD(self.net.parameters(), lr=config.base_lr, momentum=config.momentum,
                                     nesterov=config.nesterov and config.momentum > 0, decay=config.decay)
        self.trainer = scratch.ScratchTrainer(self.net, self.optimizer)
        self.model = _Weights(self.net)  # what EarlyStopping saves and restores
        self.history: list[dict] = []
        self.stop_training = False
        self.n_params = sum(p.value.size for p in self.net.parameters())
        self.n_train = len(splits.train)
        self.callbacks = CallbackList([EarlyStopping(patience=config.patience)] if config.patience else [], self)
        self._interrupted = False

    def describe(self) -> str:
        val = len(self.splits.val) if self.splits.val is not None else 0
        return (f"Training {self.config.model} with the NumPy engine on {self.config.data}: {self.n_train:,} train / "
                f"{val:,} val / {len(self.splits.test):,} test images, {len(self.splits.class_names)} classes")

    def _dropouts(self) -> list:
        return [layer for layer in self.net.layers if isinstance(layer, scratch.Dropout)]

    def fit(self, recorder) -> None:
        recorder.trainer = self
        x, y = _arrays(self.splits.train)
        validation = _arrays(self.splits.val) if self.splits.val is not None and len(self.splits.val) else None
        done, epochs = len(self.history), self.config.epochs
        bar = None

        def on_batch_end(batch: int, logs: dict) -> None:
            nonlocal bar
            if self._interrupted:
                raise KeyboardInterrupt
            if self.progress and not self.quiet:
                if bar is None:
                    from tqdm.auto import tqdm

                    bar = tqdm(total=len(x), desc=f"Epoch {len(self.history) + 1}/{epochs}", unit="img",
                               leave=False, disable=None, file=sys.stderr)
                bar.update(logs["size"])
                bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

        def on_epoch_end(epoch: int, logs: dict) -> None:
            nonlocal bar
            if bar is not None:
                bar.close()
                bar = None
            logs = {**logs, "epoch": done + epoch + 1}
            self.history.append(logs)
            if not self.quiet:
                self.print_fn(epoch_line(logs, epochs))
            self.callbacks.on_epoch_end(done + epoch, logs)
            recorder.on_epoch_end(done + epoch, logs)
            self.trainer.stop_training = self.stop_training

        # epoch k of the run shuffles with default_rng(seed + k): a resumed run starts its count at `done`
        self.trainer.fit(x, y, validation_data=validation, epochs=epochs - done, batch_size=self.config.batch_size,
                         shuffle=self.config.shuffle, seed=self.config.seed + done, on_epoch_end=on_epoch_end,
                         on_batch_end=on_batch_end)
        self.callbacks.on_train_end()

    def interrupt(self) -> None:
        self._interrupted = True

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(),
                "optimizer": {"iterations": self.optimizer.iterations,
                              "buffers": [None if b is None else torch.from_numpy(b.copy())
                                          for b in self.optimizer.buffers]},
                "dropout_rng": [layer.rng.bit_generator.state for layer in self._dropouts()],
                "callbacks": self.callbacks.state_dict(), "epoch": len(self.history), "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.iterations = int(state["optimizer"]["iterations"])
        self.optimizer.buffers = [None if b is None else b.numpy().copy() for b in state["optimizer"]["buffers"]]
        for layer, rng_state in zip(self._dropouts(), state.get("dropout_rng", [])):
            layer.rng.bit_generator.state = rng_state
        self.callbacks.load_state_dict(state.get("callbacks", {}))
        self.history = list(state["history"])

    def weights(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def evaluate_test(self) -> dict:
        loss, accuracy = self.trainer.evaluate(*_arrays(self.splits.test))
        return {"loss": loss, "accuracy": accuracy, "images": len(self.splits.test)}

    def extra_metrics(self) -> dict:
        return {}


def _arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(dataset, "x") and torch.is_tensor(dataset.x):
        return dataset.x.numpy().astype(np.float32, copy=False), dataset.y.numpy()
    return dataset.load().numpy(), np.asarray(dataset.targets)
