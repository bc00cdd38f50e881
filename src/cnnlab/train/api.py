"""What the `train`, `evaluate`, `predict` and `summary` commands call: one public function each."""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from cnnlab import __version__
from cnnlab.errors import ConfigError, DataError, RunDirError
from cnnlab.train.callbacks import (CSVLogger, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, TensorBoard,
                                    tensorboard_available)
from cnnlab.train.config import TrainConfig
from cnnlab.train.optim import build_optimizer, build_scheduler
from cnnlab.train.rundir import load_model, load_run, read_config, save_weights, write_json
from cnnlab.train.trainer import Trainer, resolve_device


@dataclass
class TrainResult:
    """A finished run: where it lives, its metrics and its per-epoch history."""

    run_dir: Path
    metrics: dict
    history: list[dict] = field(default_factory=list)


def train(data: str | None = None, model: str | None = None, *, out: str | os.PathLike | None = None,
          resume: str | os.PathLike | None = None, overwrite: bool = False, quiet: bool = False,
          print_fn: Callable[[str], None] = print, progress: bool = True, **options) -> TrainResult:
    """Train `model` (a registered name or spec string) on `data` and write a run directory.

    `options` are `TrainConfig` fields (epochs, lr, augment, ...). With `resume`,
    the run in that directory continues from its checkpoint; `epochs` may be
    raised to train longer.
    """
    if resume is not None:
        return _resume(Path(resume), options.get("epochs"), quiet, print_fn, progress)
    if not data or not model:
        raise ConfigError("cnnlab train needs --data and --model (or --resume DIR).")
    config = TrainConfig(data=data, model=model, **options)
    preflight(config)
    from cnnlab.data import load_data

    splits = load_data(config.data, image_size=config.image_size, seed=config.seed,
                       validation_split=config.validation_split, test_split=config.test_split,
                       train_fraction=config.train_fraction)
    if splits.skipped:
        print_fn(f"Skipped {len(splits.skipped)} unreadable file(s): " + "; ".join(splits.skipped[:10])
                 + (" ..." if len(splits.skipped) > 10 else ""))
    if config.engine == "numpy":
        from cnnlab.train.scratch_run import train_scratch

        return train_scratch(config, splits, prepare_run_dir(out, config, overwrite), quiet, print_fn, progress)
    from cnnlab.models.registry import create_model

    torch.manual_seed(config.seed)
    network = create_model(config.model, len(splits.class_names), splits.input_shape)
    return fit_run(network, splits, config, prepare_run_dir(out, config, overwrite), {"model": config.model},
                   quiet=quiet, print_fn=print_fn, progress=progress)


def preflight(config: TrainConfig) -> None:
    """Check what can be checked before anything is written: device, precision, augmentation options."""
    from cnnlab.data import parse_augment
    from cnnlab.train.trainer import autocast_dtype

    autocast_dtype(config.precision, resolve_device(config.device))
    parse_augment(config.augment)


