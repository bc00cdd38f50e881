"""One tiny digits run and its report, written by the command line once and shared by all test processes."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from cnnlab.cli import main

TINY_SPEC = "conv(4,3)-relu-maxpool(2)-conv(8,3)-relu-flatten-dense(10)"
SAMPLES = 150


@dataclass
class Report:
    run_dir: Path
    html_path: Path
    stdout: str

    @property
    def html(self) -> str:
        return self.html_path.read_text()


@pytest.fixture
def quick(monkeypatch):
    """Few activation-maximisation steps, for tests that write a second report."""
    monkeypatch.setattr("cnnlab.report.api.ACTIVATION_STEPS", 10)


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory) -> Path:
    """A directory all pytest-xdist workers of this session see (the parent of each worker's base temp); without
    xdist the session's own base temp, since the parent is shared by every session and would serve a stale page."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def tiny_run(shared_dir) -> Path:
    """2 epochs of a two-convolution spec on digits at 16x16 (a few seconds), trained by whichever worker
    asks first. Tests copy it before changing anything in it."""
    from cnnlab.train.api import train

    out = shared_dir / "report-run" / "tiny"
    with FileLock(str(shared_dir / "report-run.lock")):
        if not (out / "metrics.json").is_file():
            train(data="digits", model=TINY_SPEC, epochs=2, image_size=16, out=out, overwrite=True, quiet=True,
                  progress=False, print_fn=lambda line: None)
    return out


@pytest.fixture(scope="session")
def report(tiny_run, shared_dir) -> Report:
    """`cnnlab report RUN_DIR --samples 150` (of 360 test images) through the command line's entry function
    (in-process: an interpreter start costs more than the report)."""
    printed = tiny_run.parent / "report.stdout"
    with FileLock(str(shared_dir / "report-page.lock")):
        if not printed.is_file():
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                assert main(["report", str(tiny_run), "--samples", str(SAMPLES)]) == 0
            printed.write_text(stdout.getvalue())
    return Report(tiny_run, tiny_run / "report.html", printed.read_text())
