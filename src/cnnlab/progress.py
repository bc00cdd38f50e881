"""Progress bars for long steps: a tqdm bar on a terminal, nothing in logs and pipes."""

from __future__ import annotations

import sys
from typing import Iterable


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = ""):
    """`iterable` wrapped in a tqdm bar when stderr is a terminal, else `iterable` itself (no output)."""
    if not sys.stderr.isatty():
        return iterable if iterable is not None else range(total or 0)
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)
