"""What ``cnnlab explain --evaluate`` calls: score the methods on the images explained, print and write the table.

`plan_evaluation` checks the request and reads the regions before any map
is written; `Plan.run` scores the methods once their maps are out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from cnnlab.explain.metrics.settings import Settings, metric_names
from cnnlab.run import LoadedModel


@dataclass
class Plan:
    """A checked evaluation request for some image files."""

    metrics: list[str]
    settings: Settings
    names: list[str]  # the images' file names
    regions: list[np.ndarray | None] | None  # for the pointing game, at each image's own resolution

    def run(self, loaded: LoadedModel, inputs: torch.Tensor, methods: Sequence, targets: torch.Tensor,
            method_options: dict[str, dict], out: str | os.PathLike,
            print_fn: Callable[[str], None] = print) -> list[Path]:
        """Score `methods` on the prepared `inputs`; print the table; write ``faithfulness.csv``, ``.json`` and
        ``-curves.png`` to `out`. Returns the paths written."""
        from cnnlab.explain.metrics.evaluation import evaluate  # scipy's solvers and statistics: only when run

        table = evaluate(loaded.network, inputs, methods, targets, self.metrics, self.settings, method_options,
                         self.regions, self.names, print_fn=print_fn)
        source = loaded.source or "the model"
        print_fn(table.text(f"Faithfulness of {len(table.methods)} methods for {source} on {len(self.names)} "
                            f"images"))
        written = table.write(out)
        print_fn(f"wrote {', '.join(str(p) for p in written)}")
        return written


def plan_evaluation(metrics: str | Sequence[str] | None, regions: str | os.PathLike | None,
                    settings: Settings | None, paths: Sequence[str | os.PathLike],
                    originals: Sequence[torch.Tensor]) -> Plan:
    """Check the metrics and settings and read the regions file (see `cnnlab.explain.metrics.pointing`)."""
    settings = settings or Settings()
    chosen = metric_names(metrics, regions is not None)
    settings.check(chosen)
    names = [Path(p).name for p in paths]
    if regions is None:
        return Plan(chosen, settings, names, None)
    from cnnlab.explain.metrics.pointing import read_regions

    masks = read_regions(regions, names, [tuple(o.shape[-2:]) for o in originals])
    return Plan(chosen, settings, names, masks)
