"""`cnnlab export`: ONNX (run by onnxruntime) and TorchScript (by torch.jit.load) against the run's own predict."""

import re
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch

from cnnlab.errors import ModelError
from cnnlab.export import api, export_model, run_exported
from cnnlab.run import load_model

TINY_MODEL = "conv(4,3)-tanh-maxpool(2)-flatten-dense(classes)"


def cnnlab(*args, cwd=None, before="pass"):
    code = f"import sys; {before}; from cnnlab.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run whose featurewise statistics move the inputs far from [0, 1], so a missing preprocess shows."""
    from cnnlab.train import train

    out = tmp_path_factory.mktemp("runs") / "digits"
    train(data="digits", model=TINY_MODEL, epochs=1, image_size=8, augment="featurewise-center,featurewise-std",
          out=out, quiet=True, progress=False, print_fn=lambda _: None)
    return out


def images(count, seed=1):
    return torch.rand(count, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def printed_diff(stdout, format):
    match = re.search(rf"max \|p_{format} - p_run\| = (\S+) on", stdout)
    assert match, stdout
    return float(match.group(1))


def onnx_probabilities(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


def test_onnx_gives_the_runs_probabilities_for_raw_images(run_dir, tmp_path):
    out = tmp_path / "fixed.onnx"
    result = cnnlab("export", str(run_dir), "--format", "onnx", "--out", str(out), "--batch", "2")
    assert result.returncode == 0, result.stderr
    assert printed_diff(result.stdout, "onnx") < 1e-5
    loaded = load_model(run_dir, "cpu")
    x = images(2)
    expected = loaded.predict(x)
    assert (onnx_probabilities(out, x) - expected).abs().max() < 1e-5
    # the preprocessing is inside: the bare model on the same pixels gives other probabilities
    bare = loaded.model(x).softmax(dim=-1).detach()
    assert (bare - expected).abs().max() > 1e-2
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_dynamic_onnx_takes_a_batch_of_3_and_a_fixed_one_refuses_it(run_dir, tmp_path):
    fixed = export_model(run_dir, "onnx", tmp_path / "fixed.onnx", batch=1, print_fn=lambda _: None)
    dynamic = export_model(run_dir, "onnx", tmp_path / "dynamic.onnx", dynamic_batch=True, print_fn=lambda _: None)
    x = images(3)
    assert (onnx_probabilities(dynamic.path, x) - load_model(run_dir, "cpu").predict(x)).abs().max() < 1e-5
    assert dynamic.max_abs_diff < 1e-5 and fixed.max_abs_diff < 1e-5
    with pytest.raises(ModelError, match=r"takes images of shape \[1, 1, 8, 8\].*got \[3, 1, 8, 8\]"):
        run_exported(fixed.path, x)
    assert (run_exported(fixed.path, x[:1]) - load_model(run_dir, "cpu").predict(x[:1])).abs().max() < 1e-5


def test_torchscript_fixed_and_dynamic(run_dir, tmp_path):
    out = tmp_path / "dynamic.pt"
    result = cnnlab("export", str(run_dir), "--format", "torchscript", "--dynamic-batch", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert printed_diff(result.stdout, "torchscript") < 1e-5
    x = images(3)
    with pytest.warns(FutureWarning):  # torch.jit notes that torch.export is newer
        module = torch.jit.load(str(out))
    assert (module(x) - load_model(run_dir, "cpu").predict(x)).abs().max() < 1e-5
    fixed = export_model(run_dir, "torchscript", tmp_path / "fixed.pt", batch=2, print_fn=lambda _: None)
    with pytest.raises(ModelError, match=r"takes images of shape \[2, 1, 8, 8\].*got \[3, 1, 8, 8\]"):
        run_exported(fixed.path, x)


def test_the_default_file_lies_beside_the_run_and_onnx_export_is_deterministic(run_dir, tmp_path):
    first = cnnlab("export", str(run_dir))
    assert first.returncode == 0, first.stderr
    written = run_dir.parent / "digits.onnx"
    assert f"Wrote {written} (onnx)" in first.stdout
    again = export_model(run_dir, "onnx", tmp_path / "again.onnx", print_fn=lambda _: None)
    assert written.read_bytes() == again.path.read_bytes()


def test_a_file_that_disagrees_with_the_run_is_never_written(run_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(api, "TOLERANCE", 0.0)
    with pytest.raises(ModelError, match="nothing was written"):
        export_model(run_dir, "torchscript", tmp_path / "model.pt", print_fn=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_missing_onnx_packages_say_how_to_install_them(run_dir, tmp_path):
    result = cnnlab("export", str(run_dir), "--out", str(tmp_path / "m.onnx"),
                    before="sys.modules['onnxruntime'] = None")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "pip install 'cnnlab[export]'" in result.stderr
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("arguments, message", [(["RUN_MISSING"], "does not exist"),
                                                (["RUN", "--format", "tflite"], "Unknown --format value 'tflite'"),
                                                (["RUN", "--batch", "0"], "--batch option")])
def test_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, arguments, message):
    arguments = [str(run_dir) if a == "RUN" else str(tmp_path / "missing") if a == "RUN_MISSING" else a
                 for a in arguments]
    result = cnnlab("export", *arguments)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_run_exported_reads_only_model_files(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.arange(10, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        run_exported(junk, images(1))


def test_the_check_images_are_seeded_and_cover_the_unit_range():
    first, again = api.check_images((1, 8, 8), 4), api.check_images((1, 8, 8), 4)
    assert torch.equal(first, again) and first.shape == (4, 1, 8, 8)
    assert 0 <= first.min() < 0.05 and 0.95 < first.max() <= 1
    assert all(not torch.equal(first[0], image) for image in first[1:])
