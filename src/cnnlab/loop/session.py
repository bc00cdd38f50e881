"""Training a job into a run directory: where every engine (torch, NumPy, fine-tuning) starts, records and ends.

A job is an engine's training set up for one run: it can describe itself,
fit (calling a `Recorder` after each epoch, and after batches when asked),
give and take its whole state, and evaluate the test split. `run_job` does
the rest the same way for all of them: resuming from the run's checkpoint,
Ctrl-C, the final weights, the metrics and the closing line.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch
from torch import nn

from cnnlab.loop.distributed import World
from cnnlab.loop.resume import open_for_resume
from cnnlab.run import Run, RunConfig, TrainConfig
from cnnlab.run.rundir import CHECKPOINT
from cnnlab.data.splits import describe_duplicates
from cnnlab.device import resolve_device, resolve_precision
from cnnlab.loop.callbacks import Callback, EarlyStopping, ReduceLROnPlateau, TensorBoard, tensorboard_available


@dataclass
class TrainResult:
    """A finished run: where it lives, its metrics and its per-epoch history."""

    run_dir: Path
    metrics: dict
    history: list[dict] = field(default_factory=list)


class Job(Protocol):
    history: list[dict]
    n_params: int
    n_train: int

    def describe(self) -> str: ...

    def fit(self, recorder: "Recorder") -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...

    def weights(self) -> dict[str, torch.Tensor]: ...

    def evaluate_test(self) -> dict: ...

    def extra_metrics(self) -> dict: ...

    def interrupt(self) -> None: ...


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training; `message` says what was saved and how to resume."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Recorder(Callback):
    """Writes each finished epoch through the run (history, best weights, state); with `every`, the state
    after every `every` batches too, and always the state at an interrupt."""

    records_state = True

    def __init__(self, run: Run, job: Job, every: int | None = None):
        self.run, self.job, self.every = run, job, every

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.run.record_epoch(self.job.history, self.job.state_dict(), self.job.weights())

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if self.every and (batch + 1) % self.every == 0:
            self.run.save_state(self.job.state_dict())

    def on_interrupt(self, epoch: int, batch: int) -> None:
        self.run.save_state(self.job.state_dict())


@contextmanager
def graceful_interrupt(job: Job):
    """The first Ctrl-C asks the job to stop after its current batch (it saves its state); a second one stops
    at once. Only the main thread can take signals, elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        signal.signal(signal.SIGINT, previous if callable(previous) else signal.default_int_handler)
        job.interrupt()

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_job(run: Run, job: Job, *, state: dict | None = None, checkpoint_every: int | None = None,
            command: str = "cnnlab train", quiet: bool = False, print_fn: Callable[[str], None] = print,
            world: World = World()) -> TrainResult:
    """Train `job` (from `state` when resuming) and write everything DESIGN.md lists into `run`."""
    if state is not None:
        job.load_state_dict(state)
    if not quiet:
        print_fn(job.describe())
    started = time.perf_counter()
    try:
        with graceful_interrupt(job):
            job.fit(Recorder(run, job, checkpoint_every))
    except KeyboardInterrupt:
        raise Interrupted(interrupted_message(run, command)) from None
    history = job.history
    seconds = sum(row["seconds"] for row in history) if history else time.perf_counter() - started
    test = job.evaluate_test()
    metrics = {"test_accuracy": test["accuracy"], "test_loss": test["loss"],
               "val_accuracy": history[-1].get("val_accuracy") if history else None,
               "val_loss": history[-1].get("val_loss") if history else None,
               "epochs": len(history), "train_seconds": round(seconds, 3), "n_params": job.n_params,
               "train_images_per_second": round(job.n_train * len(history) / max(seconds, 1e-9), 1),
               **job.extra_metrics()}
    run.finish(job.weights(), metrics)
    world.barrier()
    print_fn(f"Test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}) on {test['images']:,} images; "
             f"run written to {run.path}")
    return TrainResult(run.path, metrics, list(history))


def settle_precision(config: TrainConfig, network: nn.Module, preprocess: nn.Module, train_data, world: World,
                     print_fn: Callable[[str], None]) -> TrainConfig:
    """`config` with `--precision auto` resolved by measuring `network` on a few training images (rank 0
    measures, every rank takes its answer), saying so; and a word when an explicit bf16 is slow here."""
    if config.precision not in ("auto", "bf16"):
        return config
    precision, line = config.precision, ""
    if world.is_main:
        device = world.device(resolve_device(config.device))
        count = min(len(train_data), config.batch_size, 32)
        images = torch.stack([train_data[i][0] for i in range(count)])
        with torch.no_grad():
            batch = preprocess.to(device)(images.to(device))
        precision, line = resolve_precision(config.precision, network, batch, device)
    if line:
        print_fn(line)
    return dataclasses.replace(config, precision=world.broadcast(precision))


