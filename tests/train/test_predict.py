"""`cnnlab predict` on files and folder trees: CSV, JSON and the table, skipped files, batches."""

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.run import load_model
from cnnlab.train.predict import image_files, predict_paths

TINY_MODEL = "conv(4,3)-tanh-flatten-dense(classes)"


def cnnlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from cnnlab.train import train

    out = tmp_path_factory.mktemp("runs") / "digits"
    train(data="digits", model=TINY_MODEL, epochs=1, image_size=8, out=out, quiet=True, progress=False,
          print_fn=lambda _: None)
    return out


@pytest.fixture
def tree(tmp_path):
    """root/ with images at two depths, a corrupt .png, a text file, a hidden image; returns (root, readable)."""
    from sklearn.datasets import load_digits

    digits = load_digits().images
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    readable = [root / "a" / "b" / "deep.jpg", root / "a" / "one.png", root / "zero.PNG"]
    for index, path in enumerate(readable):
        Image.fromarray((digits[index] / 16 * 255).astype(np.uint8)).resize((20, 20)).save(
            path, format="JPEG" if path.suffix == ".jpg" else "PNG")
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "notes.txt").write_text("not an image")
    Image.new("L", (8, 8)).save(root / "a" / ".hidden.png")
    return root, readable


def reference(run_dir, paths):
    loaded = load_model(run_dir, "cpu")
    return loaded.predict(loaded.load_images(paths)[0]), loaded.class_names


def test_folders_are_walked_for_image_suffixes(tree):
    root, readable = tree
    files, missing = image_files([root, root / "gone.png"])
    assert files == [root / "a" / "b" / "deep.jpg", root / "a" / "broken.png", root / "a" / "one.png",
                     root / "zero.PNG"]
    assert [(m.path, m.reason) for m in missing] == [(str(root / "gone.png"), "does not exist")]


def test_csv_lists_every_readable_image_with_the_runs_probabilities(run_dir, tree):
    root, readable = tree
    result = cnnlab("predict", str(run_dir), str(root), str(root / "notes.txt"), "--format", "csv", "--top-k", "3",
                    "--device", "cpu")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["path", "predicted", "probability", "top1", "p1", "top2", "p2", "top3", "p3"]
    assert [r["path"] for r in rows] == [str(p) for p in sorted(readable)]
    expected, names = reference(run_dir, sorted(readable))
    for row, probabilities in zip(rows, expected):
        values, indices = probabilities.topk(3)
        assert [row["top1"], row["top2"], row["top3"]] == [names[i] for i in indices]
        assert row["predicted"] == row["top1"]
        assert [float(row[f"p{r}"]) for r in (1, 2, 3)] == pytest.approx(values.tolist(), abs=1e-5)
        assert float(row["probability"]) == pytest.approx(float(values[0]), abs=1e-5)
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 2
    assert skipped[0].startswith(f"skipped {root / 'a' / 'broken.png'}: not a readable image")
    assert skipped[1].startswith(f"skipped {root / 'notes.txt'}: not a readable image")
    assert "2 file(s) skipped, 3 predicted" in result.stderr


def test_json_goes_to_the_out_file_and_batches_do_not_change_it(run_dir, tree, tmp_path):
    root, readable = tree
    outputs = []
    for batch in ("1", "2", "64"):
        out = tmp_path / f"batch{batch}.json"
        result = cnnlab("predict", str(run_dir), str(root), "--format", "json", "--batch", batch, "--out", str(out))
        assert result.returncode == 0 and result.stdout == "", result.stderr
        outputs.append(json.loads(out.read_text()))
    for other in outputs[1:]:  # the same rows; sums of floats may round differently in another batch size
        assert [(e["path"], e["predicted"]) for e in other] == [(e["path"], e["predicted"]) for e in outputs[0]]
        assert [e["probability"] for e in other] == pytest.approx([e["probability"] for e in outputs[0]], abs=1e-6)
    expected, names = reference(run_dir, sorted(readable))
    assert [entry["path"] for entry in outputs[0]] == [str(p) for p in sorted(readable)]
    for entry, probabilities in zip(outputs[0], expected):
        assert len(entry["top_k"]) == 5 and entry["top_k"][0]["class"] == entry["predicted"]
        assert entry["predicted"] == names[int(probabilities.argmax())]
        assert entry["probability"] == pytest.approx(float(probabilities.max()), abs=1e-6)
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_default_table_has_a_row_per_image(run_dir, tree):
    root, readable = tree
    result = cnnlab("predict", str(run_dir), str(readable[1]), "--top-k", "2")
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["path", "predicted", "probability", "top-2"]
    expected, names = reference(run_dir, [readable[1]])
    values, indices = expected[0].topk(2)
    assert row.split()[:3] == [str(readable[1]), names[indices[0]], f"{values[0]:.4f}"]
    assert row.endswith(f"{names[indices[0]]} {values[0]:.4f}, {names[indices[1]]} {values[1]:.4f}")


def test_no_readable_image_is_one_line_and_exit_2(run_dir, tree):
    root, _ = tree
    result = cnnlab("predict", str(run_dir), str(root / "a" / "broken.png"), str(root / "gone.png"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("cnnlab predict: error: No image could be read among the 2")
    assert "skipped" in result.stderr and "does not exist" in result.stderr
    alone = cnnlab("predict", str(run_dir), str(root / "a" / "broken.png"))  # one file: its own message, one line
    assert alone.returncode == 2 and alone.stderr.count("\n") == 1
    assert alone.stderr.startswith(f"cnnlab predict: error: The file {root / 'a' / 'broken.png'} is not a readable")


@pytest.mark.parametrize("option, value, message", [("--format", "xml", "Unknown --format value 'xml'"),
                                                     ("--batch", "0", "--batch option"),
                                                     ("--top-k", "0", "--top-k option")])
def test_bad_options_are_one_line(run_dir, tree, option, value, message):
    root, readable = tree
    result = cnnlab("predict", str(run_dir), str(readable[0]), option, value)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1


def test_library_keeps_images_in_order_across_batches(run_dir, tree):
    root, readable = tree
    whole = predict_paths(run_dir, [root], top_k=10, batch=100, device="cpu")
    small = predict_paths(run_dir, [root], top_k=10, batch=1, device="cpu")
    assert [r.path for r in whole.rows] == [r.path for r in small.rows] == [str(p) for p in sorted(readable)]
    for a, b in zip(whole.rows, small.rows):
        assert [n for n, _ in a.top_k] == [n for n, _ in b.top_k]
        assert torch.allclose(torch.tensor([p for _, p in a.top_k]), torch.tensor([p for _, p in b.top_k]),
                              atol=1e-6)
    assert [skipped.path for skipped in whole.skipped] == [str(root / "a" / "broken.png")]


def test_batch_sets_how_many_images_run_together(run_dir, tree, monkeypatch):
    from cnnlab.run import LoadedModel

    root, readable = tree
    sizes, predict = [], LoadedModel.predict
    monkeypatch.setattr(LoadedModel, "predict", lambda self, images: sizes.append(len(images)) or predict(self, images))
    predict_paths(run_dir, readable, batch=2, device="cpu")
    assert sizes == [2, 1]
