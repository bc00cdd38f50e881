"""`progress` draws a bar only on a terminal: fine-tuning's feature pass and the report show one there, logs stay
clean."""

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios

import torch
from torch import nn

from cnnlab.data import ArrayDataset
from cnnlab.finetune.features import extract_features
from cnnlab.progress import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _tiny_backbone() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))


def test_off_a_terminal_the_iterable_comes_back_unchanged(monkeypatch):
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    items = [1, 2, 3]
    assert progress(items, total=3, desc="x") is items
    assert stderr.getvalue() == ""


def test_on_a_terminal_a_tqdm_bar_counts_the_items(monkeypatch):
    from tqdm import tqdm

    stderr = _Terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    bar = progress(iter(range(4)), total=4, desc="counting")
    assert isinstance(bar, tqdm)
    assert list(bar) == [0, 1, 2, 3]
    assert "counting:" in stderr.getvalue() and "0/4" in stderr.getvalue()  # tqdm redraws at most 10 times a second


def _features(monkeypatch, stderr) -> str:
    monkeypatch.setattr(sys, "stderr", stderr)
    data = ArrayDataset(torch.rand(10, 1, 8, 8), torch.arange(10) % 2)
    features = extract_features(_tiny_backbone(), "3", data, nn.Identity(), batch_size=4)
    assert features.x.shape == (10, 2)
    return stderr.getvalue()


def test_feature_extraction_shows_its_batches_on_a_terminal(monkeypatch):
    assert "backbone features:   0%|          | 0/3" in _features(monkeypatch, _Terminal())


def test_feature_extraction_is_silent_in_a_log(monkeypatch):
    assert _features(monkeypatch, io.StringIO()) == ""


def test_a_real_pseudo_terminal_gets_the_bar_and_a_pipe_does_not():
    script = "from cnnlab.progress import progress\nfor _ in progress(range(3), desc='steps'): pass\n"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    piped = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment)
    assert piped.returncode == 0 and piped.stderr == ""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a new pty is 0 columns wide
    with subprocess.Popen([sys.executable, "-c", script], stderr=follower, env=environment) as child:
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closes when the child exits
                break
            if not chunk:
                break
            seen += chunk
    os.close(leader)
    assert child.returncode == 0
    assert b"steps:" in seen and b"0/3" in seen
