"""The faithfulness table: it ranks a perfect map first, works for every registered method, and writes its files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.explain import METHODS, Method
from cnnlab.explain.metrics import METRICS, Settings, evaluate
from tests.explain.conftest import FunctionalNet
from tests.explain.metrics.models import SIDE, RegionModel, corner

QUICK = Settings(steps=4, road_percentages=(50,), stages=1)


def region_methods() -> list[Method]:
    """Maps of RegionModel's evidence: exactly it, noise, and its complement."""
    region = corner().float()

    def perfect(model, images, target=None):
        return region.expand(len(images), -1, -1)

    def noise(model, images, target=None):
        return torch.rand(len(images), SIDE, SIDE, generator=torch.Generator().manual_seed(0))

    def inverse(model, images, target=None):
        return 1 - region.expand(len(images), -1, -1)

    return [Method(name, fn, name, "units") for name, fn in (("inverse", inverse), ("noise", noise),
                                                             ("perfect", perfect))]


def test_the_perfect_map_ranks_first_and_its_complement_last_on_every_metric():
    model = RegionModel(corner(), 4.0)
    images = torch.rand(3, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(1)) * 0.2
    images[:, 0][:, corner()] += 0.8  # the evidence stands out, so that imputing it from around removes it
    table = evaluate(model, images, region_methods(), target=0, metrics="deletion,insertion,road",
                     steps=16, road_percentages=(10, 20))
    assert table.order() == ["perfect", "noise", "inverse"]
    ranks = table.ranks()
    for metric in table.metrics:
        assert ranks[metric]["perfect"] == 1 and ranks[metric]["inverse"] == 3, metric
    assert table.statistics("perfect", "deletion")[0] < table.statistics("inverse", "deletion")[0]
    assert table.statistics("perfect", "insertion")[0] > table.statistics("inverse", "insertion")[0]
    lines = table.text("title").splitlines()
    assert lines[0] == "title"
    assert lines[1].split()[:5] == ["rank", "method", "deletion", "AUC", "↓"] and "insertion AUC ↑" in lines[1]
    assert lines[2].split()[:2] == ["1", "perfect"] and lines[4].split()[:2] == ["3", "inverse"]
    assert "deletion onto the image's mean colour" in lines[-1] and "16 steps" in lines[-1]


def test_confidence_ranks_by_direction():
    evidence, counter = corner(), torch.flip(corner(), dims=(0, 1))
    model = RegionModel(evidence, 3.0, counter, 1.0)

    def on(mask):
        return Method("on", lambda m, x, t=None: mask.float().expand(len(x), -1, -1), "", "")

    keep, hide = on(evidence), on(counter)
    hide = Method("hide", hide.compute, "", "")
    table = evaluate(model, torch.ones(2, 1, SIDE, SIDE), [hide, keep], target=0, metrics="confidence")
    assert table.order() == ["on", "hide"]
    assert table.statistics("on", "average-drop")[0] == 0 and table.statistics("on", "increase")[0] == 100


def test_every_registered_method_is_evaluated_and_the_model_is_left_as_found():
    torch.manual_seed(0)
    net = FunctionalNet(5).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    rng = torch.get_rng_state()
    masks = [np.ones((16, 16), bool), None]
    table = evaluate(net, images, list(METHODS), settings=QUICK, regions=masks)
    assert table.metrics == list(METRICS)
    for method in METHODS:
        for metric in METRICS:
            values = table.scores[method][metric]
            assert values.shape == (2,), (method, metric)
            assert np.isfinite(values[: 1 if metric == "pointing" else 2]).all(), (method, metric)
        assert np.isnan(table.scores[method]["pointing"][1])
    assert net.training and all(p.requires_grad for p in net.parameters())
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)


def test_the_table_is_written_as_csv_json_and_curves(tmp_path):
    model = RegionModel(corner(), 4.0)
    images = torch.rand(2, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(2))
    table = evaluate(model, images, region_methods(), target=0, metrics="deletion,insertion,confidence", steps=8,
                     names=["a.png", "b.png"])
    written = table.write(tmp_path)
    assert [p.name for p in written] == ["faithfulness.csv", "faithfulness.json", "faithfulness-curves.png"]
    rows = list(csv.DictReader(open(tmp_path / "faithfulness.csv")))
    assert len(rows) == 3 * 4 and rows[0]["method"] == "perfect" and rows[0]["rank"] == "1"
    deletion_row = next(r for r in rows if r["method"] == "noise" and r["metric"] == "deletion")
    assert deletion_row["better"] == "lower" and float(deletion_row["mean"]) == pytest.approx(
        table.statistics("noise", "deletion")[0])
    saved = json.loads((tmp_path / "faithfulness.json").read_text())
    assert saved["metrics"]["insertion"]["higher_is_better"] is True
    assert saved["images"] == ["a.png", "b.png"] and saved["targets"] == [0, 0]
    assert saved["methods"]["perfect"]["scores"]["deletion"] == pytest.approx(
        table.scores["perfect"]["deletion"].tolist())
    assert len(saved["methods"]["noise"]["curves"]["deletion"]["mean"]) == 9
    assert saved["settings"]["steps"] == 8
    assert (tmp_path / "faithfulness-curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*.tmp"))


def test_single_metrics_of_a_group_can_be_asked_for_and_regions_must_match_the_images():
    model = RegionModel(corner(), 4.0)
    images = torch.rand(2, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(3))
    table = evaluate(model, images, region_methods(), target=0, metrics="road-lerf,increase", road_percentages=(50,))
    assert table.metrics == ["road-lerf", "increase"]
    assert all(np.isfinite(table.scores[m][metric]).all() for m in table.methods for metric in table.metrics)
    with pytest.raises(ConfigError, match="one region"):
        evaluate(model, images, region_methods(), metrics="pointing", regions=[None])


@pytest.mark.parametrize("change,message", [
    ({"metrics": "delition"}, "Unknown metric 'delition'. Similar: 'deletion'"),
    ({"metrics": "pointing"}, "The pointing game needs the objects' regions"),
    ({"steps": 0}, "'steps'"),
    ({"deletion_fill": "grey"}, "'deletion fill'"),
    ({"road_percentages": (100,)}, "strictly between 0 and 100"),
    ({"road_noise": -1}, "'noise' of ROAD"),
    ({"stages": 0}, "'stages'"),
])
def test_bad_settings_are_refused_before_any_map_is_computed(change, message):
    calls = []

    def counted(model, images, target=None):
        calls.append(1)
        return torch.ones(len(images), SIDE, SIDE)

    method = Method("counted", counted, "", "")
    metrics = change.pop("metrics", "all")
    with pytest.raises(ConfigError, match=message):
        evaluate(RegionModel(corner()), torch.ones(1, 1, SIDE, SIDE), [method], metrics=metrics, **change)
    assert not calls
