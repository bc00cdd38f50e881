"""The run directory's owner: its config schema, damaged runs, the one-writer lock, stale temporaries, splits."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from cnnlab.cli import main
from cnnlab.data import load_data
from cnnlab.errors import OutputError, RunDirError, RunInUseError
from cnnlab.files import atomic_write, write_json
from cnnlab.run import Run, RunConfig, TrainConfig, load_model

TINY = "conv(4,3)-tanh-maxpool(2)-flatten-dense(16)-tanh-dense(classes)"


def tiny_config(**train) -> RunConfig:
    return RunConfig(model=TINY, backbone=None, num_classes=10, class_names=[str(i) for i in range(10)],
                     input_shape=[1, 16, 16], data="digits", train=TrainConfig(model=TINY, image_size=16, **train))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from cnnlab.train import train

    out = tmp_path_factory.mktemp("runs") / "seed1"
    train(data="digits", model=TINY, epochs=2, image_size=16, seed=1, out=out, quiet=True, progress=False,
          print_fn=lambda _: None)
    return out


def copy_run(source, target):
    import shutil

    shutil.copytree(source, target)
    return target


def test_config_json_is_the_dataclass_and_reads_back_equal(finished_run):
    data = json.loads((finished_run / "config.json").read_text())
    assert data["schema"] == 2 and data["train"]["seed"] == 1 and data["model"] == TINY
    config = RunConfig.read(finished_run / "config.json")
    assert config.to_dict() == data
    assert isinstance(config.train, TrainConfig) and config.train.epochs == 2


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"a": 1})

    def explode(path):
        open(path, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_full_disk_is_one_line_naming_the_file(tmp_path):
    def full(path):
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"Cannot write .*metrics.json: no space left on the device"):
        atomic_write(tmp_path / "metrics.json", full)
    assert list(tmp_path.iterdir()) == []


def _damage(run, case):
    config = run / "config.json"
    data = json.loads(config.read_text())
    if case == "truncated config":
        config.write_text(config.read_text()[:200])
    elif case == "wrong type":
        data["num_classes"] = "ten"
        config.write_text(json.dumps(data))
    elif case == "missing key":
        del data["class_names"]
        config.write_text(json.dumps(data))
    elif case == "unknown key":
        data["train"]["epochz"] = 3
        config.write_text(json.dumps(data))
    elif case == "newer schema":
        data["schema"] = 99
        config.write_text(json.dumps(data))
    elif case == "bad option value":
        data["train"]["lr"] = -1
        config.write_text(json.dumps(data))
    elif case == "not an object":
        config.write_text("[1, 2]")
    elif case == "truncated weights":
        weights = run / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:300])
    elif case == "foreign weights":
        save_file({"fc.weight": torch.zeros(2, 2)}, str(run / "model.safetensors"))
    elif case == "wrong shapes":
        tensors = load_file(str(run / "model.safetensors"))
        tensors["conv1.weight"] = torch.zeros(8, 1, 3, 3)
        save_file(tensors, str(run / "model.safetensors"))


@pytest.mark.parametrize("case, fragment", [
    ("truncated config", "config.json is not valid JSON"),
    ("wrong type", "The key 'num_classes' in .*config.json must be int. Got 'ten' instead"),
    ("missing key", "config.json lacks the key 'class_names'"),
    ("unknown key", "unknown key 'train.epochz'"),
    ("newer schema", "has config schema 99; this cnnlab"),
    ("bad option value", "--lr option of .*config.json must be a finite float > 0"),
    ("not an object", "must hold a JSON object"),
    ("truncated weights", "model.safetensors is not a readable safetensors file"),
    ("foreign weights", "The weights in .*model.safetensors do not fit the"),
    ("wrong shapes", "do not fit the .*size mismatch for conv1.weight"),
])
def test_a_damaged_run_is_one_line_naming_the_file(finished_run, tmp_path, capsys, case, fragment):
    run = copy_run(finished_run, tmp_path / "run")
    _damage(run, case)
    with pytest.raises(RunDirError, match=fragment):
        load_model(run, "cpu")
    assert main(["evaluate", str(run)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("cnnlab evaluate: error: ") and error.count("\n") == 1, error


def test_missing_run_and_unfinished_run_say_what_is_missing(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        Run.open(tmp_path / "missing")
    with pytest.raises(RunDirError, match="no config.json"):
        Run.open(tmp_path)
    with Run.create(tmp_path / "run", tiny_config()) as run:
        pass
    with pytest.raises(RunDirError, match="no model.safetensors; the run did not finish.*--resume"):
        Run.open(run.path).load_model("cpu")


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    with Run.create(tmp_path / "run", tiny_config()):
        with pytest.raises(RunInUseError, match=rf"in use by process {os.getpid()} \(cnnlab train\)"):
            Run.open(tmp_path / "run", write=True)
        assert main(["train", "--data", "digits", "--model", TINY, "--out", str(tmp_path / "run")]) == 2
    with Run.open(tmp_path / "run", write=True):  # released on close
        pass
    assert not (tmp_path / "run" / ".cnnlab.lock").exists()


def test_the_lock_is_released_when_its_process_dies(tmp_path):
    code = ("import os, sys; from cnnlab.run import Run; from tests.run.test_rundir import tiny_config; "
            "Run.create(sys.argv[1], tiny_config()); os._exit(0)")  # no close: the kernel releases the lock
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / ".cnnlab.lock").exists()
    with Run.open(tmp_path / "run", write=True):
        pass


def test_stale_temporaries_are_removed_when_the_run_is_next_opened_for_writing(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    stale = [run / "checkpoint" / ".state.pt.x1y2.tmp", run / ".model.safetensors.abc.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    with Run.open(run):
        assert all(p.exists() for p in stale)  # readers leave them: a writer may be at work
    with Run.open(run, write=True):
        assert not any(p.exists() for p in stale)


def test_out_that_is_a_file_or_unwritable_is_one_line_and_writes_nothing(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile, afile / "below"):
        assert main(["train", "--data", "digits", "--model", TINY, "--out", str(out)]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and str(afile) in error, error
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["train", "--data", "digits", "--model", TINY, "--out", str(locked / "run")]) == 2
        assert "permission denied" in capsys.readouterr().err


def test_not_enough_space_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    assert main(["train", "--data", "digits", "--model", "mnist-cnn", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert "MiB free" in error and "needs about" in error
    assert not (tmp_path / "run" / "config.json").exists()


def test_splits_of_a_seed_1_run_are_rebuilt_from_its_own_seed_by_evaluate_and_report(finished_run, capsys):
    from cnnlab.report.evaluation import evaluate

    expected = load_data("digits", image_size=16, seed=1)
    other = load_data("digits", image_size=16, seed=0)
    run = Run.open(finished_run)
    assert torch.equal(run.splits().test.index, expected.test.index)
    assert not torch.equal(expected.test.index, other.test.index)
    evaluation = evaluate(run, run.load_model("cpu"), samples=None)
    assert torch.equal(evaluation.dataset.index, expected.test.index)
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert main(["evaluate", str(finished_run), "--device", "cpu"]) == 0
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in capsys.readouterr().out
    assert evaluation.accuracy == pytest.approx(metrics["test_accuracy"])


@pytest.mark.parametrize("command", [["evaluate", "RUN"], ["predict", "RUN", "IMAGE"], ["explain", "RUN", "IMAGE"],
                                     ["visualize", "RUN", "--what", "filters"], ["report", "RUN"]])
def test_every_model_command_takes_a_device(finished_run, tmp_path, capsys, command, monkeypatch):
    from PIL import Image

    image = tmp_path / "digit.png"
    Image.new("L", (16, 16), 128).save(image)
    monkeypatch.chdir(tmp_path)
    arguments = [str(finished_run) if a == "RUN" else str(image) if a == "IMAGE" else a for a in command]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([*arguments, "--device", "cuda"]) == 2
    assert "no CUDA device is available" in capsys.readouterr().err
    assert main([*arguments, "--device", "tpu"]) == 2
    assert "Unknown --device value 'tpu'" in capsys.readouterr().err


def test_pretrained_efficientnet_lite0_knows_the_cat():
    from skimage import data

    loaded = load_model("pretrained:efficientnet_lite0", "cpu")
    assert loaded.input_shape == (3, 224, 224) and len(loaded.class_names) == 1000
    image = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float() / 255
    probabilities = loaded.predict(loaded.prepare(image)[None])[0]
    assert loaded.class_names[int(probabilities.argmax())] == "Egyptian cat"
    assert probabilities.max() == pytest.approx(0.77, abs=0.02)


def test_a_non_finite_loss_stops_training_naming_the_epoch_and_batch_and_the_fix(tmp_path, capsys):
    assert main(["train", "--data", "digits", "--model", "conv(4,3)-relu-flatten-dense(classes)", "--image-size", "16",
                 "--lr", "1e38", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "The loss became" in error and "in epoch 1, batch" in error
    assert "Try a lower --lr" in error
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert main(["train", "--data", "digits", "--model", TINY, "--lr", "inf", "--out", str(tmp_path / "r2")]) == 2
    assert "--lr option of cnnlab train must be a finite float > 0. Got inf" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


def test_a_report_that_fails_to_write_leaves_no_half_report(finished_run, tmp_path, monkeypatch, capsys):
    import pathlib

    run = copy_run(finished_run, tmp_path / "run")
    writes, original = [], pathlib.Path.write_bytes

    def full_after_three(self, data):
        writes.append(self)
        if len(writes) > 3:
            raise OSError(28, "No space left on device")
        return original(self, data)

    monkeypatch.setattr("cnnlab.report.api.ACTIVATION_STEPS", 5)
    monkeypatch.setattr(pathlib.Path, "write_bytes", full_after_three)
    assert main(["report", str(run), "--samples", "20"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no space left on the device" in error
    assert not (run / "report.html").exists() and not (run / "report_files").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".report_files")]
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["report", str(run), "--out", str(afile / "page.html")]) == 2
    assert "is a file" in capsys.readouterr().err
