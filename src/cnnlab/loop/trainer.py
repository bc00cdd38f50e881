"""The Trainer: the loop and the callbacks, nothing else (Keras' `fit` / `evaluate` / `predict`).

Determinism: epoch e shuffles with ``np.random.default_rng(seed + e)`` (the
NumPy engine uses the same order), and dropout and augmentation draw from
generators reseeded at every epoch. The state (`state_dict`) holds the
position inside an epoch as well (batches done, the running sums, every
generator), so a run resumed from a checkpoint written after any batch
continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from cnnlab.device import autocast_dtype, resolve_device
from cnnlab.errors import TrainingError
from cnnlab.loop.callbacks import CallbackList
from cnnlab.loop.distributed import World


COMPILE_OPTIONS: dict = {}  # torch.compile's keyword arguments for `compile=True` (tests pick a fast backend)


class Trainer:
    """Fit a classifier that outputs logits; report loss and accuracy per epoch.

    Args:
        model: any nn.Module mapping (N, C, H, W) inputs to (N, classes) logits.
        optimizer, scheduler: the scheduler is stepped after every batch.
        preprocess: module applied to [0, 1] images before the model (normalisation, ZCA).
        augmenter: ``augmenter(images, generator) -> images``, applied to training batches only.
        callbacks: `Callback` objects; one may set ``trainer.stop_training``.
        print_fn: where epoch lines go; progress: show a live bar on a terminal.
        world: the processes training together (DistributedDataParallel when there are several); every
            global batch is split over them and every reported number is summed over them.
        compile: run training steps through torch.compile (evaluation runs the model as it is).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, scheduler=None, *,
                 device: str | torch.device = "cpu", precision: str = "fp32", label_smoothing: float = 0.0,
                 preprocess: nn.Module | None = None, augmenter: Callable | None = None,
                 callbacks: Iterable = (), seed: int = 0, workers: int = 0,
                 print_fn: Callable[[str], None] = print, progress: bool = True, verbose: bool = True,
                 world: World = World(), compile: bool = False):
        self.world = world
        self.device = world.device(resolve_device(device))
        self.amp_dtype = autocast_dtype(precision, self.device)
        self.channels_last = self.device.type == "cuda"
        self.model = model.to(self.device, memory_format=torch.channels_last if self.channels_last else
                              torch.preserve_format)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.label_smoothing = label_smoothing
        self.preprocess = (preprocess or nn.Identity()).to(self.device)
        # what training batches go through: compiled with `compile`, in DDP's wrapper with several processes
        self._forward = torch.compile(self.model, **COMPILE_OPTIONS) if compile else self.model
        if world.active and optimizer is not None and any(p.requires_grad for p in self.model.parameters()):
            self._forward = nn.parallel.DistributedDataParallel(
                self._forward, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.augmenter = augmenter
        self.callbacks = CallbackList(callbacks, self)
        self.seed, self.workers = seed, workers
        self.print_fn, self.progress, self.verbose = print_fn, progress, verbose
        self.history: list[dict] = []
        self.epoch = 0  # epochs completed
        self.batch = 0  # batches completed in the current epoch
        self.stop_training = False
        self.interrupted = False  # set (e.g. by a SIGINT handler) to stop cleanly after the current batch
        self._partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        self._generator = None
        self._loaders: dict[int, tuple] = {}

    # ----------------------------------------------------------------- the loop
    def fit(self, train, val=None, epochs: int = 10, batch_size: int = 100, shuffle: bool = True, *,
            total: int | None = None, note: str = "") -> list[dict]:
        """Train until `epochs` epochs are done in all (a resumed trainer continues from where it stopped).

        `total` and `note` only change the printed lines ("Epoch 3/8 (backbone unfrozen)").
        """
        self.stop_training = False
        total = total or epochs
        self.callbacks.on_train_begin()
        while self.epoch < epochs and not self.stop_training:
            epoch = self.epoch
            if self.batch == 0:
                self.callbacks.on_epoch_begin(epoch)
            started = time.perf_counter() - self._partial["seconds"]
            loss, accuracy = self._train_epoch(train, epoch, total, batch_size, shuffle, note)
            # the rate the next update will use, as the NumPy engine reports it
            logs = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"], "loss": loss, "accuracy": accuracy}
            if val is not None and len(val):
                logs["val_loss"], logs["val_accuracy"] = self._evaluate(val, batch_size=max(batch_size, 256))
            logs["seconds"] = time.perf_counter() - started
            self.history.append(logs)
            self.epoch, self.batch = epoch + 1, 0
            self._partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
            if self.verbose:
                self.print_fn(epoch_line(logs, total, note))
            self.callbacks.on_epoch_end(epoch, logs)
        self.callbacks.on_train_end()
        return self.history

    def _train_epoch(self, data, epoch: int, total: int, batch_size: int, shuffle: bool,
                     note: str) -> tuple[float, float]:
        self.model.train()
        world = self.world
        if self.batch == 0:
            # dropout draws from the global generator, each process from its own stream
            torch.manual_seed((self.seed * 1_000_003 + epoch) * world.size + world.rank)
            self._generator = None
            if self.augmenter is not None:
                self._generator = torch.Generator(device=self.device).manual_seed(self.seed * 7919 + epoch)
        n = len(data)
        order = np.random.default_rng(self.seed + epoch).permutation(n) if shuffle else np.arange(n)
        chunks = [order[i:i + batch_size] for i in range(0, n, batch_size)][self.batch:]
        # A process whose share of a short last batch is empty still takes part (DDP needs every process in
        # every step): it runs one sample with weight 0.
        shares = [world.shard(chunk) for chunk in chunks]
        rows = [np.array_split(np.arange(len(c)), world.size)[world.rank] for c in chunks]
        bar = self._bar(self.batch + len(chunks), f"Epoch {epoch + 1}/{total}", self.batch)
        partial = self._partial
        started = time.perf_counter() - partial["seconds"]
        batches = self._batches(data, [share if len(share) else chunk[:1] for share, chunk in zip(shares, chunks)])
        for batch, (chunk, share, row, (x, y)) in enumerate(zip(chunks, shares, rows, batches), start=self.batch):
            if self._generator is not None:
                x = self.augmenter(x, self._generator, slice(row[0], row[-1] + 1) if len(row) else slice(0, 1),
                                   len(chunk)) if world.active else self.augmenter(x, self._generator)
            loss_sum, batch_correct = self._step(x, y, epoch, batch, len(chunk), weight=float(len(share) > 0))
            loss_sum, batch_correct, seen, stop = world.sum([loss_sum, batch_correct, len(share),
                                                              float(self.interrupted)], self.device)
            partial["loss_sum"] += loss_sum
            partial["correct"] += int(batch_correct)
            partial["seen"] += int(seen)
            partial["seconds"] = time.perf_counter() - started
            self.batch = batch + 1
            if bar is not None:
                rate = partial["seen"] / max(bar.format_dict["elapsed"], 1e-9)
                bar.set_postfix_str(f"loss {partial['loss_sum'] / partial['seen']:.4f}  accuracy "
                                    f"{partial['correct'] / partial['seen']:.4f}  {rate:,.0f} img/s", refresh=False)
                bar.update(1)
            self.callbacks.on_batch_end(batch, {"loss": loss_sum / max(seen, 1)})
            if stop:  # every process stops after the same batch, so their collectives stay in step
                if bar is not None:
                    bar.close()
                self.callbacks.on_interrupt(epoch, batch)
                raise KeyboardInterrupt
        if bar is not None:
            bar.close()
        seen = max(partial["seen"], 1)
        return partial["loss_sum"] / seen, partial["correct"] / seen

    def _step(self, x: torch.Tensor, y: torch.Tensor, epoch: int, batch: int, global_size: int,
              weight: float = 1.0) -> tuple[float, int]:
        """One update; returns this process's summed loss and correct count over its share of the batch."""
        with self._autocast():
            logits = self._forward(self.preprocess(x))
            if self.world.active:
                # summed over this share and scaled, so that DDP's mean over processes is the global mean
                losses = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing, reduction="none")
                summed = losses.sum() * weight
                loss = summed * (self.world.size / global_size)
            else:
                loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
                summed = loss * len(y)
        if not torch.isfinite(summed):
            lr = self.optimizer.param_groups[0]["lr"]
            raise TrainingError(f"The loss became {summed.item()} in epoch {epoch + 1}, batch {batch + 1}, at "
                                f"learning rate {lr:.3g}; training stopped before the weights broke. Try a lower "
                                f"--lr (e.g. {lr / 10:.3g}).")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        correct = int((logits.argmax(dim=1) == y).sum()) if weight else 0
        return float(summed.detach()), correct

    # ------------------------------------------------------------ evaluation
    def evaluate(self, data, batch_size: int = 500) -> dict:
        """Mean loss and accuracy on a data set, without augmentation, in eval mode."""
        loss, accuracy = self._evaluate(data, batch_size)
        return {"loss": loss, "accuracy": accuracy}

    @torch.no_grad()
    def _evaluate(self, data, batch_size: int) -> tuple[float, float]:
        """Mean loss and accuracy over `data`; with several processes each takes its share and the sums meet."""
        loss_sum, correct = 0.0, 0
        for logits, y in self._logits(data, batch_size, self.world.shard(np.arange(len(data)))):
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(dim=1) == y).sum().item()
        loss_sum, correct = self.world.sum([loss_sum, correct], self.device)
        return loss_sum / max(len(data), 1), correct / max(len(data), 1)

    @torch.no_grad()
    def predict(self, data, batch_size: int = 500) -> torch.Tensor:
        """Class probabilities (N, classes) on the CPU, for a data set or a (N, C, H, W) tensor of [0, 1] images."""
        if torch.is_tensor(data):
            data = _TensorData(data, torch.zeros(len(data), dtype=torch.long))
        return torch.cat([logits.softmax(dim=1).cpu() for logits, _ in self._logits(data, batch_size)])

    def _logits(self, data, batch_size: int, order: np.ndarray | None = None):
        was_training = self.model.training
        self.model.eval()
        try:
            order = np.arange(len(data)) if order is None else order
            for x, y in self._batches(data, [order[i:i + batch_size] for i in range(0, len(order), batch_size)]):
                with self._autocast():
                    yield self.model(self.preprocess(x)).float(), y
        finally:
            self.model.train(was_training)

    # --------------------------------------------------------------- helpers
    def _batches(self, data, chunks: list[np.ndarray]):
        """The batches of `chunks` (index arrays) on the device: tensors sliced directly, file data via a DataLoader."""
        if hasattr(data, "x") and torch.is_tensor(data.x):
            for chunk in chunks:
                index = torch.from_numpy(chunk)
                yield self._to_device(data.x[index], data.y[index])
            return
        if not chunks:
            return
        loader, sampler = self._loader(data)
        sampler.chunks = [c.tolist() for c in chunks]
        for x, y in loader:
            yield self._to_device(x, torch.as_tensor(y))

    def _loader(self, data) -> tuple[DataLoader, "_Chunks"]:
        """One DataLoader per data set for the Trainer's life, so that worker processes persist across epochs
        (starting them costs seconds); each pass only sets the index lists it draws."""
        key = id(data)
        if key not in self._loaders:
            sampler = _Chunks()
            self._loaders[key] = (DataLoader(data, batch_sampler=sampler, num_workers=self.workers,
                                             pin_memory=self.device.type == "cuda",
                                             persistent_workers=self.workers > 0), sampler)
        return self._loaders[key]

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        non_blocking = self.device.type == "cuda"
        x = x.to(self.device, non_blocking=non_blocking)
        if self.channels_last and x.dim() == 4:  # feature vectors (a head trained on cached features) stay as they are
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device, non_blocking=non_blocking)

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _bar(self, total: int, description: str, done: int):
        if not (self.progress and self.verbose):
            return None
        from tqdm.auto import tqdm

        # disable=None: tqdm draws only on a terminal, so logs and pipes get no per-batch lines
        return tqdm(total=total, initial=done, desc=description, unit="batch", leave=False, disable=None,
                    file=sys.stderr, dynamic_ncols=True,
                    bar_format="{desc} {n_fmt}/{total_fmt} batches |{bar:24}| {elapsed}<{remaining}{postfix}")

    def scale_lr(self, factor: float, min_lr: float = 0.0) -> None:
        """Multiply the learning rate from now on by `factor` (used by ReduceLROnPlateau)."""
        if self.scheduler is not None and hasattr(self.scheduler, "base_lrs"):
            self.scheduler.base_lrs = [max(lr * factor, min_lr) for lr in self.scheduler.base_lrs]
        for group in self.optimizer.param_groups:
            group["lr"] = max(group["lr"] * factor, min_lr)
        self.print_fn(f"Learning rate scaled by {factor:g}.")

    # ---------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Everything a resumed run needs, at an epoch's end or after any batch inside one."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": self.epoch,
            "batch": self.batch,
            "partial": dict(self._partial),
            "history": list(self.history),
            "callbacks": self.callbacks.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "torch_rng_ranks": self.world.gather(torch.get_rng_state()) if self.world.active else None,
            "augment_rng": self._generator.get_state() if self._generator is not None and self.batch else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = state["epoch"]
        self.batch = state.get("batch", 0)
        self._partial = dict(state.get("partial") or {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0})
        self.history = list(state["history"])
        self.callbacks.load_state_dict(state.get("callbacks", {}))
        ranks = state.get("torch_rng_ranks")
        torch.set_rng_state(ranks[self.world.rank] if ranks and len(ranks) == self.world.size else state["torch_rng"])
        if state.get("augment_rng") is not None and self.augmenter is not None:
            self._generator = torch.Generator(device=self.device)
            self._generator.set_state(state["augment_rng"])


class _Chunks:
    """A batch sampler whose batches (lists of indices) the Trainer sets before each pass."""

    def __init__(self):
        self.chunks: list[list[int]] = []

    def __iter__(self):
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)


class _TensorData:
    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)


def epoch_line(logs: dict, epochs: int, note: str = "") -> str:
    parts = [f"Epoch {logs['epoch']}/{epochs}" + (f" ({note})" if note else ""), f"loss {logs['loss']:.4f}",
             f"accuracy {logs['accuracy']:.4f}"]
    if logs.get("val_loss") is not None:
        parts += [f"val_loss {logs['val_loss']:.4f}", f"val_accuracy {logs['val_accuracy']:.4f}"]
    parts += [f"lr {logs['lr']:.3g}", f"{logs['seconds']:.1f}s"]
    return "  ".join(parts)

