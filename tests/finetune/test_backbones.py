"""Backbone entries: their facts, weights from disk or --weights, clear errors when weights are missing."""

import pytest
import torch
from torch import nn

from cnnlab.errors import SpecError, WeightsNotFoundError
from cnnlab.models.backbones import get_backbone, replace_head


def test_efficientnet_lite0_loads_offline_with_its_own_preprocessing():
    entry = get_backbone("efficientnet_lite0")
    assert (entry.input_size, entry.mean, entry.std, entry.interpolation) == (224, (0.5,) * 3, (0.5,) * 3, "bicubic")
    assert len(entry.categories) == 1000
    model = entry.create(num_classes=3)
    assert isinstance(model.classifier, nn.Linear) and model.classifier.out_features == 3
    assert not model.training


def test_efficientnet_lite0_weights_file_in_timm_names_round_trips(tmp_path):
    entry = get_backbone("efficientnet_lite0")
    state = entry.create().state_dict()
    path = tmp_path / "lite0.pth"
    torch.save(state, path)
    loaded = entry.create(weights=str(path)).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


@pytest.mark.parametrize("depth", [18, 50])
def test_missing_resnet_weights_name_the_file_and_the_fix(no_hub_cache, depth):
    with pytest.raises(WeightsNotFoundError) as error:
        get_backbone(f"resnet{depth}").create()
    message = str(error.value)
    assert str(no_hub_cache / "checkpoints") in message and "--weights FILE" in message
    assert f"resnet{depth}" in message and "https://download.pytorch.org/" in message


def test_resnet_takes_a_weights_file(tmp_path, no_hub_cache):
    from torchvision.models import resnet18

    torch.manual_seed(1)
    path = tmp_path / "r18.pth"
    torch.save(resnet18().state_dict(), path)
    model = get_backbone("resnet18").create(weights=str(path), num_classes=4)
    assert model.fc.out_features == 4
    assert torch.equal(model.conv1.weight, torch.load(path)["conv1.weight"])


def test_timm_backbone_needs_weights_and_replaces_a_dotted_head(convnext_weights):
    entry = get_backbone("timm:test_convnext")
    assert entry.classifier == "head.fc" and entry.input_size == 160
    with pytest.raises(WeightsNotFoundError, match="--weights FILE"):
        entry.create()
    model = entry.create(weights=str(convnext_weights), num_classes=5)
    assert model.head.fc.out_features == 5
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 5)


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="nothing.pth does not exist"):
        get_backbone("efficientnet_lite0").create(weights=str(tmp_path / "nothing.pth"))


@pytest.mark.parametrize("name, fragment", [("efficientnet_lite", "Similar: 'efficientnet_lite0'"),
                                            ("resnet19", "Similar: 'resnet18'"),
                                            ("timm:convnext_tinyy", "Similar: 'convnext_tiny'")])
def test_unknown_backbones_suggest_the_nearest(name, fragment):
    with pytest.raises(SpecError, match=fragment):
        get_backbone(name)


def test_replace_head_keeps_input_features():
    model = nn.Sequential()
    model.add_module("fc", nn.Linear(7, 3))
    head = replace_head(model, "fc", 11)
    assert model.fc is head and (head.in_features, head.out_features) == (7, 11)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "convnext_tiny", "efficientnet_b0"])
def test_torchvision_entries_carry_their_weights_metadata(name):
    from torchvision import models

    weights = models.get_model_weights(name).IMAGENET1K_V1
    preset = weights.transforms()
    entry = get_backbone(name)
    assert entry.input_size == preset.crop_size[0] and entry.mean == tuple(preset.mean)
    assert entry.std == tuple(preset.std) and entry.interpolation == preset.interpolation.value
    assert entry.categories == weights.meta["categories"]


@pytest.mark.parametrize("name", ["convnext_tiny", "test_convnext", "vit_tiny_patch16_224"])
def test_timm_entries_read_timms_config_without_building_a_model(name, monkeypatch):
    import timm

    monkeypatch.setattr(timm, "create_model", lambda *a, **k: pytest.fail("built a model to read a config"))
    cfg = timm.models.get_pretrained_cfg(name)
    get_backbone.cache_clear()
    entry = get_backbone(f"timm:{name}")
    assert (entry.input_size, entry.mean, entry.std, entry.interpolation) == (
        cfg.input_size[-1], tuple(cfg.mean), tuple(cfg.std), cfg.interpolation)
    assert entry.classifier == cfg.classifier


def test_efficientnet_lite0_preprocessing_is_timms_tf_efficientnet_lite0():
    import timm

    cfg = timm.models.get_pretrained_cfg("tf_efficientnet_lite0")
    entry = get_backbone("efficientnet_lite0")
    assert (entry.input_size, entry.mean, entry.std, entry.interpolation) == (224, cfg.mean, cfg.std, "bicubic")
