"""The faithfulness table: each method's scores per image, their mean and spread, and the ranking.

Methods are ranked per metric by their mean over the images (1 is best,
the metric's direction decides; ties share the mean rank), then overall by
their mean rank over the metrics, the way benchmark tables average ranks.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from cnnlab.explain.metrics.settings import METRICS, Settings
from cnnlab.files import write_json, write_text

DIGITS = {"average-drop": 1, "increase": 1, "randomisation": 2}  # decimals shown; others 3


@dataclass
class Faithfulness:
    """Scores of `methods` on `images` for `metrics`, with the curves behind them."""

    methods: list[str]
    metrics: list[str]
    settings: Settings
    images: list[str]
    targets: list[int]
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # method -> metric -> (N,)
    curves: dict[str, dict] = field(default_factory=dict)  # method -> metric -> Curve
    randomisation: dict = field(default_factory=dict)  # method -> RandomisationResult
    seconds: dict[str, float] = field(default_factory=dict)  # method -> evaluation time

    def __post_init__(self):
        for method in self.methods:
            self.scores.setdefault(method, {})
            self.curves.setdefault(method, {})

    def statistics(self, method: str, metric: str) -> tuple[float, float, int]:
        """Mean, standard deviation (ddof 1; NaN for one image) and count of the images that have a score."""
        values = np.asarray(self.scores[method].get(metric, []), dtype=np.float64)
        values = values[np.isfinite(values)]
        if not len(values):
            return math.nan, math.nan, 0
        return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan, len(values)

    def ranks(self) -> dict[str, dict[str, float]]:
        """metric -> method -> rank among the methods with a score (1 = best; ties share the mean rank)."""
        ranks = {}
        for metric in self.metrics:
            means = {m: self.statistics(m, metric)[0] for m in self.methods}
            scored = [m for m in self.methods if math.isfinite(means[m])]
            sign = -1.0 if METRICS[metric].higher_is_better else 1.0
            places = rankdata([sign * means[m] for m in scored]) if scored else []
            ranks[metric] = dict(zip(scored, (float(p) for p in places)))
        return ranks

    def mean_ranks(self) -> dict[str, float]:
        """Each method's rank averaged over the metrics it has a score for (NaN when none)."""
        ranks = self.ranks()
        result = {}
        for method in self.methods:
            places = [ranks[metric][method] for metric in self.metrics if method in ranks[metric]]
            result[method] = float(np.mean(places)) if places else math.nan
        return result

    def order(self) -> list[str]:
        """The methods best first: by mean rank, then in the order given."""
        mean_ranks = self.mean_ranks()
        return sorted(self.methods, key=lambda m: (not math.isfinite(mean_ranks[m]), mean_ranks[m],
                                                   self.methods.index(m)))

    def cell(self, method: str, metric: str) -> str:
        """``mean ± std`` of one method and metric, to the metric's decimals; "–" without a score."""
        mean, std, _ = self.statistics(method, metric)
        if math.isnan(mean):
            return "–"
        digits = DIGITS.get(metric, 3)
        return f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {std:.{digits}f}")

    def best(self, method: str, metric: str) -> bool:
        """Whether `method` has the best mean of `metric` (ties included)."""
        places = self.ranks()[metric]
        return method in places and places[method] == min(places.values())

    def headers(self) -> list[str]:
        """Each metric's label with its direction: ↑ higher is better, ↓ lower."""
        return [f"{METRICS[m].label} {'↑' if METRICS[m].higher_is_better else '↓'}" for m in self.metrics]

    def text(self, title: str = "") -> str:
        """The table as printed: one row per method, best first; * marks the best mean of each column."""
        mean_ranks = self.mean_ranks()
        headers = ["rank", "method", *self.headers(), "mean rank"]
        rows = []
        for place, method in enumerate(self.order(), 1):
            cells = [str(place), method]
            cells += [self.cell(method, m) + ("*" if self.best(method, m) else " ") for m in self.metrics]
            cells.append("–" if math.isnan(mean_ranks[method]) else f"{mean_ranks[method]:.2f}")
            rows.append(cells)
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        line = "  ".join(h.ljust(w) if i == 1 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))
        lines = [title] if title else []
        lines += [line, *("  ".join(c.ljust(w) if i == 1 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                          for r in rows)]
        lines.append(f"mean ± standard deviation over {len(self.images)} images; ↑ higher is better, ↓ lower; "
                     f"* best in its column")
        lines.append(self.settings.describe(self.metrics))
        return "\n".join(lines)

    def rows(self) -> list[dict]:
        """One row per method and metric, each saying which direction is better (the CSV)."""
        ranks, mean_ranks = self.ranks(), self.mean_ranks()
        rows = []
        for place, method in enumerate(self.order(), 1):
            for metric in self.metrics:
                mean, std, count = self.statistics(method, metric)
                rows.append({"rank": place, "method": method, "metric": metric, "label": METRICS[metric].label,
                             "better": "higher" if METRICS[metric].higher_is_better else "lower",
                             "mean": _number(mean), "std": _number(std), "images": count,
                             "metric_rank": _number(ranks[metric].get(method, math.nan)),
                             "mean_rank": _number(mean_ranks[method])})
        return rows

    def to_dict(self) -> dict:
        """Everything as JSON-ready values (NaN as null): settings, metrics, the ranking, scores per image, curves."""
        def curve(c):
            return {"fractions": _list(c.fractions), "mean": _list(c.probabilities.mean(axis=0)),
                    "per_image": [_list(row) for row in c.probabilities]}

        methods = {}
        for method in self.order():
            entry = {"scores": {m: _list(self.scores[method][m]) for m in self.metrics},
                     "curves": {m: curve(c) for m, c in self.curves[method].items()},
                     "seconds": _number(self.seconds.get(method, math.nan))}
            if method in self.randomisation:
                result = self.randomisation[method]
                entry["randomisation"] = {"layers_top_first": result.layers, "stage_layer_counts": result.counts,
                                          "mean_per_stage": _list(np.nanmean(result.correlations, axis=0))}
            methods[method] = entry
        return {"metrics": {m: {"label": METRICS[m].label, "higher_is_better": METRICS[m].higher_is_better,
                                "summary": METRICS[m].summary} for m in self.metrics},
                "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self.settings).items()},
                "images": self.images, "targets": self.targets, "ranking": self.rows(), "methods": methods}

    def write(self, out: str | os.PathLike, stem: str = "faithfulness") -> list[Path]:
        """``STEM.csv``, ``STEM.json`` and (with deletion or insertion) ``STEM-curves.png`` in `out`, atomically."""
        out = Path(out)
        buffer = io.StringIO()
        rows = self.rows()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["method"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        paths = [out / f"{stem}.csv", out / f"{stem}.json"]
        write_text(paths[0], buffer.getvalue())
        write_json(paths[1], self.to_dict())
        if any(self.curves[m] for m in self.methods):
            from cnnlab.explain.metrics.plot import curves_figure
            from cnnlab.explain.render import save_figure

            paths.append(out / f"{stem}-curves.png")
            save_figure(curves_figure(self), paths[-1])
        return paths


def _number(value: float):
    return None if value is None or not math.isfinite(value) else float(value)


def _list(values) -> list:
    return [_number(v) for v in np.asarray(values, dtype=np.float64).ravel()]