def fit_run(network: nn.Module, splits, config: TrainConfig, run_dir: Path, model_config: dict, *,
            optimizer: torch.optim.Optimizer | None = None, state: dict | None = None, quiet: bool = False,
            print_fn: Callable[[str], None] = print, progress: bool = True, preprocess: nn.Module | None = None,
            interpolation: str = "bilinear") -> TrainResult:
    """Train a built network on `splits` and write everything DESIGN.md lists into `run_dir`.

    `model_config` says how to rebuild the network (``{"model": spec}`` or
    ``{"backbone": name}``); `optimizer` defaults to the config's; `state`
    resumes from a checkpoint.
    """
    from cnnlab.data import Augmenter, make_preprocess, parse_augment

    device = resolve_device(config.device)
    augment = parse_augment(config.augment)
    if preprocess is None:
        preprocess = make_preprocess(augment, splits.train)
    augmenter = Augmenter(augment) if augment.geometric else None
    optimizer = optimizer or build_optimizer(network, config)
    steps = -(-len(splits.train) // config.batch_size)
    scheduler = build_scheduler(optimizer, config, steps)
    n_params = sum(p.numel() for p in network.parameters())
    if state is None:
        write_run_config(run_dir, config, splits, model_config, preprocess, n_params, interpolation)
    callbacks = [CSVLogger(run_dir / "history.csv"), ModelCheckpoint(run_dir / "checkpoint")]
    if config.patience:
        callbacks.append(EarlyStopping(patience=config.patience))
    if config.reduce_lr_patience:
        callbacks.append(ReduceLROnPlateau(patience=config.reduce_lr_patience))
    if tensorboard_available():
        callbacks.append(TensorBoard(run_dir / "tensorboard"))
    trainer = Trainer(network, optimizer, scheduler, device=device, precision=config.precision,
                      label_smoothing=config.label_smoothing, preprocess=preprocess, augmenter=augmenter,
                      callbacks=callbacks, seed=config.seed, workers=config.workers, print_fn=print_fn,
                      progress=progress and not quiet, verbose=not quiet)
    if state is not None:
        trainer.load_state_dict(state)
    if not quiet:
        val = len(splits.val) if splits.val is not None else 0
        c, h, w = splits.input_shape
        print_fn(f"Training {model_config.get('model') or model_config.get('backbone')} on {config.data}: "
                 f"{len(splits.train):,} train / {val:,} val / {len(splits.test):,} test images, "
                 f"{len(splits.class_names)} classes, {h}x{w}x{c}, {n_params:,} parameters, {device.type}, "
                 f"{config.precision}")
    started = time.perf_counter()
    history = trainer.fit(splits.train, splits.val, epochs=config.epochs, batch_size=config.batch_size,
                          shuffle=config.shuffle)
    seconds = sum(row["seconds"] for row in history) if history else time.perf_counter() - started
    save_weights(run_dir / "model.safetensors", network.state_dict())
    test = trainer.evaluate(splits.test)
    metrics = {"test_accuracy": test["accuracy"], "test_loss": test["loss"],
               "val_accuracy": history[-1].get("val_accuracy") if history else None,
               "val_loss": history[-1].get("val_loss") if history else None,
               "epochs": len(history), "train_seconds": round(seconds, 3), "n_params": n_params,
               "train_images_per_second": round(len(splits.train) * len(history) / max(seconds, 1e-9), 1)}
    write_json(run_dir / "metrics.json", metrics)
    print_fn(f"Test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}) on {len(splits.test):,} images; "
             f"run written to {run_dir}")
    return TrainResult(run_dir, metrics, history)


def write_run_config(run_dir: Path, config: TrainConfig, splits, model_config: dict, preprocess, n_params: int,
                  interpolation: str) -> None:
    spec = _spec_string(model_config.get("model"), len(splits.class_names))
    write_json(run_dir / "config.json", {
        "cnnlab_version": __version__,
        "engine": config.engine,
        "model": model_config.get("model"),
        "model_spec": spec,
        "backbone": model_config.get("backbone"),
        "num_classes": len(splits.class_names),
        "class_names": list(splits.class_names),
        "input_shape": list(splits.input_shape),
        "interpolation": interpolation,
        "preprocess": preprocess.config() if hasattr(preprocess, "config") else {},
        "data": config.data,
        "n_params": n_params,
        "train": config.to_dict(),
        **{k: v for k, v in model_config.items() if k not in ("model", "backbone")},
    })
    zca = getattr(preprocess, "zca", None)
    if zca is not None:
        save_weights(run_dir / "preprocess.safetensors", {"zca": zca, "zca_mean": preprocess.zca_mean})


def _spec_string(model: str | None, num_classes: int) -> str | None:
    """The spec string of a spec-built model, so config.json reads without the registry."""
    from cnnlab import spec

    try:
        return spec.to_string(spec.resolve(model, num_classes)) if model else None
    except ValueError:
        return None


def prepare_run_dir(out, config: TrainConfig, overwrite: bool) -> Path:
    """The run directory to write: a fresh one, never a half-overwritten old run."""
    if out is None:
        stem = re.sub(r"[^A-Za-z0-9_.]+", "-", f"{config.data}-{config.model}").strip("-")[:60]
        run_dir, n = Path("runs") / stem, 1
        while run_dir.exists():
            n += 1
            run_dir = Path("runs") / f"{stem}-{n}"
    else:
        run_dir = Path(out)
        if run_dir.exists() and any(run_dir.iterdir()):
            if not overwrite or not (run_dir / "config.json").is_file():
                raise ConfigError(f"The --out directory {run_dir} is not empty; choose a new one, or continue "
                                  f"its run with --resume {run_dir}.")
            shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _resume(run_dir: Path, epochs: int | None, quiet: bool, print_fn, progress: bool) -> TrainResult:
    saved = read_config(run_dir)
    if saved.get("backbone"):
        raise ConfigError(f"The run {run_dir} is a fine-tuning run; its frozen layers and phases are not resumable "
                          f"with --resume. Start a new 'cnnlab finetune' run instead.")
    state_path = run_dir / "checkpoint" / "state.pt"
    if not state_path.is_file():
        raise RunDirError(f"The run directory {run_dir} has no checkpoint/state.pt to resume from.")
    config = TrainConfig.from_dict({**saved["train"], **({"epochs": epochs} if epochs else {})})
    from cnnlab.data import load_data
    from cnnlab.data.preprocess import Preprocess
    from cnnlab.train.rundir import build_model

    splits = load_data(config.data, image_size=config.image_size, seed=config.seed,
                       validation_split=config.validation_split, test_split=config.test_split,
                       train_fraction=config.train_fraction)
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    if config.engine == "numpy":
        from cnnlab.train.scratch_run import train_scratch

        return train_scratch(config, splits, run_dir, quiet, print_fn, progress, state=state)
    network = build_model(saved)
    extra = run_dir / "preprocess.safetensors"
    from safetensors.torch import load_file

    preprocess = Preprocess.from_config(saved.get("preprocess", {}), load_file(str(extra)) if extra.is_file() else None)
    write_json(run_dir / "config.json", {**saved, "train": config.to_dict()})
    if not quiet:
        print_fn(f"Resuming {run_dir} after epoch {state['epoch']} of {config.epochs}.")
    model_config = {k: saved[k] for k in ("model", "backbone") if saved.get(k)}
    return fit_run(network, splits, config, run_dir, model_config, state=state, quiet=quiet,
                   print_fn=print_fn, progress=progress, preprocess=preprocess,
                   interpolation=saved.get("interpolation", "bilinear"))


def evaluate_run(run_dir: str | os.PathLike, data: str | None = None, print_fn=print) -> dict:
    """Loss and accuracy of a run on the test split of its own data, or of `data`."""
    from cnnlab.data import load_data

    loaded = load_run(run_dir)
    config = TrainConfig.from_dict(loaded.config.get("train", {}))
    spec = data or loaded.config["data"]
    splits = load_data(spec, image_size=loaded.input_shape[1], seed=config.seed,
                       validation_split=config.validation_split, test_split=config.test_split)
    if list(splits.class_names) != list(loaded.class_names):
        raise DataError(f"The data {spec} has classes {splits.class_names[:5]}...; the run {run_dir} was trained "
                        f"on {loaded.class_names[:5]}...; evaluate on data with the same classes.")
    images = splits.test
    trainer = Trainer(loaded.model, None, preprocess=loaded.preprocess, print_fn=print_fn, verbose=False)
    metrics = trainer.evaluate(_Prepared(images, loaded))
    print_fn(f"{run_dir}: test accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f} "
             f"on {len(images):,} images of {spec}")
    return metrics


class _Prepared:
    """A data set whose images are fitted to a loaded model's input shape and channels on the fly."""

    def __init__(self, data, loaded):
        self.data, self.loaded = data, loaded

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index):
        image, label = self.data[index]
        return self.loaded.prepare(image), label


