"""`finetune`: a pretrained backbone with a new head for the data's classes, trained in one or two phases.

Phase one trains what `freeze` leaves trainable (by default the head alone, on
cached backbone features); with `unfreeze_after`, phase two unfreezes the
backbone as `unfreeze` says and trains it at `backbone_lr` beside the head at
`head_lr`. The run directory is the one `cnnlab train` writes, holding the
whole model, so evaluate / predict / explain / report read it unchanged.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from typing import Callable

import torch
from torch import nn

from cnnlab.errors import ConfigError, invalid
from cnnlab.finetune.callbacks import AddSeconds, FullModelCheckpoint, FullModelEarlyStopping
from cnnlab.finetune.features import FeatureCache
from cnnlab.finetune.freeze import FreezeSpec, apply_freeze, frozen_in_eval, parameter_groups, parse_freeze
from cnnlab.train.api import TrainResult, prepare_run_dir, write_run_config
from cnnlab.train.callbacks import CSVLogger, ReduceLROnPlateau
from cnnlab.train.config import TrainConfig
from cnnlab.train.optim import build_optimizer, build_scheduler
from cnnlab.train.rundir import save_weights, write_json
from cnnlab.train.trainer import Trainer, resolve_device

# Where fine-tuning wants other defaults than training from scratch (TrainConfig's Keras MNIST recipe).
FINETUNE_DEFAULTS = {"optimizer": "adam", "epochs": 5, "batch_size": 32}


@dataclass
class FinetuneOptions:
    """The fine-tuning options beyond TrainConfig's; config.json keeps them under "finetune"."""

    backbone: str  # efficientnet_lite0, resnet18 ... resnet152 or timm:NAME
    freeze: str = "backbone"  # backbone, none or until:LAYER (LAYER is the first layer that trains)
    unfreeze_after: int | None = None  # after this many epochs, unfreeze as `unfreeze` says
    unfreeze: str = "all"  # all or until:LAYER: what trains from `unfreeze_after` on
    head_lr: float = 1e-3  # learning rate of the new head
    backbone_lr: float | None = None  # learning rate of trainable backbone layers; None: head_lr / 10
    weights: str | None = None  # pretrained weights file; None: the backbone's own source on disk
    cache: bool = True  # train a head on a frozen backbone from features computed once per image
    keep_bn_stats: bool = False  # unfrozen BatchNorm layers keep normalising with the pretrained statistics

    def __post_init__(self) -> None:
        if self.backbone_lr is None:
            self.backbone_lr = self.head_lr / 10

    def phases(self, epochs: int) -> list[tuple[int, int, FreezeSpec]]:
        """(first epoch, end epoch, what is frozen) for each phase; raises ConfigError on bad options."""
        owner = "cnnlab finetune"
        first = parse_freeze(self.freeze)
        for name in ("head_lr", "backbone_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(invalid(f"--{name.replace('_', '-')} option", owner, "a float > 0",
                                          getattr(self, name)))
        if self.unfreeze_after is None:
            return [(0, epochs, first)]
        if not 1 <= self.unfreeze_after < epochs:
            raise ConfigError(invalid("--unfreeze-after option", owner, f"an integer in [1, {epochs - 1}] (below "
                                      f"--epochs {epochs})", self.unfreeze_after))
        if first.kind == "none":
            raise ConfigError("The --unfreeze-after option of cnnlab finetune needs something frozen first; "
                              "use --freeze backbone or until:LAYER.")
        return [(0, self.unfreeze_after, first), (self.unfreeze_after, epochs, parse_freeze(self.unfreeze,
                                                                                             "--unfreeze"))]

    def to_dict(self) -> dict:
        return asdict(self)


