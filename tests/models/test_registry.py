"""Contract tests over the model registry and the spec-string builder."""

import math

import pytest
import torch

from cnnlab import spec
from cnnlab.errors import ModelError, SpecError
from cnnlab.models import create_model, list_models


@pytest.mark.parametrize("name", sorted(list_models()))
def test_every_registered_model_trains(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, input_shape=(1, 28, 28))
    logits = model(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 7)
    logits.logsumexp(dim=1).sum().backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name
        assert parameter.grad.abs().sum() > 0, parameter_name


def test_spec_string_builds_named_layers_and_round_trips():
    text = "conv(32,3)-relu-conv(64,3,padding=same)-relu-maxpool(2)-dropout(0.25)-flatten-dense(128)-relu-dense(classes)"
    model = create_model(text, num_classes=4, input_shape=(3, 16, 16))
    assert [n for n, _ in model.named_children()][:4] == ["conv1", "relu1", "conv2", "relu2"]
    assert model.conv2.padding == (1, 1)
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 4)
    layers = spec.parse(text, 4)
    assert spec.parse(spec.to_string(layers)) == layers


def test_mnist_cnn_has_keras_parameter_count():
    model = create_model("mnist-cnn", 10, (1, 28, 28))
    assert sum(p.numel() for p in model.parameters()) == 1_199_882


@pytest.mark.parametrize("text, fragment", [
    ("seed-cn", "Similar: 'seed-cnn'"),
    ("conv(8,3", "unbalanced"),
    ("conv(8,3)-relu", "must end with a dense layer"),
    ("conv(8,x)-flatten-dense(2)", "must be a positive integer"),
    ("dropout(1.5)-flatten-dense(2)", "[0, 1)"),
    ("convv(8,3)-flatten-dense(2)", "Similar: 'conv'"),
    ("conv(8,3)-dense(2)", "put 'flatten' before it"),
])
def test_bad_specs_name_the_problem(text, fragment):
    with pytest.raises((SpecError, ModelError)) as error:
        create_model(text, 10, (1, 28, 28))
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_too_small_input_is_a_model_error():
    with pytest.raises(ModelError, match="cannot take 8x8 images"):
        create_model("seed-cnn", 10, (1, 8, 8))


@pytest.mark.parametrize("text", ["seed-cnn", "mnist-cnn", "simple-cnn",
                                  "conv(5,3,2,same)-relu-avgpool(2)-conv(3,2)-flatten-dense(9)-dense(classes)"])
def test_parameters_counted_from_the_spec_equal_torchs(text):
    layers = spec.resolve(text, 6)
    model = create_model(text, 6, (3, 20, 20))
    assert spec.parameter_count(layers, (3, 20, 20)) == sum(p.numel() for p in model.parameters())
    activations = sum(output.numel() for output in _layer_outputs(model, torch.zeros(1, 3, 20, 20)))
    assert activations == sum(math.prod(shape) for shape in spec.output_shapes(layers, (3, 20, 20)))


def _layer_outputs(model, x):
    outputs = []
    for layer in model:
        x = layer(x)
        outputs.append(x)
    return outputs


@pytest.mark.parametrize("text, fragment", [("flatten-dense(1000000000000)-dense(classes)", "75,000,000,000,010"),
                                            ("conv(1000000000,3)-flatten-dense(classes)", "conv(1000000000,3)")])
def test_a_spec_too_large_for_memory_is_refused_before_allocating(text, fragment):
    with pytest.raises(ModelError, match="would need .* and this machine has") as caught:
        create_model(text, 10, (1, 8, 8))
    assert fragment in str(caught.value)
