"""Training: the Trainer, callbacks, optimisers and schedules, and `train`, which writes a run directory."""

from cnnlab.run import TrainConfig
from cnnlab.train.api import evaluate_run, predict_files, resume_run, train
from cnnlab.loop.callbacks import Callback, CSVLogger, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau
from cnnlab.loop.session import TrainResult
from cnnlab.loop.trainer import Trainer

__all__ = ["CSVLogger", "Callback", "EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau", "TrainConfig",
           "TrainResult", "Trainer", "evaluate_run", "predict_files", "resume_run", "train"]
