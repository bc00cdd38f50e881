"""`cnnlab explain --evaluate` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cnnlab.cli import main


def test_explain_evaluate_prints_the_ranking_and_writes_it_beside_the_maps(digits_run, tmp_path):
    run, images = digits_run
    regions = tmp_path / "regions.json"
    regions.write_text(json.dumps({images[0].name: [[0, 0, 28, 28]], images[2].stem: [[0, 0, 10, 10]]}))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "cnnlab", "explain", str(run), *map(str, images), "--method",
                             "saliency,gradcam", "--evaluate", "--regions", str(regions), "--curve-steps", "4",
                             "--road-percentages", "30,60", "--randomisation-stages", "1", "--insertion-fill", "0",
                             "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("rank"))
    assert lines[header - 1] == f"Faithfulness of 2 methods for {run} on 3 images"
    assert "pointing game ↑" in lines[header] and "randomisation ρ ↓" in lines[header]
    assert {lines[header + 1].split()[1], lines[header + 2].split()[1]} == {"saliency", "gradcam"}
    assert "insertion from the constant 0; 4 steps; ROAD at 30, 60%" in result.stdout
    saved = json.loads((out / "faithfulness.json").read_text())
    assert saved["settings"]["road_percentages"] == [30.0, 60.0] and saved["settings"]["insertion_fill"] == "0"
    pointing = saved["methods"]["gradcam"]["scores"]["pointing"]
    assert pointing[0] == 1.0 and pointing[1] is None and pointing[2] in (0.0, 1.0)
    for name in ("faithfulness.csv", "faithfulness-curves.png", f"{images[0].stem}.gradcam.npy"):
        assert (out / name).is_file()


@pytest.mark.parametrize("args,message", [
    (["--evaluate", "delition"], "Unknown metric 'delition'. Similar: 'deletion'"),
    (["--evaluate", "pointing"], "The pointing game needs the objects' regions"),
    (["--evaluate", "--road-percentages", "0,50"], "strictly between 0 and 100"),
    (["--evaluate", "--road-percentages", "ten"], "--road-percentages option takes comma-separated numbers"),
    (["--evaluate", "--deletion-fill", "grey"], "'deletion fill' of the evaluation must be 'blur'"),
    (["--evaluate", "--regions", "missing.json"], "Cannot read the regions file missing.json"),
])
def test_a_bad_evaluation_request_exits_2_in_one_line_before_anything_is_written(digits_run, tmp_path, capsys, args,
                                                                                  message):
    run, images = digits_run
    out = tmp_path / "out"
    assert main(["explain", str(run), str(images[0]), "--method", "gradcam", "--out", str(out), *args]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not out.exists()
