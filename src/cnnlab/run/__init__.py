"""The run directory and loading models: one owner for everything a run holds."""

from cnnlab.train.rundir import LoadedModel, load_model

__all__ = ["LoadedModel", "load_model"]
