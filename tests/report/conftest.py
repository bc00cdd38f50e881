"""One tiny digits run per test process, and its report written by the command line."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from cnnlab.cli import main

TINY_SPEC = "conv(4,3)-relu-maxpool(2)-conv(8,3)-relu-flatten-dense(10)"


@dataclass
class Report:
    run_dir: Path
    html_path: Path
    stdout: str

    @property
    def html(self) -> str:
        return self.html_path.read_text()


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One torch thread per test process: two workers share two cores, and more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """2 epochs of a two-convolution spec on digits at 16x16 (a few seconds)."""
    from cnnlab.train.api import train

    out = tmp_path_factory.mktemp("report-run") / "tiny"
    train(data="digits", model=TINY_SPEC, epochs=2, image_size=16, out=out, quiet=True, progress=False,
          print_fn=lambda line: None)
    return out


@pytest.fixture(scope="session")
def report(tiny_run) -> Report:
    """`cnnlab report RUN_DIR` through the command line's entry function (in-process: an interpreter start
    costs more than the report)."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["report", str(tiny_run)]) == 0
    return Report(tiny_run, tiny_run / "report.html", stdout.getvalue())
