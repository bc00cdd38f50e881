"""The run directory and loading models: one owner for everything a run holds.

    with Run.open("runs/demo") as run:
        splits = run.splits()             # the run's own splits, from its seed and fractions
        loaded = run.load_model("auto")   # on CUDA when present
    loaded = load_model("pretrained:efficientnet_lite0")
"""

from cnnlab.run.config import DEFAULT_LR, SCHEMA, FinetuneOptions, RunConfig, TrainConfig
from cnnlab.run.history import HISTORY_FIELDS, read_history
from cnnlab.run.loaded import LoadedModel
from cnnlab.run.rundir import PRETRAINED_PREFIX, Run, build_model, load_model, load_pretrained

__all__ = ["DEFAULT_LR", "FinetuneOptions", "HISTORY_FIELDS", "LoadedModel", "PRETRAINED_PREFIX", "Run", "RunConfig",
           "SCHEMA", "TrainConfig", "build_model", "load_model", "load_pretrained", "read_history"]
