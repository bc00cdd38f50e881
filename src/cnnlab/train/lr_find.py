"""What `cnnlab lr-find` calls: the learning-rate range test on a fresh copy of a model (see `lr_curve`).

The test trains as `cnnlab train` would, through the same pieces: the options
are `TrainConfig`'s (optimizer, momentum, batch size, augmentation, seed ...),
the data comes from `load_data` with the same splits, and the batches go
through the `Trainer` (its shuffling, augmentation and precision), with the
exponential schedule in place of the training one. It writes nothing but its
curve: the model given (or built from its spec) is copied first, and the
caller's random-number state is put back afterwards.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from matplotlib.figure import Figure
from torch import nn

from cnnlab.data import Augmenter, load_data, make_preprocess, parse_augment
from cnnlab.errors import ConfigError, TrainingError, invalid
from cnnlab.files import write_bytes, write_json, write_text
from cnnlab.loop.callbacks import Callback
from cnnlab.loop.distributed import World
from cnnlab.loop.optim import build_optimizer
from cnnlab.loop.session import report_data, settle_precision
from cnnlab.loop.trainer import Trainer
from cnnlab.models import create_model
from cnnlab.run import TrainConfig
from cnnlab.train import lr_curve

COMMAND = "cnnlab lr-find"
# training options the range test has no use for: it runs `steps` batches at its own rates
NOT_USED = {"epochs": "--steps", "lr": "--start and --end", "schedule": "--start and --end",
            "decay": "--start and --end", "patience": "--steps", "reduce_lr_patience": "--start and --end",
            "engine": "the torch engine"}


@dataclass
class LRFindResult:
    """The curve (one point per batch), the suggested rates, why the test stopped, and where it was written."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    suggestion: float = math.nan  # steepest descent of the smoothed loss (fastai's "steep")
    minimum_over_ten: float = math.nan  # the rate of the lowest smoothed loss / 10 (fastai's "minimum")
    stopped: str = "end"  # "end" (all steps ran), "diverged" (smoothed loss > 4x its minimum), "non-finite"
    out: Path | None = None


class _Done(Exception):
    """Raised from a batch's end to leave the Trainer's loop at once."""


class _Curve(Callback):
    """Records each batch's rate and loss, smooths it, and stops the loop at `steps` or on divergence."""

    def __init__(self, result: LRFindResult, steps: int):
        self.result, self.steps = result, steps
        self.smoothing = lr_curve.SmoothedLoss()

    def on_train_begin(self) -> None:
        self.next_lr = self.trainer.optimizer.param_groups[0]["lr"]

    def on_batch_end(self, batch: int, logs: dict) -> None:
        result = self.result
        result.lrs.append(self.next_lr)  # the rate this batch was trained with; the scheduler has moved on
        self.next_lr = self.trainer.optimizer.param_groups[0]["lr"]
        result.losses.append(float(logs["loss"]))
        result.smoothed.append(self.smoothing.add(result.losses[-1]))
        if self.smoothing.diverged(result.smoothed[-1]):
            result.stopped = "diverged"
            raise _Done
        if len(result.lrs) >= self.steps:
            raise _Done


def lr_find(data=None, model: str | nn.Module | None = None, *, start: float = 1e-7, end: float = 10.0,
            steps: int = 100, out: str | os.PathLike | None = "lr-find", quiet: bool = False,
            print_fn: Callable[[str], None] = print, **options) -> LRFindResult:
    """Run the range test of `model` (a registered name, a spec string or an nn.Module, copied) on `data`.

    `data` is a data spec (its training split is used, split as `train`
    splits it) or a data set of ``(image, label)`` pairs; `options` are
    `TrainConfig` fields. Writes lr_find.png, lr_find.csv and lr_find.json
    into `out` (nothing when None) and prints the suggestion.
    """
    _check(start, end, steps, options)
    if data is None or model is None:
        raise ConfigError("cnnlab lr-find needs --data and --model.")
    spec = data if isinstance(data, str) else "data"
    name = model if isinstance(model, str) else type(model).__name__
    config = TrainConfig(data=spec, model=name, lr=start, **options).validate(COMMAND)
    config.check_together(set(options), COMMAND)
    with torch.random.fork_rng(devices=[]):
        train_data, network = _data_and_model(data, model, config, print_fn)
        preprocess = make_preprocess(parse_augment(config.augment), train_data)
        config = settle_precision(config, network, preprocess, train_data, World(), print_fn)
        result = _run(train_data, network, preprocess, config, start, end, steps)
    if out is not None:
        result.out = _write(result, Path(out), config, start, end, steps)
    if not quiet:
        print_fn(summary_line(result, steps))
    return result


def _check(start: float, end: float, steps: int, options: dict) -> None:
    for key, instead in NOT_USED.items():
        if key in options:
            raise ConfigError(f"The {key} option of {COMMAND} would do nothing: the range test runs its own "
                              f"schedule. Use {instead} instead.")
    if not (math.isfinite(start) and start > 0):
        raise ConfigError(invalid("--start option", COMMAND, "a finite float > 0", start))
    if not (math.isfinite(end) and end > start):
        raise ConfigError(invalid("--end option", COMMAND, f"a finite float > --start ({start:g})", end))
    if steps < 2:
        raise ConfigError(invalid("--steps option", COMMAND, "an integer >= 2", steps))


