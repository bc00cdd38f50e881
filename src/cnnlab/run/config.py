"""`RunConfig`: the typed form of a run's config.json, with the training and fine-tuning options inside it.

config.json is ``asdict(RunConfig)`` plus nothing: reading it back checks the
schema version, every key and every value's type, and names the file and the
key when something is wrong, so a truncated or foreign file is one line of
error instead of a traceback three modules later.
"""

from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

from cnnlab import __version__
from cnnlab.device import DEVICES, PRECISIONS
from cnnlab.errors import ConfigError, RunDirError, invalid, unknown

SCHEMA = 2  # 1: cnnlab 0.1 (the same keys, no "schema"); 2: adds "schema"
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("time", "cosine", "onecycle")
ENGINES = ("torch", "numpy")
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}


@dataclass
class TrainConfig:
    """Training options; defaults follow the classic Keras MNIST recipe."""

    data: str = "digits"  # data spec, see `cnnlab datasets`
    model: str = "seed-cnn"  # registered model name or spec string (the backbone's name when fine-tuning)
    engine: str = "torch"  # torch, or numpy for the from-scratch engine
    epochs: int = 10  # passes over the training split
    batch_size: int = 100  # images per update (the global batch, split over processes)
    optimizer: str = "sgd"  # sgd, adam or adamw
    lr: float | None = None  # base learning rate; None takes DEFAULT_LR for the optimizer
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = True  # Nesterov momentum (SGD)
    decay: float = 1e-6  # Keras time-based decay: lr / (1 + decay * iteration), schedule "time"
    weight_decay: float = 0.0  # L2 penalty (decoupled for adamw)
    schedule: str = "time"  # time (Keras decay), cosine (to zero over the run) or onecycle
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    validation_split: float = 0.2  # share of the training part held out for validation, as in Keras
    test_split: float = 0.2  # share of the data held out for the final test (when the data has no test set)
    train_fraction: float = 1.0  # stratified share of the training part actually used
    shuffle: bool = True  # reshuffle the training split every epoch
    augment: str = ""  # augmentation options, e.g. "rotation=10,shift=0.1,hflip,featurewise-center"
    image_size: int | None = None  # resize images to this square size; None keeps the data set's default
    seed: int = 0  # seeds splits, initialisation, shuffling, augmentation and dropout
    device: str = "auto"  # auto (cuda when present), cpu or cuda
    precision: str = "fp32"  # fp32, bf16 (autocast) or fp16 (autocast + grad scaler, CUDA only)
    patience: int | None = None  # early stopping after this many epochs without a better val_loss
    reduce_lr_patience: int | None = None  # halve the learning rate after this many epochs without progress
    workers: int = 0  # DataLoader worker processes for file-backed data (kept alive across epochs)
    compile: bool = False  # torch.compile the model for training steps (the same results to float rounding)

    @property
    def base_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def validate(self, owner: str = "cnnlab train") -> "TrainConfig":
        """Raise ConfigError naming the first option that is out of range; returns self."""
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("precision", PRECISIONS),
                              ("device", DEVICES), ("engine", ENGINES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(unknown(f"--{name} value", getattr(self, name), allowed))
        finite = math.isfinite
        checks = [
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("lr", self.lr is None or (finite(self.lr) and self.lr > 0), "a finite float > 0"),
            ("momentum", 0 <= self.momentum < 1, "a float in [0, 1)"),
            ("decay", finite(self.decay) and self.decay >= 0, "a finite float >= 0"),
            ("weight_decay", finite(self.weight_decay) and self.weight_decay >= 0, "a finite float >= 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "a float in [0, 1)"),
            ("validation_split", 0 < self.validation_split < 1, "a float in (0, 1)"),
            ("test_split", 0 < self.test_split < 1, "a float in (0, 1)"),
            ("train_fraction", 0 < self.train_fraction <= 1, "a float in (0, 1]"),
            ("image_size", self.image_size is None or self.image_size >= 4, "an integer >= 4"),
            ("patience", self.patience is None or self.patience >= 1, "an integer >= 1"),
            ("reduce_lr_patience", self.reduce_lr_patience is None or self.reduce_lr_patience >= 1, "an integer >= 1"),
            ("workers", self.workers >= 0, "an integer >= 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(invalid(f"--{name.replace('_', '-')} option", owner, expected, getattr(self, name)))
        return self

    def check_together(self, given: set[str], owner: str = "cnnlab train") -> None:
        """ConfigError for options given together where one of them would do nothing."""
        idle = [
            ("reduce_lr_patience", self.schedule == "onecycle",
             "--schedule onecycle sets the learning rate at every step, so a plateau cannot lower it"),
            ("decay", self.schedule != "time", f"--decay is the time schedule's; --schedule {self.schedule} ignores it"),
            ("momentum", self.optimizer != "sgd", f"--momentum is SGD's; {self.optimizer} has its own betas"),
            ("nesterov", self.optimizer != "sgd" or self.momentum == 0,
             "Nesterov momentum needs --optimizer sgd with --momentum > 0"),
        ]
        for name, ignored, reason in idle:
            if name in given and ignored:
                raise ConfigError(f"The --{name.replace('_', '-')} option of {owner} would do nothing here: {reason}. "
                                  f"Leave it out.")


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
    sync_bn: bool = False  # with several processes, BatchNorm statistics over the global batch

    def __post_init__(self) -> None:
        if self.backbone_lr is None:
            self.backbone_lr = self.head_lr / 10


@dataclass
class RunConfig:
    """config.json of a run: everything needed to rebuild its model, its preprocessing and its splits."""

    model: str | None  # registered model name or spec string; None for a fine-tuned backbone
    backbone: str | None  # backbone name of a fine-tuning run
    num_classes: int
    class_names: list[str]
    input_shape: list[int]  # C, H, W of the model's input
    data: str  # the data spec trained on
    train: TrainConfig
    engine: str = "torch"
    model_spec: str | None = None  # the spec string of a spec-built model, readable without the registry
    interpolation: str = "bilinear"  # how new images are resized to the input, as the training images were
    preprocess: dict = field(default_factory=dict)  # Preprocess.config(); a ZCA matrix is in preprocess.safetensors
    n_params: int = 0
    finetune: FinetuneOptions | None = None
    cnnlab_version: str = __version__
    schema: int = SCHEMA

    @property
    def name(self) -> str:
        """What was trained: the backbone or the model."""
        return self.backbone or self.model or "model"

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def read(cls, path: str | Path) -> "RunConfig":
        """The config at `path`, checked key by key; RunDirError naming the file and the problem."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as error:
            raise RunDirError(f"The file {path} cannot be read ({error.strerror}).") from None
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            where = f" at line {error.lineno}" if isinstance(error, json.JSONDecodeError) else ""
            raise RunDirError(f"The file {path} is not valid JSON{where}; it is truncated or not a cnnlab "
                              f"config.") from None
        if not isinstance(data, dict):
            raise RunDirError(f"The file {path} must hold a JSON object. Got {type(data).__name__} instead.")
        version = data.pop("schema", 1)
        if version == 1 and "cnnlab_version" in data:
            data.setdefault("finetune", None)
        elif version != SCHEMA:
            raise RunDirError(f"The file {path} has config schema {version!r}; this cnnlab ({__version__}) reads "
                              f"schema {SCHEMA}. Use the cnnlab version that wrote the run.")
        config = _typed(cls, data, path, "")
        try:
            config.train.validate(f"{path}")
        except ConfigError as error:
            raise RunDirError(str(error)) from None
        if len(config.class_names) != config.num_classes or len(config.input_shape) != 3:
            raise RunDirError(f"The file {path} is inconsistent: {config.num_classes} classes but "
                              f"{len(config.class_names)} class names, input shape {config.input_shape}.")
        return config


def _typed(cls, data: dict, path: Path, prefix: str):
    """An instance of the dataclass `cls` from `data`, every key present and of its declared type."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    extra = sorted(set(data) - set(known))
    if extra:
        raise RunDirError(f"The file {path} has unknown key {prefix + extra[0]!r}; it was not written by this "
                          f"cnnlab.")
    values = {}
    for name, spec in known.items():
        key = f"{prefix}{name}"
        if name not in data:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise RunDirError(f"The file {path} lacks the key {key!r}; it is truncated or not a cnnlab config.")
            continue
        values[name] = _value(hints[name], data[name], path, key)
    if cls is RunConfig:
        values["schema"] = SCHEMA
    return cls(**values)


def _value(hint, value, path: Path, key: str):
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is type(None):
            continue
        if is_dataclass(option) and isinstance(value, dict):
            return _typed(option, value, path, f"{key}.")
        origin = typing.get_origin(option)
        if origin is list and isinstance(value, list):
            (item,) = typing.get_args(option)
            if all(_is(item, v) for v in value):
                return list(value)
        elif origin is None and _is(option, value):
            return float(value) if option is float else value
        elif origin is dict and isinstance(value, dict):
            return value
    expected = " or ".join("null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
    raise RunDirError(f"The key {key!r} in {path} must be {expected}. Got {value!r} instead.")


def _is(kind, value) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)
