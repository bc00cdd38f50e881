"""The command line, run as a user runs it (subprocesses) and in-process for the many error cases."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cnnlab.cli import main

TINY = ["--epochs", "2", "--image-size", "16", "--model", "conv(4,3)-tanh-maxpool(2)-flatten-dense(32)-tanh-dense(classes)"]


def cnnlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    result = cnnlab("train", "--data", "digits", *TINY, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Test accuracy" in result.stdout
    return out


def test_train_writes_the_whole_run_directory(run_dir):
    assert {p.name for p in run_dir.iterdir()} >= {"config.json", "model.safetensors", "history.csv",
                                                   "metrics.json", "checkpoint"}
    config = json.loads((run_dir / "config.json").read_text())
    assert config["num_classes"] == 10 and config["input_shape"] == [1, 16, 16]
    assert config["model_spec"].startswith("conv(4,3)-tanh")
    assert config["train"]["optimizer"] == "sgd" and config["train"]["lr"] is None
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"test_accuracy", "test_loss", "val_accuracy", "epochs", "train_seconds", "n_params"} <= set(metrics)
    assert metrics["epochs"] == 2
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) == {"epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    assert (run_dir / "checkpoint" / "state.pt").is_file()
    assert not list(run_dir.rglob("*.tmp"))


def test_non_terminal_output_has_no_progress_bar(run_dir):
    result = cnnlab("train", "--data", "digits", *TINY, "--out", str(run_dir.parent / "quiet-bar"))
    assert "img/s" not in result.stderr and "\r" not in result.stderr + result.stdout


def test_evaluate_reproduces_the_test_accuracy(run_dir, capsys):
    assert main(["evaluate", str(run_dir)]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in capsys.readouterr().out


def test_predict_prints_top_k(run_dir, tmp_path, capsys):
    from sklearn.datasets import load_digits

    digit = load_digits().images[0]  # a zero
    path = tmp_path / "zero.png"
    Image.fromarray((digit / 16 * 255).astype(np.uint8)).resize((32, 32)).save(path)
    assert main(["predict", str(run_dir), str(path), "--top-k", "3"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[-1] == "top-3" and row.count(", ") == 2


def test_resume_continues_to_the_same_weights(tmp_path):
    # both runs in this one test, so both see the same torch thread count (sums of floats depend on it)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(["train", "--data", "digits", *TINY[:1], "3", *TINY[2:], "--out", str(straight), "--quiet"]) == 0
    assert main(["train", "--data", "digits", *TINY, "--out", str(resumed), "--quiet"]) == 0
    assert main(["train", "--resume", str(resumed), "--epochs", "3", "--quiet"]) == 0
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(list(csv.DictReader((resumed / "history.csv").open()))) == 3


def test_numpy_engine_follows_the_torch_engine(tmp_path):
    common = ["train", "--data", "digits", "--model", "seed-cnn", "--epochs", "1", "--quiet", "--no-shuffle"]
    assert main([*common, "--out", str(tmp_path / "torch")]) == 0
    assert main([*common, "--engine", "numpy", "--out", str(tmp_path / "numpy")]) == 0
    curves = [list(csv.DictReader((tmp_path / e / "history.csv").open())) for e in ("torch", "numpy")]
    assert float(curves[0][0]["loss"]) == pytest.approx(float(curves[1][0]["loss"]), rel=1e-4)
    numpy_run = load_file(str(tmp_path / "numpy" / "model.safetensors"))
    torch_run = load_file(str(tmp_path / "torch" / "model.safetensors"))
    assert numpy_run.keys() == torch_run.keys()
    assert all(torch.allclose(numpy_run[k], torch_run[k], atol=1e-4) for k in numpy_run)


def test_summary_of_mnist_cnn(capsys):
    assert main(["summary", "mnist-cnn"]) == 0
    assert "Total params: 1,199,882" in capsys.readouterr().out


def test_models_and_datasets_list_everything(capsys):
    assert main(["models"]) == 0 and main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("seed-cnn", "mnist-cnn", "simple-cnn", "efficientnet_lite0", "digits", "lfw-faces", "mnist:DIR",
                 "folder:DIR", "flowers102:DIR"):
        assert name in out


def write_idx(path: Path, magic: int, dims: tuple, payload: bytes) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    path.write_bytes(header + payload)


@pytest.fixture
def bad_mnist(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", 2049, (4, 28, 28), bytes(4 * 784))
    write_idx(folder / "train-labels-idx1-ubyte", 2049, (4,), bytes(4))
    return folder


@pytest.mark.parametrize("arguments, fragment", [
    (["--data", "digitz", "--model", "seed-cnn"], "Similar: 'digits'"),
    (["--data", "digits", "--model", "seed-cn"], "Similar: 'seed-cnn'"),
    (["--data", "digits", "--model", "conv(8,3"], "unbalanced"),
    (["--data", "digits", "--model", "seed-cnn", "--image-size", "8"], "cannot take 8x8"),
    (["--data", "digits", "--model", "seed-cnn", "--validation-split", "1.5"], "--validation-split"),
    (["--data", "digits", "--model", "seed-cnn", "--validation-split", "0"], "--validation-split"),
    (["--data", "folder:/no/such/dir", "--model", "seed-cnn"], "/no/such/dir"),
    (["--data", "digits", "--model", "seed-cnn", "--optimizer", "sgdd"], "Similar: 'sgd'"),
    (["--data", "digits", "--model", "seed-cnn", "--augment", "rotaton=10"], "rotation"),
    (["--data", "digits", "--model", "seed-cnn", "--precision", "fp16", "--device", "cpu"], "fp16"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(arguments, fragment, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *arguments, "--epochs", "1", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert fragment in error
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    assert not out.exists() or not any(out.iterdir())


def test_bad_idx_magic_names_the_file(bad_mnist, capsys):
    assert main(["train", "--data", f"mnist:{bad_mnist}", "--model", "seed-cnn"]) == 2
    error = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in error and "2051" in error


def test_unknown_option_suggests_the_nearest():
    result = cnnlab("train", "--data", "digits", "--model", "seed-cnn", "--epohcs", "3")
    assert result.returncode == 2
    assert "--epochs" in result.stderr and "Traceback" not in result.stderr


def test_missing_run_directory_and_existing_out(run_dir, tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert main(["train", "--data", "digits", "--model", "seed-cnn", "--out", str(run_dir)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert "does not exist" in errors[0] and "--resume" in errors[1]


def test_folder_with_a_corrupt_image_trains_and_lists_it(image_folder, tmp_path, capsys):
    assert main(["train", "--data", f"folder:{image_folder}", *TINY, "--out", str(tmp_path / "f"), "--quiet"]) == 0
    assert "Skipped" in capsys.readouterr().out