def predict_files(source: str, images: Sequence[str], top_k: int = 5, print_fn=print) -> list[list[tuple[str, float]]]:
    """The top-k (class name, probability) pairs for each image file; printed one block per image."""
    if top_k < 1:
        raise ConfigError(f"The --top-k option of cnnlab predict must be an integer >= 1. Got {top_k} instead.")
    loaded = load_model(source)
    batch, _ = loaded.load_images(images)
    probabilities = loaded.predict(batch)
    results = []
    for path, row in zip(images, probabilities):
        values, indices = row.topk(min(top_k, len(row)))
        pairs = [(loaded.class_names[i], float(v)) for v, i in zip(values, indices)]
        results.append(pairs)
        print_fn(f"{path}:")
        for rank, (name, probability) in enumerate(pairs, 1):
            print_fn(f"  {rank}. {name:<30} {probability:.4f}")
    return results


def summarize(model: str, input_size: str | Sequence[int] | None = None, num_classes: int = 10, print_fn=print):
    """Print the summary table of a registered model, spec string, run directory or pretrained backbone."""
    from cnnlab.models import create_model, summary

    shape = _parse_input_size(input_size) if input_size is not None else None
    if model.startswith("pretrained:") or Path(model).is_dir():
        loaded = load_model(model)
        return summary(loaded.model, shape or loaded.input_shape, title=model, print_fn=print_fn)
    shape = shape or (1, 28, 28)
    return summary(create_model(model, num_classes, shape), shape, title=model, print_fn=print_fn)


def _parse_input_size(text) -> tuple[int, int, int]:
    if not isinstance(text, str):
        return tuple(int(v) for v in text)
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ConfigError(f"The --input-size option must be C,H,W such as 1,28,28 or 3,224,224. Got {text!r} instead.")
    return values
