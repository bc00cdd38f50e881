"""`finetune`: a pretrained backbone with a new head for the data's classes, trained in one or two phases.

Phase one trains what `freeze` leaves trainable (by default the head alone, on
cached backbone features); with `unfreeze_after`, phase two unfreezes the
backbone as `unfreeze` says and trains it at `backbone_lr` beside the head at
`head_lr`. Epochs are numbered over the whole run, and the checkpoint holds
the whole model with the phase it was in, so a run resumes bit for bit in
either phase. The run directory is the one `cnnlab train` writes, so
evaluate / predict / explain / report read it unchanged.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterable

import torch
from torch import nn

from cnnlab.data import Augmenter, load_data, parse_augment
from cnnlab.data.preprocess import Preprocess
from cnnlab.device import resolve_device
from cnnlab.errors import ConfigError, invalid
from cnnlab.finetune.callbacks import AddSeconds
from cnnlab.finetune.features import FeatureCache
from cnnlab.finetune.freeze import FreezeSpec, apply_freeze, frozen_in_eval, parameter_groups, parse_freeze
from cnnlab.models.backbones import get_backbone
from cnnlab.run import FinetuneOptions, Run, RunConfig, TrainConfig
from cnnlab.loop.optim import build_optimizer, build_scheduler
from cnnlab.loop.distributed import World
from cnnlab.loop.launch import has_config, launch_workers, worker_world
from cnnlab.loop.session import (TrainResult, describe_run, reopen_run, report_data, run_job, settle_precision,
                                 standard_callbacks, start_run)
from cnnlab.loop.trainer import Trainer

COMMAND = "cnnlab finetune"
# Where fine-tuning wants other defaults than training from scratch (TrainConfig's Keras MNIST recipe).
FINETUNE_DEFAULTS = {"optimizer": "adam", "epochs": 5, "batch_size": 32}
FINETUNE_FIELDS = {f.name for f in dataclasses.fields(FinetuneOptions)} - {"backbone"}


def phases(settings: FinetuneOptions, epochs: int) -> list[tuple[int, int, FreezeSpec]]:
    """(first epoch, end epoch, what is frozen) for each phase; raises ConfigError on bad options."""
    first = parse_freeze(settings.freeze)
    for name in ("head_lr", "backbone_lr"):
        if not getattr(settings, name) > 0:
            raise ConfigError(invalid(f"--{name.replace('_', '-')} option", COMMAND, "a float > 0",
                                      getattr(settings, name)))
    if settings.unfreeze_after is None:
        return [(0, epochs, first)]
    if not 1 <= settings.unfreeze_after < epochs:
        raise ConfigError(invalid("--unfreeze-after option", COMMAND, f"an integer in [1, {epochs - 1}] (below "
                                  f"--epochs {epochs})", settings.unfreeze_after))
    if first.kind == "none":
        raise ConfigError("The --unfreeze-after option of cnnlab finetune needs something frozen first; "
                          "use --freeze backbone or until:LAYER.")
    return [(0, settings.unfreeze_after, first),
            (settings.unfreeze_after, epochs, parse_freeze(settings.unfreeze, "--unfreeze"))]


def _check_together(settings: FinetuneOptions, given: set[str]) -> None:
    """ConfigError for fine-tuning options that would do nothing with the others given."""
    trains_backbone = settings.freeze != "backbone" or settings.unfreeze_after is not None
    idle = [("unfreeze", settings.unfreeze_after is None, "it says what --unfreeze-after unfreezes"),
            ("backbone_lr", not trains_backbone, "the backbone stays frozen (add --unfreeze-after N or --freeze)"),
            ("keep_bn_stats", not trains_backbone, "the backbone stays frozen, so its BatchNorm layers do not train")]
    for name, ignored, reason in idle:
        if name in given and ignored:
            raise ConfigError(f"The --{name.replace('_', '-')} option of {COMMAND} would do nothing here: {reason}.")


def finetune(data: str | None = None, backbone: str | None = None, *, out: str | os.PathLike | None = None,
             overwrite: bool = False, resume: str | os.PathLike | None = None, quiet: bool = False,
             print_fn: Callable[[str], None] = print, progress: bool = True, callbacks: Iterable = (),
             checkpoint_every: int | None = None, nproc: int = 1, max_restarts: int = 0, **options) -> TrainResult:
    """Fine-tune the pretrained `backbone` on `data` with a new head, and write a run directory.

    `options` are FinetuneOptions fields (freeze, unfreeze_after, unfreeze,
    head_lr, backbone_lr, weights, cache, keep_bn_stats, sync_bn) and
    TrainConfig fields (epochs, batch_size, augment, image_size,
    train_fraction, ...); `image_size` defaults to the backbone's own input
    size and grey images become RGB. `head_lr` defaults to `lr`, or the
    optimiser's default (Adam, 1e-3). With `resume`, the run is finished as
    it was started; `nproc` and `max_restarts` train in several processes
    (see `cnnlab.train.train`).
    """
    named = {k: v for k, v in (("data", data), ("backbone", backbone)) if v is not None}
    if nproc > 1 or max_restarts:
        return launch_workers(COMMAND, named, options, out=out, resume=resume, checkpoint_every=checkpoint_every,
                              nproc=nproc, max_restarts=max_restarts, callbacks=callbacks, quiet=quiet)
    if resume is not None:
        return _resume(resume, {**named, **options}, quiet, print_fn, progress, callbacks, checkpoint_every)
    if not data or not backbone:
        raise ConfigError("cnnlab finetune needs --data and --backbone (e.g. --backbone efficientnet_lite0).")
    entry = get_backbone(backbone)
    tuning = {k: options.pop(k) for k in list(options) if k in FINETUNE_FIELDS}
    given = set(options) | set(tuning)
    if tuning.get("head_lr") is not None:
        options["lr"] = tuning["head_lr"]
    train_options = {**FINETUNE_DEFAULTS, **options}
    train_options["image_size"] = train_options.get("image_size") or entry.input_size
    config = TrainConfig(data=data, model=entry.name, **train_options).validate(COMMAND)
    config.check_together(given, COMMAND)
    if tuning.get("weights") is not None:
        tuning["weights"] = str(tuning["weights"])
    settings = FinetuneOptions(entry.name, **{**tuning, "head_lr": config.base_lr})
    _check_together(settings, given)
    planned = phases(settings, config.epochs)
    augment = parse_augment(config.augment)
    if augment.preprocessing:
        raise ConfigError(f"The --augment option of cnnlab finetune takes geometric transforms only; {entry.name} "
                          f"brings its own normalisation (mean {entry.mean}, std {entry.std}).")
    world = worker_world(config.device, out, COMMAND)
    if world.restarted and has_config(out):
        return _resume(out, {**named, **options, **tuning}, quiet, print_fn, progress, callbacks, checkpoint_every)
    print_fn, quiet, progress = (print_fn, quiet, progress) if world.is_main else (_silent, True, False)
    if settings.sync_bn and not (world.active and world.device(resolve_device(config.device)).type == "cuda"):
        raise ConfigError("The --sync-bn option of cnnlab finetune needs several processes on CUDA (--nproc N "
                          "with --device cuda): torch's SyncBatchNorm runs on GPUs only.")
    splits = load_data(config.data, image_size=config.image_size, seed=config.seed,
                       validation_split=config.validation_split, test_split=config.test_split,
                       train_fraction=config.train_fraction, channels=3)
    report_data(splits, print_fn)
    torch.manual_seed(config.seed)
    model = entry.create(settings.weights, num_classes=len(splits.class_names))
    for _, _, frozen in planned:  # a bad until:LAYER fails here, before the run directory exists
        apply_freeze(model, entry.classifier, frozen)
    preprocess = Preprocess(entry.mean, entry.std)
    config = settle_precision(config, model, preprocess, splits.train, world, print_fn)
    n_params = sum(p.numel() for p in model.parameters())
    # load_data resized the training images bilinearly; new images must be prepared the same way.
    run_config = RunConfig(model=None, backbone=entry.name, num_classes=len(splits.class_names),
                           class_names=list(splits.class_names), input_shape=list(splits.input_shape),
                           data=config.data, train=config, preprocess=preprocess.config(), n_params=n_params,
                           finetune=settings)
    with start_run(world, out, run_config, overwrite=overwrite, command=COMMAND, needed_bytes=16 * n_params) as run:
        job = FinetuneJob(run, splits, config, settings, model, print_fn=print_fn, quiet=quiet, progress=progress,
                          callbacks=callbacks, world=world)
        return run_job(run, job, checkpoint_every=checkpoint_every, command=COMMAND, quiet=quiet, print_fn=print_fn,
                       world=world)


def _resume(path, options: dict, quiet: bool, print_fn, progress: bool, callbacks, checkpoint_every) -> TrainResult:
    stored = Run.open(path).config
    if not stored.backbone:
        raise ConfigError(f"The run {path} trained a model from scratch; continue it with 'cnnlab train "
                          f"--resume {path}'.")
    world = worker_world(options.get("device", stored.train.device), path, COMMAND)
    print_fn, quiet, progress = (print_fn, quiet, progress) if world.is_main else (_silent, True, False)
    given_backbone = {"backbone": stored.backbone, **dataclasses.asdict(stored.finetune)}
    run, config, state, done = reopen_run(world, path, options, COMMAND, print_fn, quiet, given_backbone)
    with run:
        if done is not None:
            return done
        settings = run.config.finetune
        entry = get_backbone(run.config.backbone)
        torch.manual_seed(config.seed)
        model = entry.create(settings.weights, num_classes=run.config.num_classes)
        job = FinetuneJob(run, run.splits(), config, settings, model, print_fn=print_fn, quiet=quiet,
                          progress=progress, callbacks=callbacks, world=world)
        return run_job(run, job, state=state, checkpoint_every=checkpoint_every, command=COMMAND, quiet=quiet,
                       print_fn=print_fn, world=world)


def _silent(line: str) -> None:
    """Where the lines of ranks other than 0 go."""


class FinetuneJob:
    """A fine-tuning run: one Trainer per phase over one model, with a shared history and callbacks."""

    def __init__(self, run: Run, splits, config: TrainConfig, settings: FinetuneOptions, model: nn.Module, *,
                 print_fn: Callable[[str], None] = print, quiet: bool = False, progress: bool = True,
                 callbacks: Iterable = (), world: World = World()):
        self.run, self.splits, self.config, self.settings, self.model = run, splits, config, settings, model
        self.world = world
        self.entry = get_backbone(settings.backbone)
        self.phases = phases(settings, config.epochs)
        self.print_fn, self.quiet, self.progress = print_fn, quiet, progress
        self.device = world.device(resolve_device(config.device))
        if settings.sync_bn:
            import timm.layers  # here, not at the top: timm costs seconds to import, and only this needs it

            # timm's converter also handles its fused BatchNormAct layers, which torch's does not know
            self.model = model = timm.layers.convert_sync_batchnorm(model)
        self.preprocess = Preprocess(self.entry.mean, self.entry.std)
        self.features = FeatureCache(model, self.entry.classifier, self.preprocess, device=self.device,
                                     precision=config.precision, batch_size=max(config.batch_size, 64),
                                     workers=config.workers, world=world)
        augment = parse_augment(config.augment)
        self.augmenter = Augmenter(augment) if augment.geometric else None
        self.callbacks = [*callbacks, *standard_callbacks(config, run, model)]
        self.n_params = sum(p.numel() for p in model.parameters())
        self.n_train = len(splits.train)
        self.history: list[dict] = []
        self.epoch = 0
        self.trainer: Trainer | None = None
        self.cached = False
        self._state: dict | None = None  # a checkpoint to apply when its phase's Trainer exists

    def describe(self) -> str:
        return describe_run(f"Fine-tuning {self.entry.name}", self.splits, self.config, self.n_params, self.device,
                            self.world)

    def _phase_of(self, epoch: int) -> int:
        return next((i for i, (start, end, _) in enumerate(self.phases) if start <= epoch < end),
                    len(self.phases) - 1)

    def fit(self, recorder) -> None:
        for index, (start, end, frozen) in enumerate(self.phases):
            if end <= self.epoch:
                continue
            trainer = self._start_phase(index, recorder)
            note = "backbone unfrozen" if index > 0 else ("head only" if frozen.head_only else f"freeze {frozen}")
            with frozen_in_eval(self.model, batchnorm=self.settings.keep_bn_stats):
                trainer.fit(self.train_data, self.val_data, epochs=end, batch_size=self.config.batch_size,
                            shuffle=self.config.shuffle, total=self.config.epochs, note=note)
            self.epoch = trainer.epoch
            if trainer.stop_training:
                break

    def _start_phase(self, index: int, recorder) -> Trainer:
        start, end, frozen = self.phases[index]
        frozen_names = apply_freeze(self.model, self.entry.classifier, frozen)
        self.cached = self.settings.cache and frozen.head_only and self.augmenter is None
        spent = self.features.seconds
        self.train_data = self.features.get("train", self.splits.train) if self.cached else self.splits.train
        self.val_data = self.features.get("val", self.splits.val) if self.cached else self.splits.val
        spent = self.features.seconds - spent
        network = self.model.get_submodule(self.entry.classifier) if self.cached else self.model
        groups = parameter_groups(self.model, self.entry.classifier, self.settings.head_lr, self.settings.backbone_lr)
        optimizer = build_optimizer(groups, self.config)
        steps = -(-len(self.splits.train) // self.config.batch_size)
        scheduler = build_scheduler(optimizer, dataclasses.replace(self.config, epochs=end - start), steps)
        trainer = Trainer(network, optimizer, scheduler, device=self.device, precision=self.config.precision,
                          label_smoothing=self.config.label_smoothing, preprocess=None if self.cached else
                          self.preprocess, augmenter=None if self.cached else self.augmenter,
                          callbacks=[AddSeconds(self.epoch, spent), *self.callbacks, recorder], seed=self.config.seed,
                          workers=self.config.workers, print_fn=self.print_fn,
                          progress=self.progress and not self.quiet, verbose=not self.quiet, world=self.world,
                          compile=self.config.compile)
        trainer.epoch, trainer.history = start, self.history
        state, self._state = self._state, None
        if state is not None:
            if state.get("phase") == index:
                trainer.load_state_dict({**state, "model": network.state_dict()})
            else:  # the checkpoint closed the previous phase: this one starts with a fresh optimiser
                trainer.callbacks.load_state_dict(state.get("callbacks", {}))
                torch.set_rng_state(state["torch_rng"])
                trainer.epoch = state["epoch"]
            trainer.history = self.history
        self.trainer = trainer
        if not self.quiet and trainer.batch == 0 and trainer.epoch == start:
            self.print_fn(_phase_line(start, end, frozen, self.model, frozen_names, groups, self.cached, spent,
                                      len(self.train_data), self.settings.cache and frozen.head_only))
        return trainer

    def interrupt(self) -> None:
        if self.trainer is not None:
            self.trainer.interrupted = True

    def state_dict(self) -> dict:
        state = self.trainer.state_dict()
        return {**state, "model": self.model.state_dict(), "history": list(self.history),
                "phase": self._phase_of(state["epoch"] - (0 if state.get("batch") else 1))}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.history[:] = list(state["history"])
        self.epoch = state["epoch"]
        self._state = state

    def weights(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def evaluate_test(self) -> dict:
        self.model.eval()
        if self.cached:
            head = Trainer(self.model.get_submodule(self.entry.classifier), None, device=self.device, verbose=False,
                           world=self.world)
            result = head.evaluate(self.features.get("test", self.splits.test))
        else:
            tester = Trainer(self.model, None, device=self.device, precision=self.config.precision,
                             preprocess=self.preprocess, workers=self.config.workers, verbose=False, world=self.world)
            result = tester.evaluate(self.splits.test, batch_size=max(self.config.batch_size, 64))
        return {**result, "images": len(self.splits.test)}

    def extra_metrics(self) -> dict:
        return {"train_images": self.n_train, "feature_cache_seconds": round(self.features.seconds, 3)}


def _phase_line(start: int, end: int, frozen: FreezeSpec, model: nn.Module, frozen_names: list[str], groups: list,
                cached: bool, seconds: float, n_train: int, wanted_cache: bool) -> str:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    rates = ", ".join(f"{g['name']} lr {g['lr']:g}" for g in groups)
    epochs = f"Epoch {end}" if end == start + 1 else f"Epochs {start + 1}-{end}"
    line = (f"{epochs}: freeze {frozen}, {trainable:,} trainable parameters "
            f"({len(frozen_names)} frozen tensors), {rates}")
    if cached:
        line += (f"; backbone features of {n_train:,} train images (and val) computed once in {seconds:.1f}s, "
                 "later epochs train the head only")
    elif wanted_cache:
        line += "; --augment changes the training images every epoch, so their features are not cached"
    return line
