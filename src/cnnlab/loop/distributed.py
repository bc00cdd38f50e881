"""Several processes on torch.distributed: who this process is, the few collectives training needs, the launcher.

A worker learns its place from the environment torch's elastic launcher
(``torchrun``, or ``cnnlab train --nproc N``, which calls the same launcher)
sets: RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous. gloo on the CPU, NCCL
on CUDA. `--batch-size` is the global batch: every global batch is split
over the ranks, each rank scales its summed loss so that DDP's average of the
gradients is the gradient of the whole batch's mean loss, and the numbers
printed and saved are sums over all ranks. Only rank 0 writes the run.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from cnnlab.errors import CnnlabError, ConfigError, TrainingError

LAUNCHED_BY_CNNLAB = "CNNLAB_LAUNCHER"  # set for workers that `cnnlab ... --nproc N` started


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def restarted(self) -> bool:
        """True in a worker group the elastic launcher restarted after a failure."""
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0

    def device(self, requested: torch.device) -> torch.device:
        """The device of this rank: its own GPU on CUDA (LOCAL_RANK), the CPU otherwise."""
        if requested.type == "cuda" and self.active:
            return torch.device("cuda", self.local_rank)
        return requested

    def shard(self, indices: np.ndarray) -> np.ndarray:
        """This rank's contiguous part of a global batch (parts differ in size by at most one)."""
        return np.array_split(indices, self.size)[self.rank] if self.active else indices

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Each value summed over all ranks (in float64)."""
        if not self.active:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def broadcast(self, value):
        """Rank 0's `value` on every rank."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank is here (they then leave, and tear the group down, together)."""
        if self.active:
            dist.barrier()

    def gather(self, value) -> list:
        """Every rank's `value`, in rank order, on every rank."""
        if not self.active:
            return [value]
        values = [None] * self.size
        dist.all_gather_object(values, value)
        return values


def world_from_env() -> World:
    """This process's World as the launcher's environment describes it (nothing is joined)."""
    return World(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                 int(os.environ.get("LOCAL_RANK", "0")))


def current_world(device: torch.device | None = None) -> World:
    """This process's World, joining the process group on first use when the launcher started several."""
    world = world_from_env()
    if world.active and not dist.is_initialized():
        cuda = device is not None and device.type == "cuda"
        if cuda:
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group("nccl" if cuda else "gloo", store=_attempt_store(world), rank=world.rank,
                                world_size=world.size)
        atexit.register(dist.destroy_process_group)
    return world


def _attempt_store(world: World) -> dist.Store:
    """The rendezvous store, with keys of their own for each attempt of a restarted group.

    The elastic agent keeps its store across restarts, and the first
    attempt's keys stay in it: joining through it as it is, the restarted
    workers read the dead workers' addresses and never connect. A prefix per
    attempt keeps the attempts apart.
    """
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"  # the agent hosts it; else rank 0 does
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world.size,
                          is_master=world.is_main and not agent, timeout=timedelta(minutes=10))
    return dist.PrefixStore(f"cnnlab/attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def launch(argv: list[str], nproc: int, max_restarts: int, out: str | None, command: str) -> None:
    """Run ``python -m cnnlab ARGV`` as `nproc` workers under torch's elastic launcher.

    A worker that fails makes the launcher restart the group up to
    `max_restarts` times (the workers resume from the run's checkpoint); when
    no restart is left, a TrainingError names the rank and its error, and a
    run directory this launch created without reaching a checkpoint is removed.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise ConfigError(f"The --nproc option of {command} must be an integer >= 1. Got {nproc} instead.")
    if max_restarts < 0:
        raise ConfigError(f"The --max-restarts option of {command} must be an integer >= 0. Got {max_restarts} "
                          f"instead.")
    existed = out is not None and Path(out).exists()
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    os.environ[LAUNCHED_BY_CNNLAB] = "1"
    # the launcher would set 1 thread per worker and warn; share the cores out instead
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, rdzv_backend="c10d",
                          rdzv_endpoint="127.0.0.1:0", run_id=f"cnnlab-{os.getpid()}-{time.time_ns()}",
                          max_restarts=max_restarts, monitor_interval=0.1, start_method="spawn")
    try:
        elastic_launch(config, sys.executable)("-m", "cnnlab", *argv)
    except ChildFailedError as failed:
        rank, failure = failed.get_first_failure()
        message = failure.message
        if isinstance(message, dict):
            message = message.get("message", "")
        if not message or failure.exitcode < 0:
            message = f"stopped by signal {-failure.exitcode}" if failure.exitcode < 0 else \
                f"exited with code {failure.exitcode}"
        if out is not None and not existed and not (Path(out) / "checkpoint").exists():
            shutil.rmtree(out, ignore_errors=True)
        raise TrainingError(f"Rank {rank} failed: {str(message).splitlines()[0]}") from None
    finally:
        os.environ.pop(LAUNCHED_BY_CNNLAB, None)


def report_worker_error(world: World, error: CnnlabError) -> bool:
    """In a worker under an elastic launcher: record `error` for the launcher to name; True when recorded."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not world.active or not path:
        return False
    with open(path, "w") as handle:
        json.dump({"message": str(error), "timestamp": int(time.time())}, handle)
    return bool(os.environ.get(LAUNCHED_BY_CNNLAB))
