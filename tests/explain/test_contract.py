"""Every method, on every kind of model: batches, the default layer, and the model left exactly as found."""

from __future__ import annotations

import pytest
import torch
from .conftest import FunctionalNet, digits

from cnnlab import explain
from cnnlab.errors import ConfigError, ModelError

OCCLUSION = {"patch": 8, "stride": 8}


def run(method: str, model, x, target=None, **options):
    if method == "occlusion":
        options = {**OCCLUSION, **options}
    return explain.METHODS[method](model, x, target, **options)


def state(model: torch.nn.Module) -> dict:
    """Everything an explanation could disturb."""
    return {
        "weights": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()],
        "modules": [(name, type(m), id(m)) for name, m in model.named_modules()],
        "inplace": [getattr(m, "inplace", None) for m in model.modules()],
    }


def assert_same(before: dict, after: dict) -> None:
    assert before["weights"].keys() == after["weights"].keys()
    assert all(torch.equal(before["weights"][k], after["weights"][k]) for k in before["weights"])
    for key in ("training", "requires_grad", "grads", "hooks", "modules", "inplace"):
        assert before[key] == after[key], key


@pytest.fixture(params=["seed-cnn", "resnet18", "efficientnet", "functional"])
def model_and_input(request, digits_model):
    if request.param == "seed-cnn":
        return digits_model, digits(2)[0]
    if request.param == "functional":
        torch.manual_seed(0)
        return FunctionalNet().eval(), torch.rand(2, 3, 16, 16)
    model = request.getfixturevalue(request.param)
    return model, torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("method", list(explain.METHODS))
def test_method_maps_a_batch_and_leaves_the_model_as_found(method, model_and_input):
    model, x = model_and_input
    # Train mode and a partly frozen model: both must survive.
    model.train()
    first = next(model.parameters())
    first.requires_grad_(False)
    before = state(model)
    try:
        maps = run(method, model, x)
        assert_same(before, state(model))
    finally:
        first.requires_grad_(True)
        model.eval()
    assert maps.shape == (x.shape[0], *x.shape[-2:])
    assert maps.dtype == torch.float32 and not maps.requires_grad
    assert torch.isfinite(maps).all()
    assert explain.METHODS[method].signed or (maps >= 0).all()
    assert maps.flatten(1).abs().amax(dim=1).gt(0).all(), "a map is all zeros"
    # A batch explains each image as if it were alone (the model runs in eval mode).
    alone = run(method, model, x[1:])
    assert torch.allclose(maps[1:], alone, rtol=1e-4, atol=1e-5 * float(alone.abs().max()) + 1e-7)


@pytest.mark.parametrize("method", ["saliency", "guided", "gradcam", "guided-gradcam", "occlusion"])
def test_model_is_restored_when_a_method_raises(method, resnet18):
    resnet18.train()
    before = state(resnet18)
    with pytest.raises(ConfigError, match="target"):
        run(method, resnet18, torch.rand(1, 3, 32, 32), target=10)
    assert_same(before, state(resnet18))


def test_model_is_restored_when_the_model_itself_raises(resnet18):
    before = state(resnet18)
    with pytest.raises(RuntimeError):
        explain.gradcam(resnet18, torch.rand(1, 2, 32, 32))  # two channels: the first convolution fails
    assert_same(before, state(resnet18))


def test_default_layer_is_the_last_feature_map_after_its_activation(resnet18, efficientnet, digits_model):
    assert explain.find_layer(resnet18, None)[0] == "layer4"
    assert explain.find_layer(efficientnet, None)[0] == "bn2"
    assert explain.find_layer(digits_model, None)[0] == "tanh3"


def test_target_is_the_predicted_class_by_default(resnet18):
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    predicted = resnet18(x).argmax(dim=1)
    for method in ("saliency", "gradcam"):
        assert torch.equal(run(method, resnet18, x), run(method, resnet18, x, target=predicted))


def test_bad_arguments_raise_one_line_errors(resnet18):
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ModelError, match="Unknown layer 'layer5'.*'layer4'"):
        explain.gradcam(resnet18, x, layer="layer5")
    with pytest.raises(ModelError, match="needs a layer with a"):
        explain.gradcam(resnet18, x, layer="fc")
    with pytest.raises(ConfigError, match="one class or 2 classes"):
        explain.saliency(resnet18, x, target=[1, 2, 3])
    with pytest.raises(ConfigError, match="stride"):
        explain.occlusion(resnet18, x, patch=4, stride=5)


def test_registry_refuses_an_option_the_method_does_not_take(resnet18):
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ConfigError, match="takes no option 'patch'"):
        explain.METHODS["saliency"](resnet18, x, patch=4)
    with pytest.raises(ConfigError, match="must be >= 1"):
        explain.METHODS["occlusion"](resnet18, x, patch=0)
    with pytest.raises(ConfigError, match="Unknown method 'gradcm'.*'gradcam'"):
        explain.get_method("gradcm")


def test_every_method_is_an_attribute_under_its_python_name():
    for name, method in explain.METHODS.items():
        assert getattr(explain, name.replace("-", "_")) is method.compute or name == "occlusion"