def _data_and_model(data, model, config: TrainConfig, print_fn) -> tuple[object, nn.Module]:
    """The training data and a fresh network: built from the spec with the seed, or a copy of the module given."""
    if isinstance(data, str):
        splits = load_data(config.data, image_size=config.image_size, seed=config.seed,
                           validation_split=config.validation_split, test_split=config.test_split,
                           train_fraction=config.train_fraction)
        report_data(splits, print_fn)
        train_data, shape, classes = splits.train, splits.input_shape, len(splits.class_names)
    elif isinstance(model, str):
        raise ConfigError("cnnlab lr-find with a data set object needs the model as an nn.Module.")
    else:
        train_data = data
    torch.manual_seed(config.seed)
    if isinstance(model, str):
        return train_data, create_model(model, classes, shape)
    return train_data, copy.deepcopy(model)


def _run(train_data, network: nn.Module, preprocess, config: TrainConfig, start: float, end: float,
         steps: int) -> LRFindResult:
    optimizer = build_optimizer(network, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_curve.exponential_lr(start, end, steps))
    augment = parse_augment(config.augment)
    result = LRFindResult()
    trainer = Trainer(network, optimizer, scheduler, device=config.device, precision=config.precision,
                      label_smoothing=config.label_smoothing, preprocess=preprocess,
                      augmenter=Augmenter(augment) if augment.geometric else None,
                      callbacks=[_Curve(result, steps)], seed=config.seed, workers=config.workers,
                      progress=False, verbose=False)
    per_epoch = -(-len(train_data) // config.batch_size)
    try:
        trainer.fit(train_data, None, epochs=-(-steps // per_epoch), batch_size=config.batch_size,
                    shuffle=config.shuffle)
    except _Done:
        pass
    except TrainingError:  # the loss became infinite or NaN before the batch's update
        result.stopped = "non-finite"
    if len(result.lrs) < 2:
        raise ConfigError(f"The range test stopped after {len(result.lrs)} step(s), too few to suggest a rate; "
                          f"lower --start (now {start:g}).")
    result.suggestion = lr_curve.steepest(result.lrs, result.smoothed)
    result.minimum_over_ten = lr_curve.minimum_over_ten(result.lrs, result.smoothed)
    return result


def summary_line(result: LRFindResult, steps: int) -> str:
    reason = {"end": "all steps ran", "diverged": f"the smoothed loss passed {lr_curve.DIVERGE:g}x its minimum",
              "non-finite": "the loss became infinite or NaN"}[result.stopped]
    where = f"; curve in {result.out}" if result.out is not None else ""
    return (f"Suggested lr {result.suggestion:.3g} (steepest descent of the smoothed loss); minimum/10 "
            f"{result.minimum_over_ten:.3g}; {len(result.lrs)} of {steps} steps ({reason}){where}")


def _write(result: LRFindResult, out: Path, config: TrainConfig, start: float, end: float, steps: int) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["step", "lr", "loss", "smoothed_loss"])
    for step, row in enumerate(zip(result.lrs, result.losses, result.smoothed)):
        writer.writerow([step, *(repr(value) for value in row)])
    write_text(out / "lr_find.csv", buffer.getvalue())
    write_json(out / "lr_find.json", {
        "suggestion": result.suggestion, "rule": "steepest descent of the smoothed loss (fastai 'steep')",
        "minimum_over_ten": result.minimum_over_ten, "stopped": result.stopped, "steps_done": len(result.lrs),
        "start": start, "end": end, "steps": steps, "data": config.data, "model": config.model,
        "optimizer": config.optimizer, "batch_size": config.batch_size, "seed": config.seed,
        "lrs": result.lrs, "losses": _finite(result.losses), "smoothed": _finite(result.smoothed)})
    write_bytes(out / "lr_find.png", _plot(result))
    return out


def _finite(values: list[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def _plot(result: LRFindResult) -> bytes:
    from cnnlab.report.plots import png

    figure = Figure(figsize=(5.2, 3.4))
    axis = figure.subplots()
    axis.plot(result.lrs, result.losses, color="#1f77b4", alpha=0.3, linewidth=1, label="loss")
    axis.plot(result.lrs, result.smoothed, color="#1f77b4", linewidth=1.8, label="smoothed loss")
    for rate, colour, label in ((result.suggestion, "#d62728", "suggested (steepest)"),
                                (result.minimum_over_ten, "#2ca02c", "minimum / 10")):
        index = min(range(len(result.lrs)), key=lambda i: abs(math.log(result.lrs[i] / rate)))
        axis.scatter([rate], [result.smoothed[index]], color=colour, zorder=3, s=40,
                     label=f"{label}: {rate:.2g}")
    axis.set_xscale("log")
    axis.set_xlabel("learning rate (log scale)")
    axis.set_ylabel("training loss")
    finite = [v for v in result.smoothed if math.isfinite(v)]
    lowest = min([v for v in result.losses if math.isfinite(v)] + finite, default=0.0)
    if finite:  # from the lowest loss to half again the first smoothed one: the divergence would flatten the rest
        axis.set_ylim(lowest * 0.95 if lowest > 0 else None, max(finite[0], min(finite)) * 1.5)
    axis.legend(fontsize=8, frameon=False)
    axis.set_title("Learning-rate range test", fontsize=11)
    return png(figure)
