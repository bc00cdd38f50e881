"""`--resume DIR`: finish a run as it was started, refusing options that would change its result."""

from __future__ import annotations

import dataclasses
from typing import Callable

from cnnlab.errors import ConfigError
from cnnlab.run import Run, TrainConfig

# Options that change where and how fast a run trains, not what it computes.
ENVIRONMENT = ("device", "workers", "compile")


def open_for_resume(run: Run, options: dict, command: str, print_fn: Callable[[str], None], quiet: bool,
                    stored: dict | None = None,
                    extension: Callable[[int], str | None] | None = None) -> tuple[TrainConfig, bool]:
    """The training options to continue `run` with, after checking the options given with --resume.

    An option equal to the run's own is accepted; `device` and `workers`
    apply to this process only; `epochs` may grow when `extension(epochs)`
    (default: the time schedule's rule) has no objection, and is then saved in
    config.json. Returns the options and whether the run is finished already
    (then nothing is to be trained).
    """
    config = run.config
    stored = {"data": config.data, "model": config.train.model, **dataclasses.asdict(config.train), **(stored or {})}
    environment, epochs = {}, config.train.epochs
    for name, value in options.items():
        if name not in stored:
            raise ConfigError(f"{command} has no option --{name.replace('_', '-')}.")
        if name in ENVIRONMENT:
            environment[name] = value
        elif name == "epochs" and value != config.train.epochs:
            epochs = value
        elif value != stored[name]:
            flag = f"--{name.replace('_', '-')}"
            raise ConfigError(f"The {flag} option of {command} cannot change when resuming: {run.path} was started "
                              f"with {flag} {stored[name]!r}, and --resume finishes a run as it was started. Leave "
                              f"{flag} out, or start a new run with --out.")
    done = len(run.history())
    if epochs != config.train.epochs:
        _extend(run, epochs, done, command, extension or (lambda _: _time_schedule_only(config.train)))
        if not quiet:
            print_fn(f"Extending {run.path} from {config.train.epochs} to {epochs} epochs.")
        run.rewrite_config(dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=epochs)))
    elif run.finished:
        if not quiet:
            print_fn(f"The run {run.path} is finished ({done} of {epochs} epochs); nothing to resume. Raise --epochs "
                     f"to train longer.")
        return run.config.train, True
    return dataclasses.replace(run.config.train, **environment), False


def _extend(run: Run, epochs: int, done: int, command: str, extension: Callable[[int], str | None]) -> None:
    if epochs < max(done, 1):
        raise ConfigError(f"The --epochs option of {command} cannot be {epochs} when resuming {run.path}: it has "
                          f"trained {done} epochs already.")
    if epochs < run.config.train.epochs:
        raise ConfigError(f"The --epochs option of {command} can only raise a run's epochs when resuming "
                          f"({run.path} was started for {run.config.train.epochs}). Got {epochs} instead.")
    reason = extension(epochs)
    if reason:
        raise ConfigError(f"The --epochs option of {command} cannot extend {run.path}: {reason}.")
    run.unfinish()


def _time_schedule_only(config: TrainConfig) -> str | None:
    if config.schedule != "time":
        return (f"its {config.schedule} schedule was planned over {config.epochs} epochs, so more epochs would change "
                f"the learning rate of those already trained; start a new run")
    return None
