"""The report page's structure: every section there, every image a decodable PNG also written to disk,
nothing fetched from outside the file; and its behaviour on sampled, partial and wrong input."""

from __future__ import annotations

import base64
import io
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.errors import ConfigError, DataError, RunDirError
from cnnlab.report import write_report
from cnnlab.report.evaluation import evaluate
from cnnlab.run import Run

SECTIONS = ["overview", "curves", "errors", "top-losses", "architecture", "inside", "faithfulness"]


class Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]


def decode(uri: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix), uri[:40]
    return base64.b64decode(uri[len(prefix):], validate=True)


def test_every_section_is_there_in_order(report):
    page = Elements(report.html)
    assert [s["id"] for s in page.all("section")] == SECTIONS
    links = [a["href"] for a in page.all("a")]
    assert [link for link in links if link != "#"] == [f"#{s}" for s in SECTIONS]
    assert page.all("meta")[1] == {"name": "viewport", "content": "width=device-width, initial-scale=1"}
    text = " ".join(page.text)
    for words in ("test accuracy", "Training curves", "Per class", "Most confused pairs", "Top losses",
                  "First layer's filters", "Feature maps", "one test image per class", "idea of each class",
                  "conv(4,3)-relu-maxpool(2)"):
        assert words in text, words


def test_every_image_decodes_and_is_written_beside_the_page(report):
    page = Elements(report.html)
    images = page.all("img")
    folder = report.html_path.with_name("report_files")
    on_disk = {p.name: p.read_bytes() for p in folder.glob("*.png")}
    assert len(images) == len(on_disk) >= 20
    embedded = set()
    for attrs in images:
        data = decode(attrs["src"])
        picture = Image.open(io.BytesIO(data))
        picture.verify()
        assert picture.size == (int(attrs["width"]), int(attrs["height"]))
        assert attrs["alt"]
        embedded.add(data)
    assert embedded == set(on_disk.values())
    for name in ("curves-loss.png", "curves-accuracy.png", "curves-lr.png", "confusion-counts.png",
                 "confusion-normalised.png", "architecture.png", "filters.png", "activation-max.png",
                 "explain-00.png"):
        assert name in on_disk, name
    assert str(folder) in report.stdout and str(report.html_path) in report.stdout


def test_nothing_outside_the_file_is_referenced(report):
    page = Elements(report.html)
    for tag, attrs in page.tags:
        for name in ("src", "href", "srcset", "poster", "action", "data"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("data:", "#")), (tag, name, value[:60])
    assert not page.all("script") and not page.all("iframe")
    assert not re.search(r"https?:|url\(|@import", re.sub(r'src="data:[^"]*"', "", report.html))


def test_tables_match_the_run(report):
    html = report.html
    for layer in ("conv1", "relu1", "maxpool1", "conv2", "flatten1", "dense1"):
        assert f"<td>{layer}</td>" in html
    assert html.count('<div class="loss">') <= 12
    assert html.count('<figure class="strip">') == 10  # one image per digit class
    per_class_rows = re.findall(r"<tr><td>(\d)</td>", html)
    assert per_class_rows[:10] == [str(c) for c in range(10)]


def test_the_test_split_is_sampled(report):
    assert "on 150 of 360 test images" in report.html and "drawn at random (seed 0)" in report.html
    assert "Evaluated 150 of 360" in report.stdout


def test_a_run_without_history_or_metrics(tiny_run, tmp_path, quick):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_run, partial, ignore=shutil.ignore_patterns("report*", "checkpoint"))
    (partial / "history.csv").unlink()
    (partial / "metrics.json").unlink()
    out = write_report(partial, samples=40, out=tmp_path / "page.html", print_fn=lambda line: None)
    assert out == tmp_path / "page.html" and (tmp_path / "page_files" / "architecture.png").is_file()
    html = out.read_text()
    assert "no history.csv" in html and "curves-loss" not in html and "on 40 of 360" in html


def test_evaluation_predicts_only_the_sample(tiny_run):
    run = Run.open(tiny_run)
    loaded = run.load_model("cpu")
    evaluation = evaluate(run, loaded, samples=25)
    assert len(evaluation.positions) == 25 and evaluation.total == 360 and evaluation.sampled
    assert np.all(np.diff(evaluation.positions) > 0)
    again = evaluate(run, loaded, samples=25)
    assert np.array_equal(again.positions, evaluation.positions)
    expected = loaded.predict(evaluation.images(range(25))).numpy()
    assert np.allclose(evaluation.probabilities, expected, atol=1e-6)
    assert np.array_equal(evaluation.labels, evaluation.dataset.y[evaluation.positions].numpy())


def test_large_file_test_sets_are_sampled_never_read_whole(tmp_path, monkeypatch, quick):
    """A folder data set: only the sampled test files are ever decoded."""
    from cnnlab.data.datasets import FileDataset
    from cnnlab.train.api import train

    rng = np.random.default_rng(0)
    for label in range(3):
        (tmp_path / "images" / f"class{label}").mkdir(parents=True)
        for i in range(30):
            pixels = rng.integers(0, 60, (12, 12), dtype=np.uint8)
            pixels[:, 4 * label:4 * label + 4] = 255
            Image.fromarray(pixels).save(tmp_path / "images" / f"class{label}" / f"{i}.png")
    run = tmp_path / "run"
    train(data=f"folder:{tmp_path / 'images'}", model="conv(4,3)-relu-flatten-dense(classes)", epochs=1,
          image_size=12, out=run, quiet=True, progress=False, print_fn=lambda line: None)
    read = set()
    original = FileDataset.__getitem__

    def spy(self, i):
        read.add(self.paths[i])
        return original(self, i)

    monkeypatch.setattr(FileDataset, "__getitem__", spy)
    lines = []
    write_report(run, samples=5, print_fn=lines.append)
    assert any("Evaluated 5 of 18" in line for line in lines)
    assert 0 < len(read) <= 5


def test_wrong_input_gives_one_line_errors(tiny_run, tmp_path, capsys):
    with pytest.raises(RunDirError):
        write_report(tmp_path / "missing")
    with pytest.raises(ConfigError, match="--samples"):
        write_report(tiny_run, samples=0)
    with pytest.raises(DataError, match="same classes"):
        write_report(tiny_run, data="lfw-faces")
    assert main(["report", str(tmp_path / "missing")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("cnnlab report: error:") and error.count("\n") == 1
