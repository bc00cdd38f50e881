"""Sizes that cannot fit in this machine's memory, refused before anything is allocated.

Imports neither torch nor NumPy, so the spec parser and the NumPy engine can use it.
"""

from __future__ import annotations

import os

FLOAT32_BYTES = 4


def physical_memory() -> int | None:
    """Total physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def format_bytes(count: float) -> str:
    """'1.5 GiB', '67.2 PiB': a byte count with a binary unit and one decimal."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def beyond_memory(needed: int) -> str | None:
    """'would need 67.2 PiB, and this machine has 23.4 GiB of memory' when `needed` bytes exceed the
    physical memory; None when they fit (or the memory size is unknown)."""
    total = physical_memory()
    if total is None or needed <= total:
        return None
    return f"would need {format_bytes(needed)}, and this machine has {format_bytes(total)} of memory"
