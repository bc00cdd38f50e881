"""`Run`: the one owner of a run directory, and `load_model` for run directories and ``pretrained:NAME``.

Layout (see DESIGN.md): config.json, model.safetensors, preprocess.safetensors
(only when ZCA whitening is on), history.csv, metrics.json, checkpoint/
(state.pt, the latest resumable state; best.safetensors, the weights of the
best validation loss so far) and .cnnlab.lock. No other module opens these
files: training writes through `Run`, and evaluation, prediction,
explanation and the report read through it.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from cnnlab.data import load_data
from cnnlab.data.preprocess import Preprocess
from cnnlab.device import resolve_device
from cnnlab.errors import RunDirError
from cnnlab.files import (atomic_write, check_writable, make_directory, remove_stale_temporaries, save_weights,
                          write_json, write_text)
from cnnlab.models.backbones import get_backbone, replace_head
from cnnlab.models.registry import create_model
from cnnlab.run.config import RunConfig
from cnnlab.run.history import history_csv
from cnnlab.run.loaded import LoadedModel
from cnnlab.run.lock import LOCK_NAME, RunLock

PRETRAINED_PREFIX = "pretrained:"
CONFIG, WEIGHTS, ZCA = "config.json", "model.safetensors", "preprocess.safetensors"
HISTORY, METRICS = "history.csv", "metrics.json"
CHECKPOINT, BEST = "checkpoint/state.pt", "checkpoint/best.safetensors"
RESULTS = (WEIGHTS, METRICS)  # what a finished run has and a run in progress has not


class Run:
    """A run directory. `create` starts one and `open(write=True)` continues one, both holding its lock;
    `open()` alone reads. Use it as a context manager so the lock is released."""

    def __init__(self, path: Path, config: RunConfig, lock: RunLock | None = None, follower: bool = False):
        self.path, self.config, self._lock = Path(path), config, lock
        self.follower = follower  # a training process other than rank 0: it writes nothing

    # ------------------------------------------------------------ opening
    @classmethod
    def create(cls, out: str | os.PathLike | None, config: RunConfig, *, preprocess: Preprocess | None = None,
               overwrite: bool = False, command: str = "cnnlab train", needed_bytes: int = 0) -> "Run":
        """A fresh run directory at `out` (default ``runs/<data>-<model>[-N]``) holding `config`.

        Refuses a directory that holds anything but a lock file and leftover
        temporaries (with `overwrite`, an old run there is removed first), and
        one without `needed_bytes` of free space.
        """
        path = default_out(config.data, config.train.model) if out is None else Path(out)
        make_directory(path)
        lock = RunLock(path, command).acquire()
        try:
            remove_stale_temporaries(path)
            content = [p for p in path.iterdir() if p.name != LOCK_NAME]
            if content:
                if not overwrite or not (path / CONFIG).is_file():
                    raise RunDirError(f"The --out directory {path} is not empty; choose a new one, or continue its "
                                      f"run with --resume {path}.")
                for item in content:
                    shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
            check_writable(path, needed_bytes)
            run = cls(path, config, lock)
            run._write_config(preprocess)
        except BaseException:
            lock.release()
            raise
        return run

    @classmethod
    def open(cls, path: str | os.PathLike, *, write: bool = False, command: str = "cnnlab train") -> "Run":
        """The run at `path`, its config checked; with `write`, locked and cleaned of interrupted writes."""
        path = Path(path)
        if not path.is_dir():
            what = "is a file, not a run directory" if path.exists() else "does not exist"
            raise RunDirError(f"The run directory {path} {what}; give a directory written by 'cnnlab train' or "
                              f"'cnnlab finetune', or 'pretrained:NAME'.")
        if not (path / CONFIG).is_file():
            raise RunDirError(f"The run directory {path} has no {CONFIG}; is it a cnnlab run?")
        lock = RunLock(path, command).acquire() if write else None
        try:
            config = RunConfig.read(path / CONFIG)
            if write:
                remove_stale_temporaries(path)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return cls(path, config, lock)

    @classmethod
    def follow(cls, path: str | os.PathLike) -> "Run":
        """The run that rank 0 of a multi-process training owns, for another rank: writing does nothing."""
        run = cls.open(path)
        run.follower = True
        return run

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ reading
    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def finished(self) -> bool:
        return all((self.path / name).is_file() for name in RESULTS)

    def splits(self, data: str | None = None):
        """The run's train / validation / test splits, rebuilt from its own config (its seed, its fractions);
        with `data`, another data spec split the same way."""
        options = self.config.train
        return load_data(data or self.config.data, image_size=self.config.input_shape[1], seed=options.seed,
                         validation_split=options.validation_split, test_split=options.test_split,
                         train_fraction=options.train_fraction, channels=self.config.input_shape[0])

    def preprocess(self) -> Preprocess:
        """The preprocessing the model was trained with, ZCA matrix included."""
        tensors = self._tensors(ZCA) if (self.path / ZCA).is_file() else None
        try:
            return Preprocess.from_config(self.config.preprocess, tensors)
        except (TypeError, ValueError, RuntimeError) as error:
            raise RunDirError(f"The preprocessing in {self.path / CONFIG} cannot be rebuilt ({error}).") from None

    def build_model(self) -> nn.Module:
        """The architecture config.json describes, with fresh weights."""
        return build_model(self.config)

    def load_model(self, device: str | torch.device = "auto", weights: str = WEIGHTS) -> LoadedModel:
        """The trained model on `device`, with its preprocessing (no pickle: nothing in the run is executed)."""
        if not (self.path / weights).is_file():
            raise RunDirError(f"The run directory {self.path} has no {weights}; the run did not finish (continue "
                              f"it with 'cnnlab train --resume {self.path}').")
        model = self.build_model()
        self.load_weights(model, weights)
        device = resolve_device(device)
        config = self.config
        return LoadedModel(model.to(device).eval(), self.preprocess().to(device), list(config.class_names),
                           tuple(config.input_shape), config.interpolation, str(self.path), config.to_dict())

    def load_weights(self, model: nn.Module, name: str = WEIGHTS) -> None:
        """Load the safetensors file `name` into `model`; RunDirError when it is damaged or of another model."""
        tensors = self._tensors(name)
        try:
            model.load_state_dict(tensors)
        except RuntimeError as error:
            detail = str(error).split("\n\t", 1)[-1].split("\n")[0]
            raise RunDirError(f"The weights in {self.path / name} do not fit the {self.config.name} that "
                              f"{CONFIG} describes ({detail.strip()}).") from None

    def _tensors(self, name: str) -> dict[str, torch.Tensor]:
        try:
            return load_file(str(self.path / name))
        except (SafetensorError, OSError, ValueError) as error:
            raise RunDirError(f"The file {self.path / name} is not a readable safetensors file ({error}); it is "
                              f"truncated or damaged.") from None

    def checkpoint(self) -> dict | None:
        """The latest resumable state, or None when the run has none yet."""
        path = self.path / CHECKPOINT
        if not path.is_file():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch.load raises many types for a damaged file; each means the same here
            raise RunDirError(f"The checkpoint {path} cannot be read ({type(error).__name__}); it is damaged. "
                              f"Remove it to start the run over with --resume.") from None

    def history(self) -> list[dict]:
        """The epochs done so far, from the checkpoint (history.csv is its readable copy)."""
        state = self.checkpoint()
        return list(state["history"]) if state else []

    def metrics(self) -> dict:
        """metrics.json of a finished run; {} when there is none or it is unreadable."""
        try:
            data = json.loads((self.path / METRICS).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    # ------------------------------------------------------------ writing (the lock is held)
    def _writable(self) -> bool:
        """False on a follower (its writes are rank 0's to make); RunDirError on a run opened for reading."""
        if self.follower:
            return False
        if self._lock is None or not self._lock.held:
            raise RunDirError(f"The run {self.path} was opened for reading; open it with write=True to change it.")
        return True

    def _write_config(self, preprocess: Preprocess | None) -> None:
        if not self._writable():
            return
        zca = getattr(preprocess, "zca", None)
        if zca is not None:
            save_weights(self.path / ZCA, {"zca": zca, "zca_mean": preprocess.zca_mean})
        write_text(self.path / CONFIG, self.config.to_json())

    def rewrite_config(self, config: RunConfig) -> None:
        """Replace config.json (only `--resume --epochs N` does: the run's planned length grows)."""
        if not self._writable():
            return
        self.config = config
        write_text(self.path / CONFIG, config.to_json())

    def unfinish(self) -> None:
        """Remove the final weights and metrics of a run that will train further, so no reader takes it as done."""
        if not self._writable():
            return
        for name in (METRICS, WEIGHTS):
            (self.path / name).unlink(missing_ok=True)

    def start_over(self) -> None:
        """Remove everything but config.json (and its ZCA matrix): a run killed before its first checkpoint."""
        if not self._writable():
            return
        for name in (HISTORY, METRICS, WEIGHTS, "checkpoint", "tensorboard"):
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def record_epoch(self, history: list[dict], state: dict, weights: dict[str, torch.Tensor]) -> None:
        """After an epoch: history.csv, the best weights when validation loss improved, then the state."""
        if not self._writable():
            return
        write_text(self.path / HISTORY, history_csv(history))
        losses = [row.get("val_loss") for row in history]
        if losses and _improved(losses):
            save_weights(self.path / BEST, weights)
        self.save_state(state)

    def save_state(self, state: dict) -> None:
        """The resumable state, written last so that it never runs ahead of the files beside it."""
        if not self._writable():
            return
        atomic_write(self.path / CHECKPOINT, lambda p: torch.save(state, p))

    def finish(self, weights: dict[str, torch.Tensor], metrics: dict) -> None:
        """The final weights, then metrics.json (whose presence marks the run finished)."""
        if not self._writable():
            return
        save_weights(self.path / WEIGHTS, weights)
        write_json(self.path / METRICS, metrics)


def _improved(losses: list) -> bool:
    """True when the last finite value is below every earlier finite one (the first always improves)."""
    last = losses[-1]
    if last is None or not math.isfinite(last):
        return False
    return all(v is None or not math.isfinite(v) or last < v for v in losses[:-1])


def default_out(data: str, model: str) -> Path:
    """``runs/<data>-<model>``, numbered ``-2``, ``-3`` ... past the ones that exist."""
    stem = re.sub(r"[^A-Za-z0-9_.]+", "-", f"{data}-{model}").strip("-")[:60]
    path, n = Path("runs") / stem, 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{stem}-{n}"
    return path


def build_model(config: RunConfig) -> nn.Module:
    """The architecture a run's config describes, with fresh weights."""
    if config.backbone:
        backbone = get_backbone(config.backbone)
        model = backbone.build()
        replace_head(model, backbone.classifier, config.num_classes)
        return model
    return create_model(config.model, config.num_classes, tuple(config.input_shape))


def load_model(source: str | os.PathLike, device: str | torch.device = "auto") -> LoadedModel:
    """Load a run directory or ``pretrained:NAME`` (e.g. ``pretrained:efficientnet_lite0``) onto `device`."""
    source = str(source)
    if source.startswith(PRETRAINED_PREFIX):
        return load_pretrained(source[len(PRETRAINED_PREFIX):], device)
    return Run.open(source).load_model(device)


def load_pretrained(name: str, device: str | torch.device = "auto") -> LoadedModel:
    """A pretrained backbone with its own head, preprocessing and class names (ImageNet's 1,000)."""
    device = resolve_device(device)
    backbone = get_backbone(name)
    model = backbone.create()
    preprocess = Preprocess(backbone.mean, backbone.std)
    size = backbone.input_size
    return LoadedModel(model.to(device).eval(), preprocess.to(device), backbone.categories, (3, size, size),
                       backbone.interpolation, PRETRAINED_PREFIX + name,
                       {"backbone": backbone.name, **backbone.preprocessing})

