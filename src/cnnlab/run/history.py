"""history.csv: one row per epoch, in one schema for every engine and for the report."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

HISTORY_FIELDS = ("epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")


def history_csv(rows: list[dict]) -> str:
    """The CSV text of `rows` (missing values empty, floats to 6 significant digits)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in HISTORY_FIELDS})
    return buffer.getvalue()


def _cell(value):
    return "" if value is None else (f"{value:.6g}" if isinstance(value, float) else value)


def read_history(path: Path) -> dict[str, list[float]]:
    """history.csv as columns of floats (NaN where a value is missing); empty when there is no readable file."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    if not rows or rows[0].keys() != set(HISTORY_FIELDS):
        return {}
    return {key: [_float(row.get(key)) for row in rows] for key in HISTORY_FIELDS}


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
