"""Data spec -> stratified, seeded train / validation / test splits.

As Keras does, the test share comes off the whole first (unless the source has
an official test set), then the validation share off what remains for training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import train_test_split

from cnnlab.data import builtin, flowers, folder, idx  # noqa: F401  (importing a loader registers it)
from cnnlab.data.paths import printable
from cnnlab.data.specs import Source, parse_spec
from cnnlab.errors import ConfigError, DataError, invalid
from cnnlab.memory import FLOAT32_BYTES, beyond_memory


@dataclass
class Splits:
    """The three parts of a data set and what a model needs to know about it."""

    train: object  # ArrayDataset or FileDataset
    val: object | None  # None when validation_split == 0
    test: object
    class_names: list[str]
    input_shape: tuple[int, int, int]  # (C, H, W)
    spec: str
    skipped: list[str] = field(default_factory=list)  # "path: reason" for each unreadable file left out
    official: tuple[str, ...] = ()  # the splits that are the source's own, not drawn with the seed
    duplicates: list[Duplicate] = field(default_factory=list)  # exact copies that landed in different splits


@dataclass(frozen=True)
class Duplicate:
    """Files with identical bytes that landed in more than one split: a leak that inflates test accuracy."""

    paths: tuple[str, ...]  # printable
    splits: tuple[str, ...]  # "train", "val" or "test", one per path


def find_duplicates(source: Source, parts: dict[str, np.ndarray]) -> list[Duplicate]:
    """The groups of samples with equal content digests that span more than one of `parts` (name -> indices)."""
    if source.digests is None:
        return []
    groups: dict[str, list[tuple[str, int]]] = {}
    for name, indices in parts.items():
        for index in indices.tolist():
            groups.setdefault(source.digests[index], []).append((name, index))
    paths = getattr(source.data, "paths", None) or [f"sample {i}" for i in range(len(source.digests))]
    return [Duplicate(tuple(printable(paths[i]) for _, i in members), tuple(name for name, _ in members))
            for members in groups.values() if len({name for name, _ in members}) > 1]


def describe_duplicates(duplicates: list[Duplicate], limit: int = 5) -> str:
    """One line naming the exact copies found in different splits ('' when there are none)."""
    if not duplicates:
        return ""
    shown = "; ".join(" = ".join(f"{path} ({split})" for path, split in zip(d.paths, d.splits))
                      for d in duplicates[:limit])
    more = f"; and {len(duplicates) - limit} more" if len(duplicates) > limit else ""
    return (f"Warning: {len(duplicates)} image(s) have exact copies in another split, which inflates validation "
            f"and test scores: {shown}{more}. Remove the copies from the data set.")


def split_off(indices: np.ndarray, targets: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, taken), both sorted: `share` of `indices` taken at random, stratified by `targets` when possible."""
    n_taken = math.ceil(share * len(indices))  # sklearn's rounding for a float test_size
    if not 0 < n_taken < len(indices):
        raise DataError(f"There are too few samples ({len(indices)}) to split off a {share:g} share and keep "
                        f"some on each side; add images or change the split.")
    try:
        rest, taken = train_test_split(indices, test_size=n_taken, random_state=seed, stratify=targets[indices])
    except ValueError:
        # Classes with a single sample, or fewer taken samples than classes, cannot be stratified.
        rest, taken = train_test_split(indices, test_size=n_taken, random_state=seed)
    return np.sort(rest), np.sort(taken)


def _check_options(validation_split, test_split, train_fraction, image_size, channels) -> None:
    owner = "load_data"
    if not 0.0 <= validation_split < 1.0:
        raise ConfigError(invalid("'validation_split' parameter", owner, "a float in [0, 1) (0 for none)",
                                  validation_split))
    if not 0.0 < test_split < 1.0:
        raise ConfigError(invalid("'test_split' parameter", owner, "a float in (0, 1)", test_split))
    if not 0.0 < train_fraction <= 1.0:
        raise ConfigError(invalid("'train_fraction' parameter", owner, "a float in (0, 1]", train_fraction))
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise ConfigError(invalid("'image_size' parameter", owner, "a positive int or None", image_size))
    if channels not in (None, 1, 3):
        raise ConfigError(invalid("'channels' parameter", owner, "1 (grey), 3 (RGB) or None", channels))


def load_data(spec: str, image_size: int | None = None, seed: int = 0, validation_split: float = 0.2,
              test_split: float = 0.2, train_fraction: float = 1.0, channels: int | None = None) -> Splits:
    """Read the data set `spec` names and split it into stratified, seeded train / validation / test parts.

    Args:
        spec: `digits`, `lfw-faces`, `mnist:DIR`, `folder:DIR` or `flowers102:DIR` (see `list_datasets`).
        image_size: side length images are resized to (whole, no crop); the spec's default when None.
        validation_split: share of the training part held out for validation; 0 for none. A source's
            official validation set is used instead when it has one (and merged into training when 0).
        test_split: share of the whole held out for testing; ignored when the source has an official test set.
        train_fraction: stratified share of the training part kept, to train on less data.
        channels: 1 or 3 to force grey or RGB; the source's own when None.
    """
    _check_options(validation_split, test_split, train_fraction, image_size, channels)
    entry, directory = parse_spec(spec)
    size = image_size or entry.image_size
    channels = channels or entry.channels
    one_image = beyond_memory(channels * size * size * FLOAT32_BYTES)
    if one_image:
        raise ConfigError(f"One {channels}x{size}x{size} image of {printable(spec)} {one_image}. "
                          f"Use a smaller --image-size.")
    source = entry.load(directory, size, channels)
    targets = np.asarray(source.data.targets)
    given = {name: indices.numpy() for name, indices in source.official.items()}
    pool = np.setdiff1d(np.arange(len(targets)), np.concatenate([[], *given.values()]).astype(np.int64))

    if "test" in given:
        train, test = given.get("train", pool), given["test"]
    else:
        train, test = split_off(pool, targets, test_split, seed)
    if "val" in given:
        val = given["val"]
        if validation_split == 0:
            train, val = np.sort(np.concatenate([train, val])), None
    elif validation_split > 0:
        train, val = split_off(train, targets, validation_split, seed)
    else:
        val = None
    if train_fraction < 1.0:
        train, _ = split_off(train, targets, 1.0 - train_fraction, seed)

    drawn = {"train"} if train_fraction < 1.0 else set()
    official = tuple(name for name in ("train", "val", "test")
                     if name in given and name not in drawn and not (name == "val" and val is None))
    return Splits(
        train=source.data.subset(train),
        val=None if val is None else source.data.subset(val),
        test=source.data.subset(test),
        class_names=list(source.class_names),
        input_shape=(channels, size, size),
        spec=spec,
        skipped=list(source.skipped),
        official=official,
        duplicates=find_duplicates(source, {"train": train, **({"val": val} if val is not None else {}),
                                            "test": test}),
    )

