"""`TrainConfig`: every training option in one dataclass; a run's config.json holds its serialised form."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from cnnlab.errors import ConfigError, invalid, unknown

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("time", "cosine", "onecycle")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
ENGINES = ("torch", "numpy")
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}


@dataclass
class TrainConfig:
    """Training options; defaults follow the classic Keras MNIST recipe."""

    data: str = "digits"  # data spec, see `cnnlab datasets`
    model: str = "seed-cnn"  # registered model name or spec string
    engine: str = "torch"  # torch, or numpy for the from-scratch engine
    epochs: int = 10  # passes over the training split
    batch_size: int = 100  # images per update
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
    workers: int = 0  # DataLoader worker processes for file-backed data

    def __post_init__(self) -> None:
        self.validate()

    @property
    def base_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def validate(self) -> None:
        """Raise ConfigError naming the first option that is out of range."""
        owner = "cnnlab train"
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("precision", PRECISIONS),
                              ("device", DEVICES), ("engine", ENGINES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(unknown(f"--{name} value", getattr(self, name), allowed))
        checks = [
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("lr", self.lr is None or self.lr > 0, "a float > 0"),
            ("momentum", 0 <= self.momentum < 1, "a float in [0, 1)"),
            ("decay", self.decay >= 0, "a float >= 0"),
            ("weight_decay", self.weight_decay >= 0, "a float >= 0"),
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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
