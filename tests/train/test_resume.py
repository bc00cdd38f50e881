"""--resume finishes a run as it was started: bit for bit, for every engine and across fine-tuning phases."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.finetune import finetune
from cnnlab.run import Run
from cnnlab.train import Callback, train

ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # float sums depend on the thread count: match the tests'
SPEC = "conv(4,3)-tanh-maxpool(2)-flatten-dense(16)-tanh-dropout(0.2)-dense(classes)"
QUIET = {"quiet": True, "progress": False, "print_fn": lambda _: None}
TINY = {"data": "digits", "model": SPEC, "image_size": 16, "batch_size": 64, **QUIET}


class Crash(Exception):
    """Stands in for a process killed at a given point."""


class CrashAt(Callback):
    """Raises after batch `batch` of epoch `epoch` (0-based), or at the end of `epoch` before it is recorded."""

    def __init__(self, epoch: int, batch: int | None = None):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, batch, logs):
        if self.batch is not None and self.trainer.epoch == self.epoch and batch == self.batch:
            raise Crash

    def on_epoch_end(self, epoch, logs):
        if self.batch is None and epoch == self.epoch:
            raise Crash


def crash_after_records(monkeypatch, count: int):
    """The run dies right after its `count`-th epoch was recorded (any engine)."""
    original, calls = Run.record_epoch, []

    def record(self, *args):
        original(self, *args)
        calls.append(1)
        if len(calls) == count:
            raise Crash

    monkeypatch.setattr(Run, "record_epoch", record)
    return lambda: monkeypatch.setattr(Run, "record_epoch", original)


def weights(run_dir):
    return load_file(str(run_dir / "model.safetensors"))


def assert_same_weights(a, b):
    a, b = weights(a), weights(b)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def history(run_dir):
    return list(csv.DictReader((run_dir / "history.csv").open()))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 3-epoch torch run."""
    out = tmp_path_factory.mktemp("straight") / "run"
    train(**TINY, epochs=3, out=out)
    return out


def test_resume_alone_finishes_the_run_to_its_own_epochs(straight, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Crash):
        train(**TINY, epochs=3, out=out, callbacks=[CrashAt(1)])
    assert Run.open(out).checkpoint()["epoch"] == 1
    train(resume=out, **QUIET)  # no --epochs: the run's own 3
    assert_same_weights(straight, out)
    assert [r["loss"] for r in history(straight)] == [r["loss"] for r in history(out)]


def test_resume_mid_epoch_from_checkpoint_every_is_bit_identical(straight, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Crash):
        train(**TINY, epochs=3, out=out, checkpoint_every=4, callbacks=[CrashAt(1, batch=9)])
    state = Run.open(out).checkpoint()
    assert (state["epoch"], state["batch"]) == (1, 8)
    train(resume=out, **QUIET)
    assert_same_weights(straight, out)
    assert [r["loss"] for r in history(straight)] == [r["loss"] for r in history(out)]


