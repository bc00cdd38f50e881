"""What the `train`, `evaluate`, `predict` and `summary` commands call: one public function each."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from cnnlab import spec as specs
from cnnlab.data import Augmenter, load_data, make_preprocess, parse_augment
from cnnlab.device import autocast_dtype, resolve_device
from cnnlab.errors import ConfigError, DataError
from cnnlab.finetune.api import finetune
from cnnlab.models import create_model, summary
from cnnlab.run import Run, RunConfig, TrainConfig, load_model
from cnnlab.loop.optim import build_optimizer, build_scheduler
from cnnlab.loop.distributed import World
from cnnlab.loop.launch import has_config, launch_workers, worker_world
from cnnlab.train.predict import predict_files  # noqa: F401  (the `predict` command's, kept importable here)
from cnnlab.train.scratch_run import ScratchJob, check_supported
from cnnlab.loop.session import (TrainResult, describe_run, reopen_run, report_data, run_job, settle_precision,
                                 standard_callbacks, start_run)
from cnnlab.loop.trainer import Trainer

COMMAND = "cnnlab train"
CHECKPOINT_BYTES_PER_PARAMETER = 16  # fp32 weights, best weights and two optimiser moments: the largest case


def train(data: str | None = None, model: str | None = None, *, out: str | os.PathLike | None = None,
          resume: str | os.PathLike | None = None, overwrite: bool = False, quiet: bool = False,
          print_fn: Callable[[str], None] = print, progress: bool = True, callbacks: Iterable = (),
          checkpoint_every: int | None = None, nproc: int = 1, max_restarts: int = 0, **options) -> TrainResult:
    """Train `model` (a registered name or spec string) on `data` and write a run directory.

    `options` are `TrainConfig` fields (epochs, lr, augment, ...). With
    `resume`, the run in that directory is finished as it was started: the
    options given must agree with the run's own, except `epochs` (raised to
    train longer, with the time schedule), `device` and `workers`.
    `callbacks` are extra Keras-style callbacks for the Trainer;
    `checkpoint_every` saves the resumable state every that many batches too.
    `nproc` > 1 trains in that many processes (torch.distributed, through its
    elastic launcher) and `max_restarts` restarts them from the last
    checkpoint when one dies; under ``torchrun`` each worker calls this as is.
    """
    named = {k: v for k, v in (("data", data), ("model", model)) if v is not None}
    if nproc > 1 or max_restarts:
        return launch_workers(COMMAND, named, options, out=out, resume=resume, checkpoint_every=checkpoint_every,
                              nproc=nproc, max_restarts=max_restarts, callbacks=callbacks, quiet=quiet)
    if resume is not None:
        return resume_run(resume, quiet=quiet, print_fn=print_fn, progress=progress, callbacks=callbacks,
                          checkpoint_every=checkpoint_every, command=COMMAND, **named, **options)
    if not data or not model:
        raise ConfigError("cnnlab train needs --data and --model (or --resume DIR).")
    config = TrainConfig(data=data, model=model, **options).validate(COMMAND)
    config.check_together(set(options), COMMAND)
    _check_before_loading(config)
    world = worker_world(config.device, out, COMMAND)
    if world.restarted and has_config(out):
        return resume_run(out, quiet=quiet, print_fn=print_fn, progress=progress, callbacks=callbacks,
                          checkpoint_every=checkpoint_every, command=COMMAND, **named, **options)
    print_fn, quiet, progress = (print_fn, quiet, progress) if world.is_main else (_silent, True, False)
    splits = load_data(config.data, image_size=config.image_size, seed=config.seed,
                       validation_split=config.validation_split, test_split=config.test_split,
                       train_fraction=config.train_fraction)
    report_data(splits, print_fn)
    torch.manual_seed(config.seed)
    network = create_model(config.model, len(splits.class_names), splits.input_shape)
    preprocess = make_preprocess(parse_augment(config.augment), splits.train)
    config = settle_precision(config, network, preprocess, splits.train, world, print_fn)
    n_params = sum(p.numel() for p in network.parameters())
    run_config = RunConfig(model=config.model, backbone=None, num_classes=len(splits.class_names),
                           class_names=list(splits.class_names), input_shape=list(splits.input_shape),
                           data=config.data, train=config, engine=config.engine,
                           model_spec=_spec_string(config.model, len(splits.class_names)),
                           preprocess=preprocess.config(), n_params=n_params)
    with start_run(world, out, run_config, preprocess=preprocess, overwrite=overwrite, command=COMMAND,
                   needed_bytes=n_params * CHECKPOINT_BYTES_PER_PARAMETER) as run:
        job = make_job(run, splits, config, network, preprocess, print_fn=print_fn, quiet=quiet,
                       progress=progress, callbacks=callbacks, world=world)
        return run_job(run, job, checkpoint_every=checkpoint_every, command=COMMAND, quiet=quiet,
                       print_fn=print_fn, world=world)


def resume_run(path: str | os.PathLike, *, quiet: bool = False, print_fn: Callable[[str], None] = print,
               progress: bool = True, callbacks: Iterable = (), checkpoint_every: int | None = None,
               command: str = COMMAND, **options) -> TrainResult:
    """Finish the run at `path` as it was started (see `train`); a fine-tuning run continues as one."""
    stored = Run.open(path).config
    if stored.backbone:
        return finetune(resume=path, quiet=quiet, print_fn=print_fn, progress=progress, callbacks=callbacks,
                        checkpoint_every=checkpoint_every, **options)
    world = worker_world(options.get("device", stored.train.device), path, command)
    print_fn, quiet, progress = (print_fn, quiet, progress) if world.is_main else (_silent, True, False)
    run, config, state, done = reopen_run(world, path, options, command, print_fn, quiet)
    with run:
        if done is not None:
            return done
        splits = run.splits()
        torch.manual_seed(config.seed)
        network = run.build_model()
        job = make_job(run, splits, config, network, run.preprocess(), print_fn=print_fn, quiet=quiet,
                       progress=progress, callbacks=callbacks, world=world)
        return run_job(run, job, state=state, checkpoint_every=checkpoint_every, command=command, quiet=quiet,
                       print_fn=print_fn, world=world)


def _silent(line: str) -> None:
    """Where the lines of ranks other than 0 go."""


def _check_before_loading(config: TrainConfig) -> None:
    """What can be refused before reading any data: the device, the precision, the augmentation, the engine."""
    autocast_dtype(config.precision, resolve_device(config.device))
    parse_augment(config.augment)
    if config.engine == "numpy":
        check_supported(config)


def make_job(run: Run, splits, config: TrainConfig, network: nn.Module, preprocess, *, world: World = World(),
             **options):
    """The engine's job for `config.engine`: the torch Trainer or the NumPy engine."""
    if config.engine == "numpy":
        if world.active:
            raise ConfigError("The NumPy engine trains in one process; leave out --nproc, or use --engine torch.")
        return ScratchJob(run, splits, config, network, **options)
    return TorchJob(run, splits, config, network, preprocess, world=world, **options)


