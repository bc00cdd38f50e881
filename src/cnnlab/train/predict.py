"""What `cnnlab predict` calls: class probabilities for image files and folders, as a table, CSV or JSON.

Folders are walked recursively (hidden entries left out, links to folders not
followed, so a loop cannot trap the walk) for files with an image suffix the
readers know (`IMAGE_SUFFIXES`); a file named on the command line is tried
whatever its suffix. A file that cannot be read is skipped and listed, never
fatal, as the folder data spec does; only when no file at all can be read is
that an error: a single file's own message when only one was given, else the
list and a count.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from cnnlab.data.images import IMAGE_SUFFIXES
from cnnlab.data.paths import printable
from cnnlab.errors import ConfigError, DataError, invalid, unknown
from cnnlab.files import write_text
from cnnlab.run import load_model

FORMATS = ("table", "csv", "json")


@dataclass
class Prediction:
    """One image's prediction: its path, the predicted class and probability, and the top-k (class, probability)."""

    path: str
    predicted: str
    probability: float
    top_k: list[tuple[str, float]]


@dataclass
class Skipped:
    """A file left out: its printable path, why (without the path), and the whole one-line message."""

    path: str
    reason: str
    message: str


@dataclass
class Predictions:
    """What `predict_paths` gives: a prediction per readable image, and each file skipped."""

    rows: list[Prediction] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def image_files(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list[Skipped]]:
    """The files `paths` stand for (folders walked for image suffixes, sorted), and the paths that do not exist."""
    files, missing = [], []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files += _walk(path)
        elif path.exists() or path.is_symlink():
            files.append(path)
        else:
            missing.append(Skipped(printable(path), "does not exist", f"The image {printable(path)} does not exist."))
    return files, missing


def _walk(folder: Path) -> list[Path]:
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / name for name in sorted(names)
                  if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)


def predict_paths(source: str | os.PathLike, paths: Sequence[str | os.PathLike], top_k: int = 5, batch: int = 64,
                  device: str = "auto") -> Predictions:
    """Predictions for the image files and folders in `paths`, read and run `batch` images at a time."""
    if top_k < 1:
        raise ConfigError(invalid("--top-k option", "cnnlab predict", "an integer >= 1", top_k))
    if batch < 1:
        raise ConfigError(invalid("--batch option", "cnnlab predict", "an integer >= 1", batch))
    loaded = load_model(source, device)
    files, skipped = image_files(paths)
    result = Predictions(skipped=skipped)
    for start in range(0, len(files), batch):
        images, names = [], []
        for path in files[start:start + batch]:
            try:
                images.append(loaded.load_images([path])[0][0])
            except DataError as error:
                result.skipped.append(Skipped(printable(path), getattr(error, "reason", str(error)), str(error)))
                continue
            names.append(printable(path))
        if not images:
            continue
        probabilities = loaded.predict(torch.stack(images))
        for name, row in zip(names, probabilities):
            values, indices = row.topk(min(top_k, len(row)))
            pairs = [(loaded.class_names[i], float(v)) for v, i in zip(values, indices)]
            result.rows.append(Prediction(name, pairs[0][0], pairs[0][1], pairs))
    return result


def predict_files(source: str | os.PathLike, images: Sequence[str | os.PathLike], top_k: int = 5, device: str = "auto",
                  *, batch: int = 64, format: str = "table", out: str | os.PathLike | None = None,
                  print_fn: Callable[[str], None] = print,
                  warn_fn: Callable[[str], None] | None = None) -> list[list[tuple[str, float]]]:
    """The top-k (class name, probability) pairs of each readable image, written as `format` to `out` (or
    printed); a line per skipped file and their count go to `warn_fn` (default: stderr).

    Raises DataError when no image at all could be read: with one file skipped, that file's own message.
    """
    if format not in FORMATS:
        raise ConfigError(unknown("--format value", format, FORMATS))
    warn_fn = warn_fn or _stderr
    result = predict_paths(source, images, top_k=top_k, batch=batch, device=device)
    if not result.rows and len(result.skipped) == 1:
        raise DataError(result.skipped[0].message)
    for skipped in result.skipped:
        warn_fn(f"skipped {skipped.path}: {skipped.reason}")
    if result.skipped:
        warn_fn(f"{len(result.skipped)} file(s) skipped, {len(result.rows)} predicted")
    if not result.rows:
        raise DataError(f"No image could be read among the {len(result.skipped)} file(s) given; see the skipped "
                        f"files above.")
    text = {"table": _table, "csv": _csv, "json": _json}[format](result.rows)
    if out is None:
        print_fn(text.rstrip("\n"))
    else:
        write_text(out, text)
    return [row.top_k for row in result.rows]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _table(rows: list[Prediction]) -> str:
    width = max(len("path"), *(len(r.path) for r in rows))
    classes = max(len("predicted"), *(len(r.predicted) for r in rows))
    lines = [f"{'path':<{width}}  {'predicted':<{classes}}  probability  top-{len(rows[0].top_k)}"]
    for r in rows:
        ranked = ", ".join(f"{name} {p:.4f}" for name, p in r.top_k)
        lines.append(f"{r.path:<{width}}  {r.predicted:<{classes}}  {r.probability:>11.4f}  {ranked}")
    return "\n".join(lines) + "\n"


def _csv(rows: list[Prediction]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    ranks = range(1, len(rows[0].top_k) + 1)
    writer.writerow(["path", "predicted", "probability", *(f"{k}{r}" for r in ranks for k in ("top", "p"))])
    for r in rows:
        writer.writerow([r.path, r.predicted, f"{r.probability:.6g}",
                         *(v for name, p in r.top_k for v in (name, f"{p:.6g}"))])
    return buffer.getvalue()


def _json(rows: list[Prediction]) -> str:
    data = [{"path": r.path, "predicted": r.predicted, "probability": r.probability,
             "top_k": [{"class": name, "probability": p} for name, p in r.top_k]} for r in rows]
    return json.dumps(data, indent=2) + "\n"
