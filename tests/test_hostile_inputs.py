"""Hostile input on disk and on the command line, one row per case, run through `cnnlab.cli.main` in-process.

Each row makes what it needs in a fresh folder and gives the command line;
the test checks the exit code, that the message names the problem (stderr,
one line, no traceback, for exit code 2; stdout for accepted input, which
must list what it left out) and that nothing is left half-written. capsys
streams are strict UTF-8, so a file name that is not UTF-8 and reaches the
output unescaped fails the row. To add a case, add a row.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from cnnlab.cli import main

from .hostile import (bomb_png, class_folders, image_bytes, make_socket, release_fifo_later, unprivileged,
                      world_traversable)

TINY = "conv(2,3)-relu-flatten-dense(classes)"
# PIL warns about the 100-megapixel bomb as it reads its header; cnnlab then refuses it with its own message.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


@dataclass(frozen=True)
class Case:
    name: str
    prepare: Callable[[Path], list[str]]  # makes the case under a fresh folder; returns the command line
    fragments: tuple[str, ...]  # each in the message ({tmp} is the folder)
    code: int = 2
    absent: tuple[str, ...] = ("out",)  # paths under the folder that must not exist afterwards
    unprivileged: bool = False  # run as a user whom permission bits bind (root's are dropped for the row)
    needs_run: bool = False  # the folder holds a trained run in run/ before `prepare` is called


def train(data: str, *options: str) -> list[str]:
    return ["train", "--data", data, "--model", TINY, "--epochs", "1", "--image-size", "8", "--out", "{tmp}/out",
            *options]


def folder(where: Path, change: Callable[[Path], None] = lambda root: None, **options) -> list[str]:
    """Three classes of six 8x8 PNGs in where/data, then `change(root)`; the train command on them."""
    root = class_folders(where / "data", **options)
    change(root)
    return train(f"folder:{root}")


def symlink_loop(root: Path) -> None:
    (root / "a" / "loop").symlink_to(".")


def fifo(root: Path) -> None:
    os.mkfifo(root / "a" / "pipe.png")
    release_fifo_later(root / "a" / "pipe.png")


def unreadable_class(root: Path) -> None:
    (root / "b").chmod(0)


def empty_class(root: Path) -> None:
    shutil.rmtree(root / "c")
    (root / "c").mkdir()


def no_image_class(root: Path) -> None:
    shutil.rmtree(root / "c")
    (root / "c").mkdir()
    (root / "c" / "notes.txt").write_text("not an image")


def sixteen_bit(root: Path) -> None:
    for label, path in enumerate(sorted(root.glob("*/*.png"))):
        pixels = np.full((8, 8), 1000 + 3000 * "abc".index(path.parent.name) + label, dtype=np.uint16)
        path.write_bytes(image_bytes(pixels))


def bomb(root: Path) -> None:
    (root / "a" / "bomb.png").write_bytes(bomb_png(10000, 10000))


def float_tiff(root: Path) -> None:
    (root / "b" / "scaled.tif").write_bytes(image_bytes(np.linspace(0, 255, 64, dtype=np.float32).reshape(8, 8),
                                                        "TIFF"))


def copies(root: Path) -> None:
    for path in sorted(root.glob("a/*.png")):
        shutil.copy(path, path.with_name("copy-" + path.name))


def non_utf8(root: Path) -> None:
    shutil.rmtree(root / "c")
    strange = root / os.fsdecode(b"caf\xe9")
    class_folders(strange.parent / "tmp", classes=("c",))
    (strange.parent / "tmp" / "c").rename(strange)
    (strange.parent / "tmp").rmdir()
    for path in sorted(strange.glob("*.png")):
        path.rename(strange / os.fsdecode(b"\xff" + os.fsencode(path.name)))
    (strange / os.fsdecode(b"\xfe.txt")).write_text("not an image")


def predict(image: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    return lambda where: ["predict", str(where / "run"), str(image(where))]


def bomb_file(where: Path) -> Path:
    path = where / "bomb.png"
    path.write_bytes(bomb_png(10000, 10000))
    return path


def fifo_file(where: Path) -> Path:
    os.mkfifo(where / "pipe.png")
    release_fifo_later(where / "pipe.png")
    return where / "pipe.png"


CASES = [
    Case("symlink loop in a class", lambda w: folder(w, symlink_loop),
         ("a link to a folder already in the data set, not followed", "11 train / 3 val / 4 test images"), code=0,
         absent=()),
    Case("FIFO in a class", lambda w: folder(w, fifo), ("pipe.png: a FIFO (named pipe), not an image file",), code=0,
         absent=()),
    Case("socket in a class", lambda w: folder(w, lambda r: make_socket(r / "b" / "s.png")),
         ("s.png: a socket, not an image file",), code=0, absent=()),
    Case("broken link in a class", lambda w: folder(w, lambda r: (r / "c" / "gone.png").symlink_to(r / "nowhere")),
         ("gone.png: a broken symbolic link",), code=0, absent=()),
    Case("hard link: one file, two names", lambda w: folder(w, lambda r: os.link(r / "a" / "00.png", r / "a" / "x.png")),
         ("x.png: the same file as", "counted once"), code=0, absent=()),
    Case("unreadable class folder", lambda w: folder(world_traversable(w), unreadable_class),
         ("The folder {tmp}/data/b cannot be read (Permission denied)",), unprivileged=True),
    Case("unreadable data directory", lambda w: folder(world_traversable(w), lambda r: r.chmod(0)),
         ("The directory {tmp}/data of data spec", "cannot be read"), unprivileged=True),
    Case("empty class folder", lambda w: folder(w, empty_class), ("{tmp}/data/c (0 file(s) tried)", "no readable image")),
    Case("class folder without an image", lambda w: folder(w, no_image_class),
         ("{tmp}/data/c (1 file(s) tried)", "no readable image")),
    Case("16-bit PNGs are accepted", lambda w: folder(w, sixteen_bit), ("Test accuracy",), code=0, absent=()),
    Case("decompression bomb in a class", lambda w: folder(w, bomb),
         ("bomb.png: 10000x10000 pixels (100.0 megapixels), over the budget",), code=0, absent=()),
    Case("float TIFF in 0..255", lambda w: folder(w, float_tiff), ("scaled.tif: made of float values in [0, 255]",), code=0,
         absent=()),
    Case("exact copies across splits", lambda w: folder(w, copies), ("have exact copies in another split",), code=0,
         absent=()),
    Case("non-UTF-8 class and file names", lambda w: folder(w, non_utf8), ("\\xfe.txt: not a readable image", "Test accuracy"),
         code=0, absent=()),
    Case("non-UTF-8 data directory", lambda w: train("folder:" + os.fsdecode(os.fsencode(str(w)) + b"/\xff")),
         ("{tmp}/\\xff of data spec", "does not exist")),
    Case("image size beyond memory", lambda w: train("digits", "--image-size", "100000"),
         ("100000x100000", "would need", "Use a smaller --image-size")),
    Case("all images beyond memory, each one fitting", lambda w: train("digits", "--image-size", "20000"),
         ("1,797 images of 1x20000x20000 in memory would need",)),
    Case("image size beyond memory for files", lambda w: folder(w) + ["--image-size", "100000"],
         ("One 3x100000x100000 image of folder:", "would need")),
    Case("dense layer beyond memory", lambda w: train("digits", "--model", "flatten-dense(1000000000000)-dense(classes)"),
         ("75,000,000,000,010 parameters", "would need", "Use fewer filters or units")),
    Case("conv layer beyond memory", lambda w: train("digits", "--model", "conv(1000000000,3)-flatten-dense(classes)"),
         ("conv(1000000000,3)", "would need")),
    Case("predict a decompression bomb", predict(bomb_file), ("bomb.png is 10000x10000 pixels", "over the budget"),
         needs_run=True, absent=()),
    Case("predict a FIFO", predict(fifo_file), ("pipe.png is a FIFO (named pipe), not an image file",),
         needs_run=True, absent=()),
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "run"
    assert main(["train", "--data", "digits", "--model", TINY, "--epochs", "1", "--image-size", "8", "--quiet",
                 "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_input(case, tmp_path, capsys, request):
    if case.needs_run:
        shutil.copytree(request.getfixturevalue("trained_run"), tmp_path / "run")
        capsys.readouterr()
    arguments = [argument.replace("{tmp}", str(tmp_path)) for argument in case.prepare(tmp_path)]
    try:
        if case.unprivileged:
            with unprivileged():
                code = main(arguments)
        else:
            code = main(arguments)
    finally:
        for path in tmp_path.rglob("*"):  # let pytest clean up what the row made unreadable
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
    out, err = capsys.readouterr()
    assert code == case.code, err or out
    message = err.strip() if case.code == 2 else out
    if case.code == 2:
        assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    for fragment in case.fragments:
        assert fragment.replace("{tmp}", str(tmp_path)) in message, message
    for name in case.absent:
        assert not (tmp_path / name).exists(), f"{name} was left behind"
