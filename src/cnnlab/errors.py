"""The error types cnnlab raises and the one message template they share.

Every error a user can cause is a `CnnlabError`; the command line prints its
message on one line and exits with code 2. Each type also subclasses the
standard exception a Python caller would expect (`ValueError`,
`FileNotFoundError`), so library users can catch either.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class CnnlabError(Exception):
    """Base of every error caused by bad input; its message is one line."""


class ConfigError(CnnlabError, ValueError):
    """An option or parameter has a value outside what is allowed."""


class SpecError(CnnlabError, ValueError):
    """A model or data spec string cannot be parsed or names nothing known."""


class DataError(CnnlabError, ValueError):
    """A data set's files are missing, empty or malformed."""


class ModelError(CnnlabError, ValueError):
    """A model cannot be built or cannot take the given input."""


class RunDirError(CnnlabError, FileNotFoundError):
    """A run directory is missing or lacks a file it must hold."""


class RunInUseError(CnnlabError, BlockingIOError):
    """Another process holds the run directory's lock."""


class OutputError(CnnlabError, OSError):
    """A file or directory cannot be written: not writable, no space left, a file where a folder should be."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 20]" in front
        return self.strerror if self.errno is not None and self.strerror else super().__str__()


class TrainingError(CnnlabError, ArithmeticError):
    """Training cannot go on: the loss became infinite or NaN."""


class WeightsNotFoundError(CnnlabError, FileNotFoundError):
    """Pretrained weights are not on disk and cannot be fetched."""


def similar(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ' Similar: a, b.' for the nearest valid names, or '' when none is close."""
    matches = difflib.get_close_matches(str(name), list(choices), n=n, cutoff=0.5)
    return f" Similar: {', '.join(repr(m) for m in matches)}." if matches else ""


def invalid(what: str, owner: str, expected: str, got: object, hint: str = "") -> str:
    """The one message template: "The 'lr' parameter of Trainer must be a float > 0. Got -1 instead."."""
    message = f"The {what} of {owner} must be {expected}. Got {got!r} instead."
    return f"{message}{(' ' + hint) if hint else ''}"


def unknown(kind: str, name: str, choices: Iterable[str]) -> str:
    """Message for a name that is not in a registry, with close matches and the full list."""
    choices = sorted(choices)
    return f"Unknown {kind} {name!r}.{similar(name, choices)} Known: {', '.join(choices)}."
