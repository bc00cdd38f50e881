"""Writing files so that readers never see half of one, and turning disk failures into one-line errors.

Every file cnnlab writes goes through `atomic_write`: the content goes to a
temporary name in the same directory (``.NAME.XXXX.tmp``), then is renamed
onto NAME. An interrupted write leaves at most a temporary file, which the
run directory's owner removes the next time it opens the run
(`remove_stale_temporaries`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import save_file

from cnnlab.errors import OutputError

_UMASK = os.umask(0)
os.umask(_UMASK)
TEMPORARY_GLOB = ".*.tmp"


def output_error(path: str | os.PathLike, error: OSError, doing: str = "write") -> OutputError:
    """The one-line error for an OSError met while writing `path`."""
    reason = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is exceeded",
              errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
              errno.EPERM: "permission denied", errno.ENOTDIR: "a part of the path is a file, not a directory",
              errno.EEXIST: "a file is in the way", errno.EISDIR: "it is a directory"}.get(error.errno)
    return OutputError(error.errno, f"Cannot {doing} {path}: {reason or error.strerror or error}.")


def make_directory(path: str | os.PathLike) -> Path:
    """Create `path` and its parents; OutputError when a file is in the way or the place is not writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(errno.ENOTDIR, f"Cannot use {path} as a directory: it is a file.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise output_error(path, error, "create the directory") from None
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(temporary_path)`` then rename onto `path`; on any failure nothing is left behind."""
    path = Path(path)
    make_directory(path.parent)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(handle)
    except OSError as error:
        raise output_error(path, error) from None
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode open() would
        os.replace(temporary, path)
    except OSError as error:
        raise output_error(path, error) from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_json(path: str | os.PathLike, data: dict) -> None:
    atomic_write(path, lambda p: Path(p).write_text(json.dumps(data, indent=2, allow_nan=False) + "\n"))


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda p: Path(p).write_text(text))


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda p: Path(p).write_bytes(data))


def save_weights(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    """Write tensors as safetensors (contiguous CPU copies; shared storage is copied apart)."""
    clean = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    atomic_write(path, lambda p: save_file(clean, p))


def check_writable(directory: str | os.PathLike, needed_bytes: int = 0) -> None:
    """OutputError unless a file can be created in `directory` and `needed_bytes` are free there."""
    directory = Path(directory)
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=directory)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise output_error(directory, error, "write in") from None
    free = shutil.disk_usage(directory).free
    if free < needed_bytes:
        raise OutputError(errno.ENOSPC, f"Cannot write in {directory}: {free / 2**20:,.0f} MiB free, and the run "
                                        f"needs about {needed_bytes / 2**20:,.0f} MiB for its weights and checkpoint.")


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files interrupted writes left anywhere below `directory`; returns them."""
    stale = [p for p in Path(directory).rglob(TEMPORARY_GLOB) if p.is_file()]
    for path in stale:
        path.unlink()
    return stale
