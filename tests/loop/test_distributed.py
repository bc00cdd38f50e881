"""Training on several processes (torch.distributed, gloo on the CPU), as `cnnlab train --nproc N` runs it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cnnlab.loop.distributed import World
from cnnlab.run import Run
from cnnlab.train import train

# seed-cnn has no dropout (a dropout mask is drawn per process, so a model with one cannot match)
ARGS = ["--data", "digits", "--model", "seed-cnn", "--epochs", "2", "--batch-size", "100"]
# Long enough to kill a worker in the middle: mnist-cnn without its dropout, checkpoints every 4 batches.
LONG = ["--data", "digits", "--model", "conv(32,3)-relu-conv(64,3)-relu-maxpool(2)-flatten-dense(128)-relu-dense(classes)",
        "--epochs", "3", "--batch-size", "100", "--checkpoint-every", "4"]


def cnnlab(*args, **popen):
    return subprocess.Popen([sys.executable, "-m", "cnnlab", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def two_processes(arguments, out):
    """An uninterrupted 2-process run and what it printed."""
    stdout, stderr = cnnlab("train", *arguments, "--nproc", 2, "--out", out).communicate(timeout=600)
    assert (out / "metrics.json").is_file(), stderr
    return out, stdout, stderr


def test_the_global_batch_is_split_into_contiguous_shares():
    chunk = np.arange(7)
    shares = [World(rank, 3).shard(chunk) for rank in range(3)]
    assert [s.tolist() for s in shares] == [[0, 1, 2], [3, 4], [5, 6]]
    assert World().shard(chunk).tolist() == chunk.tolist()


def test_two_processes_give_the_weights_of_one_with_the_same_global_batch(tmp_path):
    out, stdout, stderr = two_processes(ARGS, tmp_path / "two")
    assert "2 processes on cpu" in stdout and stdout.count("Test accuracy") == 1, stdout  # only rank 0 prints
    assert stderr.strip() == "", stderr
    one = tmp_path / "one"
    options = dict(zip([a.lstrip("-").replace("-", "_") for a in ARGS[::2]], ARGS[1::2]))
    train(**{**options, "epochs": 2, "batch_size": 100}, out=one, quiet=True, progress=False)
    a, b = load_file(str(one / "model.safetensors")), load_file(str(out / "model.safetensors"))
    # Not bit-identical: each process sums its share of a batch and DDP adds the two sums, so float additions
    # happen in another order, as they do with another torch thread count. After 24 SGD steps the weights agree
    # to 1e-4 (a wrong loss scale or a rank's share left out moves them by 1e-2 and more). Longer runs at this
    # learning rate drift apart: one process on 1 and on 2 threads drifts as far as 1 and 2 processes do.
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-3, atol=1e-4)
    one_history, two_history = Run.open(one).history(), Run.open(out).history()
    for x, y in zip(one_history, two_history):  # the printed and saved numbers are over all the data
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-4)
        assert y["accuracy"] == pytest.approx(x["accuracy"]) and y["val_accuracy"] == pytest.approx(x["val_accuracy"])
    metrics = Run.open(out).metrics()
    assert metrics["test_accuracy"] == pytest.approx(Run.open(one).metrics()["test_accuracy"], abs=1 / 360)


def _worker_of_rank(launcher_pid: int, rank: int) -> int | None:
    """The PID of the worker with RANK=`rank` among the launcher's children."""
    children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children")
    for pid in children.read_text().split() if children.exists() else []:
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environment and b"LOCAL_RANK" in b"".join(environment):
            return int(pid)
    return None


def test_a_killed_worker_is_restarted_and_the_run_ends_as_an_uninterrupted_one(tmp_path):
    reference, _, _ = two_processes(LONG, tmp_path / "reference")
    out = tmp_path / "run"
    launcher = cnnlab("train", *LONG, "--nproc", 2, "--max-restarts", 1, "--out", out)
    deadline, victim = time.monotonic() + 300, None
    while victim is None and launcher.poll() is None and time.monotonic() < deadline:
        if (out / "checkpoint" / "state.pt").exists():
            victim = _worker_of_rank(launcher.pid, 1)
        time.sleep(0.02)
    assert victim is not None, "the run ended before a worker could be killed"
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = launcher.communicate(timeout=600)
    assert launcher.returncode == 0, stderr
    assert "Resuming" in stdout, stdout  # the restarted group continued from the checkpoint
    a, b = load_file(str(reference / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_a_failing_rank_ends_the_run_with_one_line_and_no_half_written_run(tmp_path):
    out = tmp_path / "run"
    launcher = cnnlab("train", "--data", f"folder:{tmp_path / 'missing'}", "--model", "seed-cnn", "--nproc", 2,
                      "--out", out)
    _, stderr = launcher.communicate(timeout=600)
    assert launcher.returncode == 2
    assert stderr.count("\n") == 1 and stderr.startswith("cnnlab train: error: Rank "), stderr
    assert "failed: The directory" in stderr and "does not exist" in stderr
    assert not out.exists()


def test_nproc_under_a_launcher_and_numpy_engine_are_refused(tmp_path, monkeypatch):
    from cnnlab.errors import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="already a worker"):
        train(data="digits", model="seed-cnn", nproc=2, out=tmp_path / "run")


def test_finetuning_shares_the_feature_cache_across_processes(image_folder, tmp_path):
    """Head-only epochs on cached features: each process extracts its share of the images once, the shares
    are gathered, and the head trains as in one process (a BatchNorm layer that trains would normalise over
    each process's share instead: --sync-bn, on CUDA)."""
    from cnnlab.finetune import finetune

    arguments = ["--data", f"folder:{image_folder}", "--backbone", "efficientnet_lite0", "--epochs", "2",
                 "--image-size", "32", "--batch-size", "8"]
    launcher = cnnlab("finetune", *arguments, "--nproc", 2, "--out", tmp_path / "two")
    stdout, stderr = launcher.communicate(timeout=600)
    assert launcher.returncode == 0, stderr
    assert "computed once" in stdout
    finetune(f"folder:{image_folder}", "efficientnet_lite0", epochs=2, image_size=32, batch_size=8,
             out=tmp_path / "one", quiet=True, progress=False)
    a, b = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("one", "two"))
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)
