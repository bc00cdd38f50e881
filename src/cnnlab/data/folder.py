"""A folder with one sub-folder per class; files that are not readable images are skipped and listed."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from cnnlab.data.datasets import FileDataset
from cnnlab.data.specs import Source, register_spec
from cnnlab.errors import DataError


def unreadable_reason(path: Path, size: int = 64) -> str | None:
    """Why the image at `path` cannot be decoded, or None when it can.

    A full decode is the only check that catches truncated files (PIL's verify
    does not for JPEG); JPEG's draft mode keeps it cheap by decoding at a
    reduced scale, which still reads the whole stream.
    """
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))
            image.load()
    except Exception as error:  # PIL raises many types for bad files; each only means "skip it"
        message = str(error).splitlines()[0] if str(error) else "unreadable"
        return f"{error.__class__.__name__}: {message}"
    return None


def scan_folder(directory: Path) -> tuple[list[str], list[Path], list[int], list[str]]:
    """Class names (sorted sub-folders), readable image paths, their labels and 'path: reason' for the rest."""
    class_dirs = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise DataError(f"The directory {directory} must hold one sub-folder per class, at least 2. "
                        f"Got {len(class_dirs)} sub-folder(s) instead.")
    candidates, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        for root, dirs, files in os.walk(class_dir, followlinks=True):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    candidates.append(Path(root) / name)
                    labels.append(label)
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 2)) as pool:
        reasons = list(pool.map(unreadable_reason, candidates))
    paths = [p for p, reason in zip(candidates, reasons) if reason is None]
    kept_labels = [label for label, reason in zip(labels, reasons) if reason is None]
    skipped = [f"{p}: {reason}" for p, reason in zip(candidates, reasons) if reason is not None]
    if not paths:
        raise DataError(f"The directory {directory} holds no readable image in its class sub-folders "
                        f"({len(candidates)} file(s) tried, {len(skipped)} unreadable).")
    return [d.name for d in class_dirs], paths, kept_labels, skipped


@register_spec("folder", "images in DIR/CLASS/*.png|jpg, one sub-folder per class; unreadable files skipped",
               image_size=64, channels=3, needs_dir=True)
def load_folder(directory: Path, image_size: int, channels: int) -> Source:
    class_names, paths, labels, skipped = scan_folder(directory)
    return Source(FileDataset(paths, labels, image_size, channels), class_names, skipped=skipped)
