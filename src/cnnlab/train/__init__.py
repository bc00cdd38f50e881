"""Training: the Trainer, callbacks, optimisers and schedules, and run-directory I/O."""

from cnnlab.train.callbacks import Callback, CSVLogger, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau
from cnnlab.train.config import TrainConfig
from cnnlab.train.rundir import LoadedModel, load_model, load_run
from cnnlab.train.trainer import Trainer

__all__ = ["CSVLogger", "Callback", "EarlyStopping", "LoadedModel", "ModelCheckpoint", "ReduceLROnPlateau",
           "TrainConfig", "Trainer", "load_model", "load_run", "train"]


def train(*args, **kwargs):
    """Train a model on a data spec and write a run directory (see `cnnlab.train.api.train`)."""
    from cnnlab.train.api import train as _train

    return _train(*args, **kwargs)
