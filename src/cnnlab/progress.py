"""`progress`: a tqdm bar on a terminal; off one (a log file, a pipe) the iterable as it is, so logs stay clean."""

from __future__ import annotations

import sys


def progress(iterable=None, *, total=None, desc=""):
    """A tqdm bar over `iterable` when stderr is a terminal, else `iterable` itself."""
    if not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm  # here: only a terminal needs it

    return tqdm(iterable, total=total, desc=desc, leave=False, file=sys.stderr)