def test_a_run_killed_before_its_first_checkpoint_starts_over_cleanly(straight, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(Crash):
        train(**TINY, epochs=3, out=out, callbacks=[CrashAt(0, batch=3)])
    assert Run.open(out).checkpoint() is None
    assert main(["train", "--data", "digits", "--model", SPEC, "--out", str(out)]) == 2
    assert f"continue its run with --resume {out}" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert "no checkpoint yet: starting it over" not in capsys.readouterr().out  # --quiet
    assert_same_weights(straight, out)


def test_starting_over_removes_what_the_dead_run_left(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Crash):
        train(**TINY, epochs=3, out=out, callbacks=[CrashAt(0, batch=3)])
    (out / "history.csv").write_text("epoch,lr\n1,0.1\n")  # written just before a kill, its checkpoint never was
    with pytest.raises(Crash):
        train(resume=out, callbacks=[CrashAt(0, batch=3)], **QUIET)
    assert not (out / "history.csv").exists()


def test_numpy_engine_resumes_bit_for_bit(tmp_path, monkeypatch):
    options = {**TINY, "model": "conv(4,3)-tanh-maxpool(2)-flatten-dense(16)-tanh-dropout(0.3)-dense(classes)",
               "engine": "numpy", "epochs": 3, "patience": 5}
    train(**options, out=tmp_path / "straight")
    restore = crash_after_records(monkeypatch, 2)
    with pytest.raises(Crash):
        train(**options, out=tmp_path / "run")
    restore()
    train(resume=tmp_path / "run", **QUIET)
    assert_same_weights(tmp_path / "straight", tmp_path / "run")


@pytest.mark.parametrize("crash_after", [1, 2])
def test_finetune_resumes_bit_for_bit_across_its_phases(image_folder, tmp_path, monkeypatch, crash_after):
    options = {"epochs": 3, "unfreeze_after": 1, "image_size": 32, "batch_size": 8, "head_lr": 0.01, **QUIET}
    lines = []
    finetune(f"folder:{image_folder}", "efficientnet_lite0", out=tmp_path / "straight",
             **{**options, "quiet": False, "print_fn": lines.append})
    assert any(line.startswith("Epoch 1/3 (head only)") for line in lines), lines
    assert any(line.startswith("Epoch 3/3 (backbone unfrozen)") for line in lines), lines
    restore = crash_after_records(monkeypatch, crash_after)  # after the head-only phase, or inside the second
    with pytest.raises(Crash):
        finetune(f"folder:{image_folder}", "efficientnet_lite0", out=tmp_path / "run", **options)
    restore()
    assert main(["finetune", "--resume", str(tmp_path / "run"), "--quiet"]) == 0
    assert_same_weights(tmp_path / "straight", tmp_path / "run")
    assert [r["loss"] for r in history(tmp_path / "straight")] == [r["loss"] for r in history(tmp_path / "run")]


def test_options_that_would_change_the_result_are_refused(straight, tmp_path, capsys):
    assert main(["train", "--resume", str(straight), "--lr", "0.1"]) == 2
    error = capsys.readouterr().err
    assert "--lr option of cnnlab train cannot change when resuming" in error and error.count("\n") == 1
    assert main(["train", "--resume", str(straight), "--model", "seed-cnn"]) == 2
    assert "cannot change when resuming" in capsys.readouterr().err
    assert main(["train", "--resume", str(straight), "--seed", "0", "--workers", "1"]) == 0  # the run's own seed
    assert "is finished (3 of 3 epochs); nothing to resume" in capsys.readouterr().out


def test_epochs_can_extend_a_time_schedule_run_but_not_a_cosine_one(straight, tmp_path, capsys):
    import shutil

    extended = tmp_path / "extended"
    shutil.copytree(straight, extended)
    assert main(["train", "--resume", str(extended), "--epochs", "4"]) == 0
    assert "Extending" in capsys.readouterr().out and len(history(extended)) == 4
    assert Run.open(extended).config.train.epochs == 4
    train(**TINY, epochs=2, schedule="cosine", out=tmp_path / "cosine")
    with pytest.raises(ConfigError, match="cosine schedule was planned over 2 epochs"):
        train(resume=tmp_path / "cosine", epochs=3, **QUIET)


def test_ctrl_c_saves_the_state_and_prints_the_resume_command(straight, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "cnnlab", "train", "--data", "digits", "--model", SPEC, "--image-size", "16",
               "--batch-size", "8", "--epochs", "3", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ONE_THREAD)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint" / "state.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert f"Resume with: cnnlab train --resume {out}" in stderr and "is saved in checkpoint/state.pt" in stderr
    assert "the state after batch" in stderr and Run.open(out).checkpoint()["batch"] > 0  # where it stopped
    assert "Traceback" not in stderr
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    reference = tmp_path / "reference"
    train(**{**TINY, "batch_size": 8}, epochs=3, out=reference)
    assert_same_weights(reference, out)


def test_a_killed_process_resumes_to_the_same_weights(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "cnnlab", "train", "--data", "digits", "--model", SPEC, "--image-size", "16",
               "--batch-size", "8", "--epochs", "3", "--checkpoint-every", "20", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ONE_THREAD)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint" / "state.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    reference = tmp_path / "reference"
    train(**{**TINY, "batch_size": 8}, epochs=3, out=reference)
    assert_same_weights(reference, out)


def test_a_second_process_on_the_same_out_fails_at_once_and_the_first_finishes_intact(tmp_path, capsys):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "cnnlab", "train", "--data", "digits", "--model", SPEC,
                              "--image-size", "16", "--batch-size", "8", "--epochs", "8", "--out", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ONE_THREAD)
    deadline = time.monotonic() + 120
    while not (out / "config.json").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert main(["train", "--data", "digits", "--model", "seed-cnn", "--out", str(out)]) == 2
    running = first.poll() is None
    first_out, first_err = first.communicate(timeout=300)
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    if running:  # the usual case; on a very slow machine the first may finish first and the message differs
        assert f"is in use by process {first.pid} (cnnlab train)" in error
    assert first.returncode == 0, first_err
    assert Run.open(out).config.model == SPEC and len(history(out)) == 8
    assert main(["evaluate", str(out)]) == 0


def test_errors_name_the_command_typed_and_idle_options_are_refused(capsys):
    assert main(["finetune", "--data", "lfw-faces", "--backbone", "efficientnet_lite0", "--epochs", "0"]) == 2
    assert "--epochs option of cnnlab finetune must be an integer >= 1" in capsys.readouterr().err
    assert main(["train", "--data", "digits", "--model", SPEC, "--schedule", "onecycle",
                 "--reduce-lr-patience", "2"]) == 2
    assert "--reduce-lr-patience option of cnnlab train would do nothing here" in capsys.readouterr().err
    assert main(["train", "--data", "digits", "--model", SPEC, "--optimizer", "adam", "--momentum", "0.5"]) == 2
    assert "--momentum option of cnnlab train would do nothing here" in capsys.readouterr().err
    assert main(["train", "--data", "digits", "--model", SPEC, "--steps", "3"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("cnnlab train: error: unrecognized arguments: --steps 3")
    assert "'--steps'" not in error  # only the options of the command in use are suggested
    assert main(["train", "--data", "digits", "--model", SPEC, "--epohcs", "3"]) == 2
    assert "Similar: '--epochs'" in capsys.readouterr().err
