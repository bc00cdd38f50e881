"""MNIST-style IDX files (`train-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`, ...) as tensors.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values. Images are
magic 2051 (uint8, 3 dimensions), labels magic 2049 (uint8, 1 dimension).
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.builtin import array_source
from cnnlab.data.specs import Source, register_spec
from cnnlab.errors import DataError

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
IMAGES_PATTERN = re.compile(r"^(?P<prefix>.+)-images[-.]idx3-ubyte(?:\.gz)?$")


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array stored in the IDX file at `path`, after checking its magic number and its length."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as stream:
            raw = stream.read()
    except (OSError, EOFError) as error:
        raise DataError(f"The IDX file {path} cannot be read ({error}).") from None
    if len(raw) < 4:
        raise DataError(f"The IDX file {path} is truncated: {len(raw)} bytes, not even a header.")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        kind = "images" if magic == IMAGES_MAGIC else "labels"
        raise DataError(f"The IDX file {path} must start with magic number {magic} ({kind}). Got {found} instead.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"The IDX file {path} is truncated inside its header.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(f"The IDX file {path} must hold {expected} values for shape {shape}. "
                        f"Got {len(raw) - header} instead (truncated or padded file).")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _labels_path(images_path: Path) -> Path:
    name = images_path.name.replace("-images", "-labels", 1).replace("idx3", "idx1", 1)
    for candidate in (name, name[:-3] if name.endswith(".gz") else name + ".gz"):
        if (images_path.parent / candidate).is_file():
            return images_path.parent / candidate
    raise DataError(f"The labels file {images_path.parent / name} for {images_path.name} does not exist.")


def read_pair(images_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) and labels (N,) from an images file and its matching labels file."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels_path = _labels_path(images_path)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataError(f"The IDX files {images_path.name} and {labels_path.name} in {images_path.parent} must "
                        f"hold as many labels as images. Got {len(images)} images and {len(labels)} labels instead.")
    return images, labels


def find_images_files(directory: Path) -> dict[str, Path]:
    """{prefix: images file} in `directory`, or in torchvision's layout below it (`raw/`, `MNIST/raw/`, ...)."""
    for folder in [directory, directory / "raw", *sorted(directory.glob("*/raw"))]:
        found = {}
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            match = IMAGES_PATTERN.match(path.name)
            if match and path.is_file():
                found.setdefault(match["prefix"], path)  # plain before .gz when both exist
        if found:
            return found
    raise DataError(f"The directory {directory} must hold IDX files named like 'train-images-idx3-ubyte[.gz]' "
                    f"and 'train-labels-idx1-ubyte[.gz]' (directly or in raw/). Found none.")


def is_test_prefix(prefix: str) -> bool:
    """MNIST and Fashion-MNIST call their test files t10k-*, EMNIST emnist-*-test-*."""
    return prefix.rsplit("-", 1)[-1] in ("t10k", "test")


@register_spec("mnist", "MNIST / Fashion-MNIST IDX files in DIR (t10k-* is the test split when present)",
               image_size=28, channels=1, needs_dir=True)
def load_mnist(directory: Path, image_size: int, channels: int) -> Source:
    prefixes = find_images_files(directory)
    pairs = {prefix: read_pair(path) for prefix, path in prefixes.items()}
    shapes = {prefix: images.shape[1:] for prefix, (images, _) in pairs.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(f"The IDX image files in {directory} must share one image size. Got {shapes} instead.")
    # Test files go last, so the official test split is the tail of the concatenation.
    order = sorted(pairs, key=lambda prefix: (is_test_prefix(prefix), prefix))
    images = np.concatenate([pairs[p][0] for p in order])
    labels = np.concatenate([pairs[p][1] for p in order]).astype(np.int64)
    class_names = [str(label) for label in range(int(labels.max()) + 1)]
    source = array_source(images / np.float32(255.0), labels, class_names, image_size, channels)
    n_test = sum(len(pairs[p][1]) for p in order if is_test_prefix(p))
    if 0 < n_test < len(labels):
        source.official["test"] = torch.arange(len(labels) - n_test, len(labels))
    return source
