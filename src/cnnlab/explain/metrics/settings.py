"""What an evaluation measures and how: the metric names, their directions, the tunables and their options."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields, replace
from typing import Sequence

from cnnlab.errors import ConfigError, invalid, unknown
from cnnlab.explain.metrics.fill import parse_fill


@dataclass(frozen=True)
class Metric:
    """One column of the faithfulness table."""

    name: str  # key in the table, CSV and JSON
    label: str  # column header
    higher_is_better: bool
    summary: str  # what one value is


METRICS = {metric.name: metric for metric in (
    Metric("deletion", "deletion AUC", False, "area under the target's probability as the most relevant pixels are "
           "deleted first (Petsiuk et al.)"),
    Metric("insertion", "insertion AUC", True, "area under the target's probability as the most relevant pixels are "
           "inserted first into the emptied image (Petsiuk et al.)"),
    Metric("road-morf", "ROAD MoRF", False, "mean probability with the most relevant pixels removed and imputed "
           "(Rong et al.)"),
    Metric("road-lerf", "ROAD LeRF", True, "mean probability with the least relevant pixels removed and imputed "
           "(Rong et al.)"),
    Metric("average-drop", "Average Drop %", False, "drop in probability when the image is multiplied by its map, "
           "relative (Chattopadhay et al.)"),
    Metric("increase", "Increase in Conf. %", True, "share of images whose probability rises when multiplied by "
           "their map (Chattopadhay et al.)"),
    Metric("randomisation", "randomisation ρ", False, "Spearman correlation of the map with that of the model "
           "re-initialised from the top, mean over the cascade (Adebayo et al.)"),
    Metric("pointing", "pointing game", True, "share of images whose map's maximum lies on the object (Zhang et al.)"),
)}

# What `--evaluate` accepts: a group computes these metrics.
GROUPS = {"deletion": ("deletion",), "insertion": ("insertion",), "road": ("road-morf", "road-lerf"),
          "confidence": ("average-drop", "increase"), "randomisation": ("randomisation",), "pointing": ("pointing",)}

PERCENTAGES = (10, 20, 30, 40, 50, 60, 70, 80, 90)  # pytorch-grad-cam's ROAD averages


@dataclass(frozen=True)
class Settings:
    """The tunables of an evaluation; every field is also a command-line option (`OPTIONS`)."""

    steps: int = 20  # deletion and insertion change the pixels in this many equal steps
    deletion_fill: str = "mean"  # what deleted pixels become: blur, blur:SIGMA, mean or a number
    insertion_fill: str = "blur"  # what the image is before insertion: RISE blurs it (sigma 5 px)
    road_percentages: tuple[float, ...] = PERCENTAGES  # shares of pixels ROAD removes
    road_noise: float = 0.01  # standard deviation of the noise added to ROAD's imputed pixels (Rong et al.)
    stages: int = 4  # re-initialisation stages of the randomisation check (top layer ... all layers)
    tolerance: float = 15.0  # pointing game: pixels between the map's maximum and the object (Zhang et al.)
    seed: int = 0  # order of tied pixels, ROAD's noise and the re-initialised weights

    def check(self, metrics: Sequence[str]) -> None:
        """Refuse a setting that one of `metrics` would refuse, before anything is computed."""
        if "deletion" in metrics or "insertion" in metrics:
            check_steps(self.steps)
            parse_fill(self.deletion_fill, "deletion fill")
            parse_fill(self.insertion_fill, "insertion fill")
        if "road-morf" in metrics or "road-lerf" in metrics:
            check_percentages(self.road_percentages)
            check_noise(self.road_noise)
        if "randomisation" in metrics:
            check_stages(self.stages)
        if "pointing" in metrics:
            check_tolerance(self.tolerance)

    def describe(self, metrics: Sequence[str]) -> str:
        """The settings that shaped `metrics`, in words."""
        parts = []
        if "deletion" in metrics:
            parts.append(f"deletion onto {parse_fill(self.deletion_fill).describe()}")
        if "insertion" in metrics:
            parts.append(f"insertion from {parse_fill(self.insertion_fill).describe()}")
        if "deletion" in metrics or "insertion" in metrics:
            parts.append(f"{self.steps} steps")
        if "road-morf" in metrics:
            parts.append(f"ROAD at {', '.join(f'{p:g}' for p in self.road_percentages)}% with noise "
                         f"{self.road_noise:g}")
        if "randomisation" in metrics:
            parts.append(f"randomisation over {self.stages} stages")
        if "pointing" in metrics:
            parts.append(f"pointing tolerance {self.tolerance:g} px")
        return "; ".join(parts) + f"; seed {self.seed}"


def check_steps(steps: int) -> int:
    if int(steps) != steps or steps < 1:
        raise ConfigError(invalid("'steps'", "the deletion and insertion curves", "an integer >= 1", steps))
    return int(steps)


def check_percentages(percentages: Sequence[float]) -> tuple[float, ...]:
    """Percentages of pixels to remove, sorted, each strictly between 0 and 100."""
    try:
        values = sorted({float(p) for p in percentages})
    except (TypeError, ValueError):
        values = []
    if not values or not all(0 < p < 100 for p in values):
        raise ConfigError(invalid("'percentages'", "ROAD", "one or more numbers strictly between 0 and 100",
                                  percentages))
    return tuple(values)


def check_noise(noise: float) -> float:
    if not noise >= 0:
        raise ConfigError(invalid("'noise'", "ROAD", "a number >= 0", noise))
    return float(noise)


def check_stages(stages: int) -> int:
    if int(stages) != stages or stages < 1:
        raise ConfigError(invalid("'stages'", "the randomisation check", "an integer >= 1", stages))
    return int(stages)


def check_tolerance(tolerance: float) -> float:
    if not tolerance >= 0:
        raise ConfigError(invalid("'tolerance'", "the pointing game", "a number of pixels >= 0", tolerance))
    return float(tolerance)


# field -> (command-line option, help)
OPTIONS = {
    "steps": ("--curve-steps", "deletion/insertion: change the pixels in N equal steps (default 20)"),
    "deletion_fill": ("--deletion-fill", "what deleted pixels become: blur, blur:SIGMA, mean or a number in [0, 1] "
                      "(default mean: the image's mean colour)"),
    "insertion_fill": ("--insertion-fill", "what insertion starts from (default blur: Gaussian, sigma 5 px, as RISE)"),
    "road_percentages": ("--road-percentages", "comma-separated shares of pixels ROAD removes (default 10,20,...,90)"),
    "road_noise": ("--road-noise", "noise added to ROAD's imputed pixels (default 0.01)"),
    "stages": ("--randomisation-stages", "re-initialisation stages, from the top layer to all (default 4)"),
    "tolerance": ("--pointing-tolerance", "pointing game tolerance in pixels (default 15)"),
    "seed": ("--evaluate-seed", "seed of tie order, ROAD noise and re-initialised weights (default 0)"),
}


def metric_names(metrics: str | Sequence[str] | None, regions: bool) -> list[str]:
    """The metrics to compute, in table order, from ``all`` or group names; the pointing game needs regions."""
    if metrics is None:
        metrics = "all"
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if str(m).strip()]
    chosen: set[str] = set()
    for name in names or ["all"]:
        if name == "all":
            chosen |= {m for group, members in GROUPS.items() if group != "pointing" or regions for m in members}
        elif name in GROUPS:
            chosen |= set(GROUPS[name])
        elif name in METRICS:
            chosen.add(name)
        else:
            raise ConfigError(unknown("metric", name, [*GROUPS, "all"]))
    if "pointing" in chosen and not regions:
        raise ConfigError("The pointing game needs the objects' regions: pass --regions FILE (a JSON file of boxes "
                          "or mask PNGs per image).")
    return [m for m in METRICS if m in chosen]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`cnnlab explain`'s evaluation options: ``--evaluate [METRICS]``, ``--regions FILE`` and one per setting."""
    parser.add_argument("--evaluate", nargs="?", const="all", default=None, metavar="METRICS",
                        help="rank the methods by faithfulness: all (default), or comma-separated deletion, "
                             "insertion, road, confidence, randomisation, pointing")
    parser.add_argument("--regions", default=None, metavar="FILE",
                        help="JSON of object boxes or mask PNGs per image, for the pointing game (default: "
                             "none, no pointing game)")
    kinds = {"steps": int, "stages": int, "seed": int, "road_noise": float, "tolerance": float}
    for field in fields(Settings):
        option, text = OPTIONS[field.name]
        parser.add_argument(option, dest=f"evaluate_{field.name}", type=kinds.get(field.name, str), default=None,
                            help=text)


def settings_from(args: argparse.Namespace) -> Settings:
    """The `Settings` the command line's evaluation options ask for (defaults where none was given)."""
    given = {f.name: getattr(args, f"evaluate_{f.name}", None) for f in fields(Settings)}
    given = {name: value for name, value in given.items() if value is not None}
    if "road_percentages" in given:
        given["road_percentages"] = tuple(_number(p, OPTIONS["road_percentages"][0])
                                          for p in str(given["road_percentages"]).split(",") if p.strip())
    return replace(Settings(), **given)


def _number(text: str, option: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"The {option} option takes comma-separated numbers. Got {text.strip()!r}.") from None