class TorchJob:
    """A run trained by the torch `Trainer`."""

    def __init__(self, run: Run, splits, config: TrainConfig, network: nn.Module, preprocess, *,
                 print_fn: Callable[[str], None] = print, quiet: bool = False, progress: bool = True,
                 callbacks: Iterable = (), world: World = World()):
        self.run, self.splits, self.config = run, splits, config
        self.n_params = sum(p.numel() for p in network.parameters())
        self.n_train = len(splits.train)
        augment = parse_augment(config.augment)
        optimizer = build_optimizer(network, config)
        scheduler = build_scheduler(optimizer, config, -(-len(splits.train) // config.batch_size))
        self.trainer = Trainer(network, optimizer, scheduler, device=config.device, precision=config.precision,
                               label_smoothing=config.label_smoothing, preprocess=preprocess,
                               augmenter=Augmenter(augment) if augment.geometric else None,
                               callbacks=[*callbacks, *standard_callbacks(config, run)], seed=config.seed,
                               workers=config.workers, print_fn=print_fn, progress=progress and not quiet,
                               verbose=not quiet, world=world, compile=config.compile)

    @property
    def history(self) -> list[dict]:
        return self.trainer.history

    def describe(self) -> str:
        return describe_run(f"Training {self.config.model}", self.splits, self.config, self.n_params,
                            self.trainer.device, self.trainer.world)

    def fit(self, recorder) -> None:
        self.trainer.callbacks.add(recorder)
        self.trainer.fit(self.splits.train, self.splits.val, epochs=self.config.epochs,
                         batch_size=self.config.batch_size, shuffle=self.config.shuffle)

    def interrupt(self) -> None:
        self.trainer.interrupted = True

    def state_dict(self) -> dict:
        return self.trainer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.trainer.load_state_dict(state)

    def weights(self) -> dict[str, torch.Tensor]:
        return self.trainer.model.state_dict()

    def evaluate_test(self) -> dict:
        return {**self.trainer.evaluate(self.splits.test), "images": len(self.splits.test)}

    def extra_metrics(self) -> dict:
        return {}


def _spec_string(model: str, num_classes: int) -> str | None:
    """The spec string of a spec-built model, so config.json reads without the registry."""
    try:
        return specs.to_string(specs.resolve(model, num_classes))
    except ValueError:
        return None


def evaluate_run(run_dir: str | os.PathLike, data: str | None = None, device: str = "auto",
                 print_fn=print) -> dict:
    """Loss and accuracy of a run on the test split of its own data (its own seed and fractions), or of `data`."""
    run = Run.open(run_dir)
    loaded = run.load_model(device)
    splits = run.splits(data)
    spec = data or run.config.data
    if list(splits.class_names) != list(loaded.class_names):
        raise DataError(f"The data {spec} has classes {splits.class_names[:5]}...; the run {run_dir} was trained "
                        f"on {loaded.class_names[:5]}...; evaluate on data with the same classes.")
    trainer = Trainer(loaded.model, None, device=loaded.device, preprocess=loaded.preprocess, print_fn=print_fn,
                      verbose=False)
    metrics = trainer.evaluate(_Prepared(splits.test, loaded))
    print_fn(f"{run_dir}: test accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f} "
             f"on {len(splits.test):,} images of {spec}")
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


def summarize(model: str, input_size: str | Sequence[int] | None = None, num_classes: int = 10, print_fn=print):
    """Print the summary table of a registered model, spec string, run directory or pretrained backbone."""
    shape = _parse_input_size(input_size) if input_size is not None else None
    if model.startswith("pretrained:") or Path(model).is_dir():
        loaded = load_model(model, "cpu")
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

