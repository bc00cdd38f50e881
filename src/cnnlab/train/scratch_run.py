"""`cnnlab train --engine numpy`: the from-scratch engine writing the same run directory as the torch engine.

The NumPy network starts from the very weights the torch engine would draw
with the same seed, and visits batches in the same order, so the two engines'
runs can be compared epoch by epoch. The saved tensors carry the torch
model's names, so evaluate, predict, summary, explain and report load a
scratch run as they load any other.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from cnnlab.errors import ConfigError
from cnnlab.train.api import TrainResult, write_run_config
from cnnlab.train.callbacks import CSVLogger
from cnnlab.train.config import TrainConfig
from cnnlab.train.rundir import atomic_write, save_weights, write_json
from cnnlab.train.trainer import epoch_line


def train_scratch(config: TrainConfig, splits, run_dir: Path, quiet: bool = False, print_fn=print,
                  progress: bool = True, state: dict | None = None) -> TrainResult:
    """Train `config.model` with the NumPy engine on `splits` and write `run_dir`."""
    from cnnlab import scratch
    from cnnlab.data.preprocess import Preprocess
    from cnnlab.models.registry import create_model

    _check_supported(config)
    classes, shape = len(splits.class_names), splits.input_shape
    torch.manual_seed(config.seed)
    torch_twin = create_model(config.model, classes, shape)
    net = scratch.build(config.model, classes, shape, seed=config.seed)
    net.load_state_dict({k: v.numpy() for k, v in torch_twin.state_dict().items()})
    optimizer = scratch.SGD(net.parameters(), lr=config.base_lr, momentum=config.momentum,
                            nesterov=config.nesterov and config.momentum > 0, decay=config.decay)
    trainer = scratch.ScratchTrainer(net, optimizer)
    history: list[dict] = []
    if state is None:
        write_run_config(run_dir, config, splits, {"model": config.model}, Preprocess(),
                      sum(p.value.size for p in net.parameters()), "bilinear")
    else:
        net.load_state_dict({k: v.numpy() for k, v in state["model"].items()})
        optimizer.iterations = int(state["optimizer"]["iterations"])
        optimizer.buffers = [None if b is None else b.numpy().copy() for b in state["optimizer"]["buffers"]]
        history = list(state["history"])
    x, y = _arrays(splits.train)
    validation = _arrays(splits.val) if splits.val is not None and len(splits.val) else None
    done = len(history)
    if not quiet:
        print_fn(f"Training {config.model} with the NumPy engine on {config.data}: {len(x):,} train / "
                 f"{len(validation[0]) if validation else 0:,} val / {len(splits.test):,} test images, {classes} classes")
    csv_logger = CSVLogger(run_dir / "history.csv")
    csv_logger.trainer = trainer
    trainer.history = history
    watch = _Patience(config.patience)
    bar = None

    def on_batch_end(batch: int, logs: dict) -> None:
        nonlocal bar
        if progress and not quiet:
            if bar is None:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(x), desc=f"Epoch {len(history) + 1}/{config.epochs}", unit="img",
                           leave=False, disable=None, file=sys.stderr)
            bar.update(logs["size"])
            bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    def on_epoch_end(epoch: int, logs: dict) -> None:
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None
        logs = {**logs, "epoch": done + epoch + 1}
        history.append(logs)
        if not quiet:
            print_fn(epoch_line({k: v for k, v in logs.items() if v is not None}, config.epochs))
        csv_logger.on_epoch_end(epoch, logs)
        _save_checkpoint(run_dir / "checkpoint" / "state.pt", net, optimizer, history)
        trainer.stop_training = watch.should_stop(logs.get("val_loss"))

    started = time.perf_counter()
    # epoch k of the run shuffles with default_rng(seed + k): a resumed run starts its count at `done`
    trainer.fit(x, y, validation_data=validation, epochs=config.epochs - done, batch_size=config.batch_size,
                shuffle=config.shuffle, seed=config.seed + done, on_epoch_end=on_epoch_end, on_batch_end=on_batch_end)
    seconds = sum(row["seconds"] for row in history) or time.perf_counter() - started
    save_weights(run_dir / "model.safetensors", {k: torch.from_numpy(np.ascontiguousarray(v))
                                                 for k, v in net.state_dict().items()})
    test_loss, test_accuracy = trainer.evaluate(*_arrays(splits.test))
    metrics = {"test_accuracy": test_accuracy, "test_loss": test_loss,
               "val_accuracy": history[-1]["val_accuracy"] if history else None,
               "val_loss": history[-1]["val_loss"] if history else None, "epochs": len(history),
               "train_seconds": round(seconds, 3), "n_params": sum(p.value.size for p in net.parameters()),
               "train_images_per_second": round(len(x) * len(history) / max(seconds, 1e-9), 1)}
    write_json(run_dir / "metrics.json", metrics)
    print_fn(f"Test accuracy {test_accuracy:.4f} (loss {test_loss:.4f}) on {len(splits.test):,} images; "
             f"run written to {run_dir}")
    return TrainResult(run_dir, metrics, history)


def _check_supported(config: TrainConfig) -> None:
    unsupported = [(config.optimizer != "sgd", f"--optimizer {config.optimizer}"),
                   (config.schedule != "time", f"--schedule {config.schedule}"),
                   (bool(config.augment), "--augment"), (config.precision != "fp32", f"--precision {config.precision}"),
                   (config.weight_decay > 0, "--weight-decay"), (config.label_smoothing > 0, "--label-smoothing"),
                   (config.reduce_lr_patience is not None, "--reduce-lr-patience")]
    for bad, option in unsupported:
        if bad:
            raise ConfigError(f"The NumPy engine does not support {option}; it trains with SGD (momentum, Nesterov, "
                              f"time-based decay) in fp32 without augmentation. Use --engine torch for {option}.")


def _arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(dataset, "x") and torch.is_tensor(dataset.x):
        return dataset.x.numpy().astype(np.float32, copy=False), dataset.y.numpy()
    return dataset.load().numpy(), np.asarray(dataset.targets)


def _save_checkpoint(path: Path, net, optimizer, history: list[dict]) -> None:
    state = {"model": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in net.state_dict().items()},
             "optimizer": {"iterations": optimizer.iterations,
                           "buffers": [None if b is None else torch.from_numpy(b.copy()) for b in optimizer.buffers]},
             "epoch": len(history), "history": history}
    atomic_write(path, lambda p: torch.save(state, p))


class _Patience:
    """Early stopping on val_loss for the NumPy engine."""

    def __init__(self, patience: int | None):
        self.patience, self.best, self.wait = patience, float("inf"), 0

    def should_stop(self, value: float | None) -> bool:
        if self.patience is None or value is None:
            return False
        if value < self.best:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        return self.wait >= self.patience
