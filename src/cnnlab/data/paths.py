"""File names as text that can always be printed."""

from __future__ import annotations

import os


def printable(path: str | os.PathLike | bytes) -> str:
    """`path` as a str that any UTF-8 stream can write: bytes that are not UTF-8 become '\\xff' escapes.

    On POSIX a file name is bytes; Python decodes the non-UTF-8 ones into lone
    surrogates, which a strict UTF-8 stdout refuses to encode.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")
