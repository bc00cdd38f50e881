"""finetune end to end on tiny data: what trains, what stays frozen, the run directory others read."""

import json

import pytest
import torch
from safetensors.torch import load_file

from cnnlab.errors import ConfigError
from cnnlab.finetune import finetune
from cnnlab.models.backbones import get_backbone
from cnnlab.train.api import evaluate_run, predict_files

SMALL = {"image_size": 32, "quiet": True, "progress": False, "batch_size": 8}


@pytest.fixture(scope="module")
def pretrained():
    """efficientnet_lite0's ImageNet weights, and its new 3-class head as seed 0 initialises it."""
    torch.manual_seed(0)
    return {k: v.clone() for k, v in get_backbone("efficientnet_lite0").create(num_classes=3).state_dict().items()}


def changed(state, reference):
    return {k for k in reference if not torch.equal(state[k], reference[k])}


def test_frozen_backbone_trains_only_the_head_and_writes_a_run(image_folder, tmp_path, pretrained):
    result = finetune(f"folder:{image_folder}", "efficientnet_lite0", epochs=2, out=tmp_path / "run", **SMALL)
    state = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert changed(state, pretrained) == {"classifier.weight", "classifier.bias"}
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint", "config.json", "history.csv",
                                                                      "metrics.json", "model.safetensors"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["backbone"] == "efficientnet_lite0" and config["input_shape"] == [3, 32, 32]  # grey files too
    assert config["finetune"]["freeze"] == "backbone" and config["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert len(result.history) == 2 and result.metrics["feature_cache_seconds"] > 0
    checkpoint = torch.load(tmp_path / "run" / "checkpoint" / "state.pt", weights_only=True)
    assert set(checkpoint["model"]) == set(pretrained) and checkpoint["epoch"] == 2
    # evaluate and predict read the run as they read a `cnnlab train` run
    assert evaluate_run(tmp_path / "run", print_fn=lambda *_: None)["accuracy"] == pytest.approx(
        result.metrics["test_accuracy"])
    top = predict_files(str(tmp_path / "run"), [str(image_folder / "cat" / "03.png")], top_k=2,
                        print_fn=lambda *_: None)
    assert len(top[0]) == 2 and {name for name, _ in top[0]} <= {"cat", "dog", "fox"}


def test_unfreezing_trains_the_backbone_from_the_named_layer(image_folder, tmp_path, pretrained):
    lines = []
    result = finetune(f"folder:{image_folder}", "efficientnet_lite0", epochs=2, unfreeze_after=1,
                      unfreeze="until:blocks.6", head_lr=0.01, out=tmp_path / "run", print_fn=lines.append,
                      **{**SMALL, "quiet": False})
    state = load_file(str(tmp_path / "run" / "model.safetensors"))
    moved = changed(state, pretrained)
    assert "blocks.6.0.conv_pw.weight" in moved and "conv_head.weight" in moved and "classifier.weight" in moved
    assert all(k.startswith(("blocks.6.", "conv_head.", "bn2.", "classifier.")) for k in moved), moved
    assert "bn2.weight" in moved and "bn2.running_mean" in moved, "unfrozen BatchNorm layers update their statistics"
    assert "bn1.running_mean" not in moved and "blocks.5.0.bn1.running_var" not in moved
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert any("Epoch 2: freeze until:blocks.6" in line and "head lr 0.01, backbone lr 0.001" in line
               for line in lines), lines


def test_cached_and_uncached_training_agree(image_folder, tmp_path):
    runs = {cache: finetune(f"folder:{image_folder}", "efficientnet_lite0", epochs=2, cache=cache,
                            out=tmp_path / str(cache), **SMALL) for cache in (True, False)}
    for cached, uncached in zip(runs[True].history, runs[False].history):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert cached[key] == pytest.approx(uncached[key], rel=1e-4, abs=1e-5), key
    heads = [load_file(str(tmp_path / str(cache) / "model.safetensors"))["classifier.weight"]
             for cache in (True, False)]
    torch.testing.assert_close(heads[0], heads[1], rtol=1e-4, atol=1e-5)
    assert runs[False].metrics["feature_cache_seconds"] == 0


def test_timm_backbone_with_a_weights_file_and_a_dotted_head(image_folder, tmp_path, convnext_weights):
    result = finetune(f"folder:{image_folder}", "timm:test_convnext", weights=convnext_weights, epochs=1,
                      out=tmp_path / "run", **SMALL)
    state = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert state["head.fc.weight"].shape[0] == 3
    pretrained = torch.load(convnext_weights, weights_only=True)
    assert torch.equal(state["stem.0.weight"], pretrained["stem.0.weight"])
    assert evaluate_run(tmp_path / "run", print_fn=lambda *_: None)["accuracy"] == pytest.approx(
        result.metrics["test_accuracy"])


def test_flowers102_layout_with_official_splits(flowers_dir, tmp_path):
    result = finetune(f"flowers102:{flowers_dir}", "efficientnet_lite0", epochs=1, freeze="until:conv_head",
                      out=tmp_path / "run", **SMALL)
    assert result.metrics["epochs"] == 1 and 0 <= result.metrics["test_accuracy"] <= 1
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["num_classes"] == 102 and config["finetune"]["freeze"] == "until:conv_head"


def test_augmentation_turns_the_training_cache_off(image_folder, tmp_path):
    lines = []
    finetune(f"folder:{image_folder}", "efficientnet_lite0", epochs=1, augment="hflip,rotation=10",
             out=tmp_path / "run", print_fn=lines.append, **{**SMALL, "quiet": False})
    assert any("features are not cached" in line for line in lines)


def test_lfw_faces_reaches_095_in_three_epochs(tmp_path):
    result = finetune("lfw-faces", "efficientnet_lite0", epochs=3, image_size=64, out=tmp_path / "run",
                      quiet=True, progress=False)
    assert result.metrics["test_accuracy"] >= 0.95


@pytest.mark.parametrize("options, fragment", [
    ({"unfreeze_after": 2, "epochs": 2}, "--unfreeze-after option of cnnlab finetune must be an integer in"),
    ({"unfreeze_after": 1, "freeze": "none"}, "needs something frozen first"),
    ({"augment": "featurewise-center"}, "brings its own normalisation"),
    ({"head_lr": -1.0}, "--lr option of cnnlab finetune must be a finite float > 0"),
    ({"backbone_lr": 0.0, "unfreeze_after": 1}, "--backbone-lr option of cnnlab finetune must be a float > 0"),
    ({"backbone_lr": 1e-4}, "--backbone-lr option of cnnlab finetune would do nothing here"),
    ({"freeze": "until:blocks.66"}, "Similar: 'blocks.6'"),
    ({"reduce_lr_patience": 2, "schedule": "onecycle"}, "--reduce-lr-patience option of cnnlab finetune would do"),
])
def test_bad_options_fail_before_anything_is_written(options, fragment, tmp_path):
    with pytest.raises(ConfigError, match=fragment):
        finetune("lfw-faces", "efficientnet_lite0", out=tmp_path / "run", **{**SMALL, "epochs": 3, **options})
    assert not (tmp_path / "run").exists()