def finetune(data: str | None = None, backbone: str | None = None, *, freeze: str = "backbone",
             unfreeze_after: int | None = None, unfreeze: str = "all", head_lr: float | None = None,
             backbone_lr: float | None = None, weights: str | os.PathLike | None = None, cache: bool = True,
             keep_bn_stats: bool = False,
             out: str | os.PathLike | None = None, overwrite: bool = False, resume: str | None = None,
             quiet: bool = False, print_fn: Callable[[str], None] = print, progress: bool = True,
             **options) -> TrainResult:
    """Fine-tune the pretrained `backbone` on `data` with a new head, and write a run directory.

    `options` are TrainConfig fields (epochs, batch_size, augment, image_size,
    train_fraction, ...); `image_size` defaults to the backbone's own input
    size and grey images become RGB. `head_lr` defaults to `lr`, or the
    optimiser's default (Adam, 1e-3).
    """
    if resume is not None:
        raise ConfigError("cnnlab finetune cannot --resume a run yet; start a new one with --out DIR.")
    if not data or not backbone:
        raise ConfigError("cnnlab finetune needs --data and --backbone (e.g. --backbone efficientnet_lite0).")
    from cnnlab.data import Augmenter, load_data, parse_augment
    from cnnlab.data.preprocess import Preprocess
    from cnnlab.models.backbones import get_backbone

    entry = get_backbone(backbone)
    options = {**FINETUNE_DEFAULTS, **options}
    if head_lr is not None:
        options["lr"] = head_lr
    options["image_size"] = options.get("image_size") or entry.input_size
    config = TrainConfig(data=data, model=entry.name, **options)
    settings = FinetuneOptions(entry.name, freeze, unfreeze_after, unfreeze, config.base_lr, backbone_lr,
                               None if weights is None else str(weights), cache, keep_bn_stats)
    phases = settings.phases(config.epochs)
    augment = parse_augment(config.augment)
    if augment.preprocessing:
        raise ConfigError(f"The --augment option of cnnlab finetune takes geometric transforms only; {entry.name} "
                          f"brings its own normalisation (mean {entry.mean}, std {entry.std}).")

    splits = load_data(config.data, image_size=config.image_size, seed=config.seed,
                       validation_split=config.validation_split, test_split=config.test_split,
                       train_fraction=config.train_fraction, channels=3)
    if splits.skipped:
        print_fn(f"Skipped {len(splits.skipped)} unreadable file(s): " + "; ".join(splits.skipped[:10])
                 + (" ..." if len(splits.skipped) > 10 else ""))
    torch.manual_seed(config.seed)
    model = entry.create(settings.weights, num_classes=len(splits.class_names))
    for _, _, frozen in phases:  # a bad until:LAYER fails here, before the run directory exists
        apply_freeze(model, entry.classifier, frozen)
    preprocess = Preprocess(entry.mean, entry.std)
    run_dir = prepare_run_dir(out, config, overwrite)
    n_params = sum(p.numel() for p in model.parameters())
    # load_data resized the training images bilinearly; new images must be prepared the same way.
    write_run_config(run_dir, config, splits, {"backbone": entry.name, "finetune": settings.to_dict()}, preprocess,
                  n_params, "bilinear")

    device = resolve_device(config.device)
    features = FeatureCache(model, entry.classifier, preprocess, device=device, precision=config.precision,
                            batch_size=max(config.batch_size, 64), workers=config.workers)
    augmenter = Augmenter(augment) if augment.geometric else None
    callbacks = [CSVLogger(run_dir / "history.csv"), FullModelCheckpoint(run_dir / "checkpoint", model)]
    if config.patience:
        callbacks.append(FullModelEarlyStopping(model, patience=config.patience))
    if config.reduce_lr_patience:
        callbacks.append(ReduceLROnPlateau(patience=config.reduce_lr_patience))
    if not quiet:
        val = len(splits.val) if splits.val is not None else 0
        c, h, w = splits.input_shape
        print_fn(f"Fine-tuning {entry.name} on {config.data}: {len(splits.train):,} train / {val:,} val / "
                 f"{len(splits.test):,} test images, {len(splits.class_names)} classes, {h}x{w}x{c}, "
                 f"{n_params:,} parameters, {device.type}, {config.precision}")

    history: list[dict] = []
    cached = False
    for start, end, frozen in phases:
        frozen_names = apply_freeze(model, entry.classifier, frozen)
        cached = settings.cache and frozen.head_only and augmenter is None
        spent = features.seconds
        train_data = features.get("train", splits.train) if cached else splits.train
        val_data = features.get("val", splits.val) if cached else splits.val
        spent = features.seconds - spent
        network = model.get_submodule(entry.classifier) if cached else model
        groups = parameter_groups(model, entry.classifier, settings.head_lr, settings.backbone_lr)
        optimizer = build_optimizer(groups, config)
        steps = -(-len(splits.train) // config.batch_size)
        scheduler = build_scheduler(optimizer, replace(config, epochs=end - start), steps)
        trainer = Trainer(network, optimizer, scheduler, device=device, precision=config.precision,
                          label_smoothing=config.label_smoothing, preprocess=None if cached else preprocess,
                          augmenter=None if cached else augmenter, callbacks=[AddSeconds(start, spent), *callbacks],
                          seed=config.seed, workers=config.workers, print_fn=print_fn,
                          progress=progress and not quiet, verbose=not quiet)
        trainer.epoch, trainer.history = start, history
        if not quiet:
            print_fn(_phase_line(start, end, frozen, model, frozen_names, groups, cached, spent, len(train_data),
                                 settings.cache and frozen.head_only))
        with frozen_in_eval(model, batchnorm=settings.keep_bn_stats):
            trainer.fit(train_data, val_data, epochs=end, batch_size=config.batch_size, shuffle=config.shuffle)
        if trainer.stop_training:
            break

    model.eval()
    save_weights(run_dir / "model.safetensors", model.state_dict())
    if cached:
        test = Trainer(model.get_submodule(entry.classifier), None, device=device, verbose=False).evaluate(
            features.get("test", splits.test))
    else:
        tester = Trainer(model, None, device=device, precision=config.precision, preprocess=preprocess,
                         workers=config.workers, verbose=False)
        test = tester.evaluate(splits.test, batch_size=max(config.batch_size, 64))
    seconds = sum(row["seconds"] for row in history)
    metrics = {"test_accuracy": test["accuracy"], "test_loss": test["loss"],
               "val_accuracy": history[-1].get("val_accuracy") if history else None,
               "val_loss": history[-1].get("val_loss") if history else None,
               "epochs": len(history), "train_seconds": round(seconds, 3), "n_params": n_params,
               "train_images_per_second": round(len(splits.train) * len(history) / max(seconds, 1e-9), 1),
               "train_images": len(splits.train), "feature_cache_seconds": round(features.seconds, 3)}
    write_json(run_dir / "metrics.json", metrics)
    print_fn(f"Test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}) on {len(splits.test):,} images; "
             f"run written to {run_dir}")
    return TrainResult(run_dir, metrics, history)


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
