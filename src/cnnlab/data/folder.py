"""A folder with one sub-folder per class; files that are not readable images are skipped and listed.

The scan can be trusted on a messy disk: it follows symbolic links but never
into a folder it has already walked or one inside the data set (so `loop -> .`
adds nothing), counts each file once however many names it has (links, hard
links), never opens a FIFO, socket or device (opening a FIFO blocks), and
refuses a class folder it cannot read or that holds no readable image, since
either would silently change what the classes mean.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.data.datasets import FileDataset
from cnnlab.data.images import ImageError, decode_image, special_file_kind
from cnnlab.data.paths import printable
from cnnlab.data.specs import Source, register_spec
from cnnlab.errors import DataError


@dataclass
class Scan:
    """What `scan_folder` found: readable images with their labels and content digests, and what it left out."""

    class_names: list[str]
    paths: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)  # BLAKE2b of each file's bytes, for finding exact copies
    skipped: list[str] = field(default_factory=list)  # "path: reason", printable


def check_image(path: Path, size: int = 64, channels: int = 3) -> tuple[str | None, str | None]:
    """(digest of the file's bytes, None) for a readable image; (None, why not) for anything else.

    A full decode is the only check that catches truncated files (PIL's verify
    does not for JPEG); JPEGs are decoded at reduced scale, down to `size`.
    """
    try:
        data = path.read_bytes()
        decode_image(data, path, channels, size)
    except ImageError as error:
        return None, error.reason
    except OSError as error:
        return None, f"unreadable ({error.strerror or error})"
    return hashlib.blake2b(data, digest_size=16).hexdigest(), None


def _unreadable(error: OSError) -> DataError:
    return DataError(f"The folder {printable(error.filename)} cannot be read ({error.strerror}); give it read and "
                     f"execute permission, or move it out of the data set.")


def _walk_error(error: OSError) -> None:
    raise _unreadable(error)


def _class_files(class_dir: Path, root: Path, walked: set[tuple[int, int]], skipped: list[str]) -> list[Path]:
    """Every non-hidden file below `class_dir`, following links into folders neither walked yet nor inside `root`."""
    files = []
    for folder, dirs, names in os.walk(class_dir, followlinks=True, onerror=_walk_error):
        identity = os.stat(folder)
        walked.add((identity.st_dev, identity.st_ino))
        kept = []
        for name in sorted(d for d in dirs if not d.startswith(".")):
            path = Path(folder) / name
            target = path.stat()
            if (target.st_dev, target.st_ino) in walked or (path.is_symlink() and _inside(path.resolve(), root)):
                skipped.append(f"{printable(path)}: a link to a folder already in the data set, not followed")
            else:
                walked.add((target.st_dev, target.st_ino))
                kept.append(name)
        dirs[:] = kept
        files += [Path(folder) / name for name in sorted(names) if not name.startswith(".")]
    return files


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def scan_folder(directory: Path, size: int = 64, channels: int = 3) -> Scan:
    """The sorted class sub-folders of `directory`, their readable images (each file once) and what was skipped."""
    root = Path(directory).resolve()
    try:
        entries = sorted(p for p in Path(directory).iterdir() if not p.name.startswith("."))
    except OSError as error:
        raise _unreadable(error) from None
    class_dirs = [p for p in entries if p.is_dir()]
    if len(class_dirs) < 2:
        raise DataError(f"The directory {printable(directory)} must hold one sub-folder per class, at least 2. "
                        f"Got {len(class_dirs)} sub-folder(s) instead.")
    scan = Scan([printable(d.name) for d in class_dirs])
    walked: set[tuple[int, int]] = set()
    seen: dict[tuple[int, int], Path] = {}
    candidates, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        for path in _class_files(class_dir, root, walked, scan.skipped):
            try:
                status = path.stat()
            except OSError:
                scan.skipped.append(f"{printable(path)}: a broken symbolic link")
                continue
            kind = special_file_kind(status.st_mode)
            identity = (status.st_dev, status.st_ino)
            if kind:
                scan.skipped.append(f"{printable(path)}: {kind}, not an image file")
            elif identity in seen:
                scan.skipped.append(f"{printable(path)}: the same file as {printable(seen[identity])}, counted once")
            else:
                seen[identity] = path
                candidates.append(path)
                labels.append(label)
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 2)) as pool:
        checks = list(pool.map(lambda p: check_image(p, size, channels), candidates))
    tried = [0] * len(class_dirs)
    for path, label, (digest, reason) in zip(candidates, labels, checks):
        tried[label] += 1
        if reason is None:
            scan.paths.append(path)
            scan.labels.append(label)
            scan.digests.append(digest)
        else:
            scan.skipped.append(f"{printable(path)}: {reason}")
    empty = [i for i in range(len(class_dirs)) if i not in set(scan.labels)]
    if empty:
        named = ", ".join(f"{printable(class_dirs[i])} ({tried[i]} file(s) tried)" for i in empty)
        raise DataError(f"The class folder(s) {named} of {printable(directory)} hold no readable image; add images "
                        f"or remove the folder.")
    return scan


@register_spec("folder", "images in DIR/CLASS/*.png|jpg, one sub-folder per class; unreadable files skipped",
               image_size=64, channels=3, needs_dir=True)
def load_folder(directory: Path, image_size: int, channels: int) -> Source:
    scan = scan_folder(directory, image_size, channels)
    return Source(FileDataset(scan.paths, scan.labels, image_size, channels), scan.class_names,
                  skipped=scan.skipped, digests=scan.digests)
