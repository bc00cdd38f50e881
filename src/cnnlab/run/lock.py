"""One writer per run directory: an OS-level lock that the kernel releases when its process dies."""

from __future__ import annotations

import os
from pathlib import Path

from cnnlab.errors import RunInUseError
from cnnlab.files import output_error

try:
    import fcntl
except ImportError:  # Windows: no flock; a second writer is not detected there
    fcntl = None

LOCK_NAME = ".cnnlab.lock"


class RunLock:
    """An exclusive `flock` on ``DIR/.cnnlab.lock``, which holds the owner's PID and command while it is held.

    Releasing removes the file, then unlocks it. A process that locked a file
    which was removed meanwhile sees that its inode is no longer the one at the
    path and tries again, so two processes never both hold "the" lock. A
    crashed owner leaves the file unlocked, and the next process takes it.
    """

    def __init__(self, directory: str | os.PathLike, command: str):
        self.path = Path(directory) / LOCK_NAME
        self.command = command
        self._handle = None

    def acquire(self) -> "RunLock":
        while True:
            try:
                handle = open(self.path, "a+")
            except OSError as error:
                raise output_error(self.path.parent, error, "write in") from None
            if fcntl is None:
                break
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                pid, _, command = holder.partition(" ")
                raise RunInUseError(f"The run directory {self.path.parent} is in use by process {pid}"
                                    f"{f' ({command})' if command else ''}; wait for it to finish, or choose "
                                    f"another --out.") from None
            if _same_file(self.path, handle):
                break
            handle.close()  # the previous holder removed this file after we opened it: take the new one
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {self.command}\n")
        handle.flush()
        self._handle = handle
        return self

    @property
    def held(self) -> bool:
        return self._handle is not None

    def release(self) -> None:
        if self._handle is not None:
            try:
                self.path.unlink()
            except OSError:
                pass  # already gone, or the directory was removed: nothing to clean
            if fcntl is not None:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _same_file(path: Path, handle) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False
