"""Starting training in several processes (`--nproc N`), and what a worker checks before it trains.

`cnnlab train ... --nproc N` (or `train(..., nproc=N)`) starts N workers
through torch's elastic launcher, each running the same command without
``--nproc``: exactly what ``torchrun --nproc-per-node N -m cnnlab train ...``
runs, so both launch the same code. A worker group the launcher restarts
after a failure finds the run by its ``--out`` and resumes it.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnnlab.cli import command_line
from cnnlab.device import resolve_device
from cnnlab.errors import ConfigError
from cnnlab.loop.distributed import World, current_world, launch
from cnnlab.loop.session import TrainResult
from cnnlab.run import Run
from cnnlab.run.rundir import CONFIG, default_out


def worker_world(device: str, out, command: str) -> World:
    """This process's World on `device`; several processes need a named run directory."""
    world = current_world(resolve_device(device))
    if world.active and out is None:
        raise ConfigError(f"With several processes, {command} needs --out DIR, so that every process (and a "
                          f"restarted group) finds the same run.")
    return world


def has_config(out) -> bool:
    return out is not None and (Path(out) / CONFIG).is_file()


def launch_workers(command: str, named: dict, options: dict, *, out, resume, checkpoint_every, nproc: int,
                   max_restarts: int, callbacks, quiet: bool) -> TrainResult:
    """Train in `nproc` worker processes and return the finished run's result."""
    if "WORLD_SIZE" in os.environ:
        raise ConfigError(f"This process is already a worker of a launcher; leave --nproc and --max-restarts out "
                          f"of {command} under torchrun.")
    if list(callbacks):
        raise ConfigError("Callbacks cannot travel to worker processes; train in one process to use them.")
    if resume is not None:
        out = resume
    elif out is None:
        out = str(default_out(named.get("data", ""), named.get("model") or named.get("backbone", "")))
    arguments = command_line(command, {**named, **options, "out": str(out), "checkpoint_every": checkpoint_every,
                                       "quiet": quiet, **({"resume": str(resume)} if resume is not None else {})})
    launch(arguments, nproc, max_restarts, str(out), command)
    with Run.open(out) as run:
        return TrainResult(run.path, run.metrics(), run.history())
