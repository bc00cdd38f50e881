"""Progress bars for long steps: a tqdm bar on a terminal, nothing in logs and pipes."""

from __future__ import annotations

import sys
from typing import Iterable


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = ""):
    """`iterable` in a tqdm bar when stderr is a terminal, else `iterable` itself (no output).

    Without `iterable`, a bar to `.update()` by hand (a silent one off a terminal).
    """
    terminal = sys.stderr.isatty()
    if iterable is not None and not terminal:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, disable=not terminal)
