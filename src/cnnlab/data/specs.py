"""The data-spec registry: each name, what it is, and the loader that reads it.

A spec is `NAME` or `NAME:DIR`. A loader reads the whole source into a
`Source`; `cnnlab.data.splits` turns that into train / validation / test.
Contract tests run every registered spec, so a new source is tested by
registering it with `@register_spec` and giving the tests a fixture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from cnnlab.data.paths import printable
from cnnlab.errors import DataError, SpecError, unknown


@dataclass
class Source:
    """Everything a loader read: all samples, their class names, and any official split."""

    data: object  # ArrayDataset or FileDataset holding every sample
    class_names: list[str]
    official: dict[str, torch.Tensor] = field(default_factory=dict)  # "train" / "val" / "test" -> indices into data
    skipped: list[str] = field(default_factory=list)  # "path: reason" for each unreadable file
    digests: list[str] | None = None  # a content hash per sample (files), to find exact copies across splits


@dataclass(frozen=True)
class DataSpec:
    """One registered source: a loader `load(directory, image_size, channels) -> Source`."""

    name: str
    description: str
    load: Callable[[Path | None, int, int], Source]
    image_size: int  # default side length in pixels
    channels: int  # native channels: 1 grey, 3 RGB
    needs_dir: bool


_REGISTRY: dict[str, DataSpec] = {}


def register_spec(name: str, description: str, image_size: int, channels: int, needs_dir: bool = False):
    """Decorator: register `load(directory, image_size, channels) -> Source` under `name`."""

    def decorate(load):
        _REGISTRY[name] = DataSpec(name, description, load, image_size, channels, needs_dir)
        return load

    return decorate


def list_datasets() -> dict[str, str]:
    """Every spec as it is written (`mnist:DIR`) with its one-line description."""
    return {spec.name + (":DIR" if spec.needs_dir else ""): spec.description
            for spec in sorted(_REGISTRY.values(), key=lambda entry: entry.name)}


def registered_specs() -> dict[str, DataSpec]:
    return dict(_REGISTRY)


def parse_spec(spec: str) -> tuple[DataSpec, Path | None]:
    """The registered entry `spec` names and its directory, which exists when the entry needs one."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"The data spec must be a non-empty string such as 'digits' or 'folder:DIR'. "
                        f"Got {spec!r} instead.")
    name, _, directory = spec.strip().partition(":")
    if name not in _REGISTRY:
        raise SpecError(unknown("data spec", name, list_datasets()))
    entry = _REGISTRY[name]
    if not entry.needs_dir:
        if directory:
            raise SpecError(f"The data spec {name!r} takes no directory. Got {spec!r} instead; use {name!r}.")
        return entry, None
    if not directory:
        raise SpecError(f"The data spec {name!r} needs a directory: use '{name}:DIR'. Got {spec!r} instead.")
    path = Path(directory).expanduser()
    if not path.is_dir():
        what = "is a file, not a directory" if path.exists() else "does not exist"
        raise DataError(f"The directory {printable(path)} of data spec '{printable(spec)}' {what}.")
    try:
        empty = not any(path.iterdir())
    except OSError as error:
        raise DataError(f"The directory {printable(path)} of data spec '{printable(spec)}' cannot be read "
                        f"({error.strerror}); give it read and execute permission.") from None
    if empty:
        raise DataError(f"The directory {printable(path)} of data spec '{printable(spec)}' is empty.")
    return entry, path