def start_run(world: World, out, config: RunConfig, **create) -> Run:
    """A fresh run: rank 0 creates it (see `Run.create`), the other ranks follow it once it exists."""
    run = Run.create(out, config, **create) if world.is_main else None
    path = world.broadcast(None if run is None else str(run.path))
    return run if run is not None else Run.follow(path)


def reopen_run(world: World, path, options: dict, command: str, print_fn: Callable[[str], None], quiet: bool,
               stored: dict | None = None) -> tuple[Run, TrainConfig, dict | None, TrainResult | None]:
    """A run to resume: (run, options to train with, checkpoint or None, result when already finished).

    Rank 0 checks the options, extends or starts the run over as needed;
    the other ranks then follow the run as rank 0 left it.
    """
    run = config = state = None
    finished = False
    if world.is_main:
        run = Run.open(path, write=True, command=command)
        try:
            config, finished = open_for_resume(run, options, command, print_fn, quiet, stored)
            state = None if finished else resume_state(run, print_fn, quiet)
        except BaseException:
            run.close()
            raise
    config, finished = world.broadcast((config, finished))
    if run is None:
        run = Run.follow(path)
        state = None if finished else run.checkpoint()
    done = TrainResult(run.path, run.metrics(), run.history()) if finished else None
    return run, config, state, done


def describe_run(verb: str, splits, config: TrainConfig, n_params: int, device: torch.device,
                 world: World = World()) -> str:
    """The opening line: what trains on what, the split sizes, the input, the parameters and where it runs."""
    c, h, w = splits.input_shape
    val = len(splits.val) if splits.val is not None else 0
    where = f"{world.size} processes on {device.type}" if world.active else device.type
    return (f"{verb} on {config.data}: {len(splits.train):,} train / {val:,} val / {len(splits.test):,} test images, "
            f"{len(splits.class_names)} classes, {h}x{w}x{c}, {n_params:,} parameters, {where}, {config.precision}")


def interrupted_message(run: Run, command: str) -> str:
    """What was saved when training stopped early, and the command that continues it."""
    state = run.checkpoint()
    if state is None:
        saved = "nothing was trained yet"
    elif state.get("batch"):
        saved = f"the state after batch {state['batch']} of epoch {state['epoch'] + 1} is saved in {CHECKPOINT}"
    else:
        saved = f"the state after epoch {state['epoch']} is saved in {CHECKPOINT}"
    return f"Interrupted: {saved}. Resume with: {command} --resume {run.path}"


def resume_state(run: Run, print_fn: Callable[[str], None], quiet: bool) -> dict | None:
    """The checkpoint to continue from; without one (killed in its first epoch) the run starts over cleanly."""
    state = run.checkpoint()
    if state is None:
        run.start_over()
        if not quiet:
            print_fn(f"The run {run.path} has no checkpoint yet: starting it over.")
    elif not quiet:
        where = f"batch {state['batch']} of epoch {state['epoch'] + 1}" if state.get("batch") else \
            f"epoch {state['epoch']}"
        print_fn(f"Resuming {run.path} after {where} of {run.config.train.epochs}.")
    return state


def standard_callbacks(config: TrainConfig, run: Run, model: nn.Module | None = None) -> list:
    """Early stopping, learning-rate reduction and TensorBoard, as the options ask."""
    callbacks = []
    if config.patience:
        callbacks.append(EarlyStopping(patience=config.patience, model=model))
    if config.reduce_lr_patience:
        callbacks.append(ReduceLROnPlateau(patience=config.reduce_lr_patience))
    if tensorboard_available():
        callbacks.append(TensorBoard(run.file("tensorboard")))
    return callbacks


def report_data(splits, print_fn: Callable[[str], None]) -> None:
    """A line listing the files the data set left out, and one for exact copies that landed in different
    splits (they inflate test accuracy), when there are any."""
    if splits.skipped:
        print_fn(f"Skipped {len(splits.skipped)} unreadable file(s): " + "; ".join(splits.skipped[:10])
                 + (" ..." if len(splits.skipped) > 10 else ""))
    if splits.duplicates:
        print_fn(describe_duplicates(splits.duplicates))
