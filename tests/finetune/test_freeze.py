"""Freezing: what `--freeze` / `--unfreeze` leave trainable, parameter groups, BatchNorm kept in eval mode."""

import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.finetune.freeze import (apply_freeze, frozen_in_eval, frozen_modules, layer_names, parameter_groups,
                                    parse_freeze)
from cnnlab.models.backbones import get_backbone


@pytest.fixture(scope="module")
def lite0():
    return get_backbone("efficientnet_lite0").create(num_classes=3)


def trainable(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_freeze_backbone_leaves_only_the_head(lite0):
    frozen = apply_freeze(lite0, "classifier", parse_freeze("backbone"))
    assert trainable(lite0) == {"classifier.weight", "classifier.bias"}
    assert len(frozen) == len(list(lite0.parameters())) - 2


def test_freeze_none_trains_everything(lite0):
    assert apply_freeze(lite0, "classifier", parse_freeze("none")) == []
    assert trainable(lite0) == {name for name, _ in lite0.named_parameters()}


def test_until_layer_trains_that_layer_and_everything_after(lite0):
    apply_freeze(lite0, "classifier", parse_freeze("until:blocks.6"))
    names = [name for name, _ in lite0.named_parameters()]
    first = next(i for i, name in enumerate(names) if name.startswith("blocks.6."))
    assert trainable(lite0) == set(names[first:])
    assert "conv_head.weight" in trainable(lite0) and "blocks.5.0.conv_pw.weight" not in trainable(lite0)


def test_until_unknown_layer_suggests_names(lite0):
    with pytest.raises(ConfigError, match="'blocks.66' .* Similar: 'blocks.6'"):
        apply_freeze(lite0, "classifier", parse_freeze("until:blocks.66"))
    assert "conv_stem" in layer_names(lite0) and "blocks.6.0" in layer_names(lite0)


@pytest.mark.parametrize("text, option", [("everything", "--freeze"), ("until:", "--freeze"), ("all", "--freeze"),
                                          ("backbone", "--unfreeze")])
def test_bad_freeze_values_say_what_is_allowed(text, option):
    with pytest.raises(ConfigError, match=f"The {option} option of cnnlab finetune must be"):
        parse_freeze(text, option)


def test_parameter_groups_put_the_head_first_at_its_own_rate(lite0):
    apply_freeze(lite0, "classifier", parse_freeze("until:conv_head"))
    groups = parameter_groups(lite0, "classifier", 1e-2, 1e-3)
    assert [(g["name"], g["lr"], len(g["params"])) for g in groups] == [("head", 1e-2, 2), ("backbone", 1e-3, 3)]
    apply_freeze(lite0, "classifier", parse_freeze("backbone"))
    assert [g["name"] for g in parameter_groups(lite0, "classifier", 1e-2, 1e-3)] == ["head"]


def test_frozen_batchnorm_keeps_its_statistics_in_train_mode(lite0):
    apply_freeze(lite0, "classifier", parse_freeze("until:blocks.6"))
    before = {k: v.clone() for k, v in lite0.state_dict().items()}
    lite0.train()
    with frozen_in_eval(lite0):
        lite0(torch.rand(4, 3, 32, 32))
    after = lite0.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("blocks.6.", "bn2.")) for k in changed), changed
    assert not lite0.bn1.training and lite0.bn2.training
    assert all(not any(p.requires_grad for p in m.parameters()) for m in frozen_modules(lite0))
    lite0.load_state_dict(before)
    lite0.eval()


def test_batchnorm_option_keeps_trainable_batchnorm_statistics(lite0):
    apply_freeze(lite0, "classifier", parse_freeze("none"))
    before = {k: v.clone() for k, v in lite0.state_dict().items()}
    lite0.train()
    with frozen_in_eval(lite0, batchnorm=True):
        lite0(torch.rand(4, 3, 32, 32)).sum().backward()
    assert all(torch.equal(before[k], v) for k, v in lite0.state_dict().items())
    assert lite0.conv_stem.weight.grad is not None and lite0.bn1.weight.grad is not None
    lite0.zero_grad(set_to_none=True)
    lite0.eval()


def test_frozen_in_eval_removes_its_hook():
    model = nn.Sequential(nn.BatchNorm1d(3))
    model[0].weight.requires_grad_(False)
    model[0].bias.requires_grad_(False)
    with frozen_in_eval(model):
        model.train()(torch.rand(5, 3))
        assert not model[0].training
    model.train()(torch.rand(5, 3))
    assert model[0].training and not model._forward_pre_hooks
