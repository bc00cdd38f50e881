"""Makers of hostile data on disk: class folders with link loops, FIFOs and bombs, and a way to lose root's powers."""

from __future__ import annotations

import io
import os
import socket
import struct
import threading
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

NOBODY = 65534


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A valid all-black 8-bit grey PNG of width x height: about 1 KB per megapixel on disk, 1 MB in memory."""
    compressor, row = zlib.compressobj(9), bytes(width + 1)  # filter byte 0, then black pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def declared_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height but whose pixel data is garbage: it fails if ever decoded."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"not zlib data")
            + png_chunk(b"IEND", b""))


def image_bytes(array: np.ndarray, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=format, **options)
    return buffer.getvalue()


def class_folders(root: Path, classes: tuple[str, ...] = ("a", "b", "c"), per_class: int = 6, size: int = 8) -> Path:
    """`root`/CLASS/NN.png: distinct 8-bit grey images whose brightness depends on the class."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 40, (size, size)) + 60 * label
            (root / name / f"{i:02d}.png").write_bytes(image_bytes(pixels.astype(np.uint8)))
    return root


def make_socket(path: Path) -> None:
    """A Unix socket file at `path` (the socket object is closed; the file stays)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))


def release_fifo_later(path: Path, seconds: float = 20.0) -> None:
    """After `seconds`, release a reader blocked on the FIFO at `path`, so a scan that opens it fails, not hangs."""

    def release():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO when nobody is reading: nothing to do
        except OSError:
            pass

    timer = threading.Timer(seconds, release)
    timer.daemon = True
    timer.start()


@contextmanager
def unprivileged():
    """Run the block with an unprivileged effective user when running as root, whom permission bits do not bind."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def world_traversable(path: Path) -> Path:
    """Make `path` and the folders above it up to /tmp searchable by anyone, so an unprivileged user can reach it."""
    path.mkdir(parents=True, exist_ok=True)
    for folder in [path, *path.parents]:
        if folder == Path("/") or folder == Path("/tmp"):
            break
        folder.chmod(folder.stat().st_mode | 0o755)
    return path
