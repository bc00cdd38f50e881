"""The NumPy engine against torch autograd on the same weights and inputs: every layer kind, whole networks, SGD."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from .scratch_reference import assert_close

from cnnlab import scratch
from cnnlab.models import create_model
from cnnlab.scratch import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid, Softmax, Tanh

TOLERANCES = {np.float64: 1e-10, np.float32: 1e-4}
TORCH_DTYPES = {np.float64: torch.float64, np.float32: torch.float32}


def _pair(kind, dtype):
    """A scratch layer and the torch module with the same weights, and an input shape."""
    rng = np.random.default_rng(0)
    if kind.startswith("conv"):
        stride, padding = (2, 1) if kind == "conv-stride-padding" else (1, 0)
        layer = Conv2D(3, 4, 3, stride, padding, rng=rng, dtype=dtype)
        module = torch.nn.Conv2d(3, 4, 3, stride=stride, padding=padding)
        return layer, module, (2, 3, 9, 8)
    if kind == "dense":
        return Dense(6, 5, rng=rng, dtype=dtype), torch.nn.Linear(6, 5), (4, 6)
    layers = {"maxpool": (MaxPool2D(2), torch.nn.MaxPool2d(2)),
              "maxpool-overlapping": (MaxPool2D(3, 2), torch.nn.MaxPool2d(3, 2)),
              "avgpool": (AvgPool2D(2), torch.nn.AvgPool2d(2)),
              "avgpool-overlapping": (AvgPool2D(3, 1), torch.nn.AvgPool2d(3, 1)),
              "flatten": (Flatten(), torch.nn.Flatten()), "relu": (ReLU(), torch.nn.ReLU()),
              "tanh": (Tanh(), torch.nn.Tanh()), "sigmoid": (Sigmoid(), torch.nn.Sigmoid()),
              "softmax": (Softmax(), torch.nn.Softmax(dim=1))}
    layer, module = layers[kind]
    return layer, module, (2, 3, 7, 9) if "pool" in kind or kind == "flatten" else (4, 7)


def _compare(layer, module, x, dtype, input_grad=True):
    """Forward both, backward the same random dout, compare output, input gradient and parameter gradients."""
    module = module.to(TORCH_DTYPES[dtype])
    for param in layer.parameters():
        param.value[...] = module.state_dict()[param.name.split(".")[1]].numpy()
    x_torch = torch.tensor(x, requires_grad=True)
    out_torch = module(x_torch)
    dout = np.random.default_rng(5).standard_normal(tuple(out_torch.shape)).astype(dtype)
    out_torch.backward(torch.tensor(dout))
    out = layer.forward(x, training=True)
    dx = layer.backward(dout.copy())
    rtol = TOLERANCES[dtype]
    assert out.dtype == dtype and dx.dtype == dtype
    assert_close(out, out_torch.detach().numpy(), rtol, "output")
    assert_close(dx, x_torch.grad.numpy(), rtol, "input gradient")
    for param in layer.parameters():
        expected = dict(module.named_parameters())[param.name.split(".")[1]].grad.numpy()
        assert_close(param.grad, expected, rtol, param.name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["conv", "conv-stride-padding", "dense", "maxpool", "maxpool-overlapping", "avgpool",
                                  "avgpool-overlapping", "flatten", "relu", "tanh", "sigmoid", "softmax"])
def test_layer_matches_torch(kind, dtype):
    layer, module, shape = _pair(kind, dtype)
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype) * 3
    _compare(layer, module, x, dtype)


@pytest.mark.parametrize("size, stride", [(2, 2), (3, 1), (2, 1)])
def test_maxpool_routes_ties_to_the_same_element_as_torch(size, stride):
    x = np.random.default_rng(2).integers(0, 3, (2, 3, 8, 7)).astype(np.float64)  # many equal maxima
    _compare(MaxPool2D(size, stride), torch.nn.MaxPool2d(size, stride), x, np.float64)


def test_softmax_cross_entropy_matches_torch_and_is_stable():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.5, 0.25, 2.0], [-800.0, -800.0, -799.0]])
    labels = np.array([2, 0, 1])
    logits_torch = torch.tensor(logits, requires_grad=True)
    loss_torch = F.cross_entropy(logits_torch, torch.tensor(labels))
    loss_torch.backward()
    loss, dlogits = scratch.softmax_cross_entropy(logits, labels)
    assert np.isfinite(loss) and abs(loss - loss_torch.item()) <= 1e-12 * abs(loss_torch.item())
    assert_close(dlogits, logits_torch.grad.numpy(), 1e-12, "dlogits")


def _torch_and_scratch(model, dtype, input_shape=(1, 28, 28), num_classes=10):
    torch.manual_seed(0)
    torch_net = create_model(model, num_classes, input_shape).to(TORCH_DTYPES[dtype]).eval()
    net = scratch.build(model, num_classes, input_shape, dtype=dtype)
    net.load_state_dict({name: value.numpy() for name, value in torch_net.state_dict().items()})
    return torch_net, net


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("model", ["seed-cnn", "mnist-cnn", "simple-cnn"])
def test_whole_network_matches_torch(model, dtype):
    torch_net, net = _torch_and_scratch(model, dtype)
    x = np.random.default_rng(3).random((4, 1, 28, 28)).astype(dtype)
    labels = np.array([3, 1, 4, 1])
    x_torch = torch.tensor(x, requires_grad=True)
    logits_torch = torch_net(x_torch)
    loss_torch = F.cross_entropy(logits_torch, torch.tensor(labels))
    loss_torch.backward()
    logits = net.forward(x, training=False)  # dropout off in both
    loss, dlogits = scratch.softmax_cross_entropy(logits, labels)
    dx = net.backward(dlogits, input_grad=True)
    rtol = TOLERANCES[dtype]
    assert_close(logits, logits_torch.detach().numpy(), rtol, "logits")
    assert abs(loss - loss_torch.item()) <= rtol * abs(loss_torch.item())
    assert_close(dx, x_torch.grad.numpy(), rtol, "input gradient")
    torch_params = dict(torch_net.named_parameters())
    for param in net.parameters():
        assert_close(param.grad, torch_params[param.name].grad.numpy(), rtol, param.name)


@pytest.mark.parametrize("model, input_shape", [("seed-cnn", (1, 28, 28)), ("mnist-cnn", (1, 28, 28)),
                                                ("simple-cnn", (3, 12, 12)),
                                                ("conv(6,3,1,same)-relu-avgpool(2)-conv(5,4,2,1)-flatten-dense(7)",
                                                 (2, 10, 10))])
def test_state_dict_has_the_torch_models_names_shapes_and_initialisation(model, input_shape):
    torch_state = create_model(model, 7, input_shape).state_dict()
    state = scratch.build(model, 7, input_shape, seed=1).state_dict()
    assert list(state) == list(torch_state)
    for name, value in state.items():
        assert value.shape == tuple(torch_state[name].shape) and value.dtype == np.float32, name
        # torch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases alike
        fan_in = torch_state[name.replace("bias", "weight")][0].numel()
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(value).max() <= bound
        assert np.abs(torch_state[name].numpy()).max() <= bound
        if value.size >= 100:
            assert np.abs(value).max() > 0.9 * bound and abs(value.mean()) < 0.1 * bound


def test_weights_travel_torch_to_scratch_to_torch_through_safetensors(tmp_path):
    from safetensors.numpy import load_file, save_file
    from safetensors.torch import load_file as load_torch_file

    torch_net, net = _torch_and_scratch("seed-cnn", np.float32)
    assert scratch.build("seed-cnn", 10, (1, 28, 28), seed=0).state_dict()["conv1.weight"].sum() != \
        net.state_dict()["conv1.weight"].sum()
    save_file(net.state_dict(), tmp_path / "model.safetensors")
    again = scratch.build("seed-cnn", 10, (1, 28, 28), seed=5)
    again.load_state_dict(load_file(tmp_path / "model.safetensors"))
    fresh = create_model("seed-cnn", 10, (1, 28, 28))
    fresh.load_state_dict(load_torch_file(tmp_path / "model.safetensors"))
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        expected = torch_net(torch.tensor(x)).numpy()
        assert_close(fresh.eval()(torch.tensor(x)).numpy(), expected, 0, "torch after the round trip")
    assert_close(again.forward(x), expected, 1e-5, "scratch after the round trip")


def test_load_state_dict_names_what_does_not_fit():
    net = scratch.build("seed-cnn", 10, (1, 28, 28))
    state = net.state_dict()
    with pytest.raises(ValueError, match="missing .*conv1.bias"):
        net.load_state_dict({k: v for k, v in state.items() if k != "conv1.bias"})
    with pytest.raises(ValueError, match="dense2.weight has shape"):
        net.load_state_dict({**state, "dense2.weight": np.zeros((3, 128))})


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_torch_sgd_with_time_based_decay(momentum, nesterov):
    lr, decay = 0.05, 0.1  # a large decay, so a wrong schedule shows within a few steps
    torch_net, net = _torch_and_scratch("seed-cnn", np.float64, (1, 16, 16), 3)
    torch_opt = torch.optim.SGD(torch_net.parameters(), lr=lr, momentum=momentum, nesterov=nesterov)
    schedule = torch.optim.lr_scheduler.LambdaLR(torch_opt, lambda t: 1 / (1 + decay * t))
    opt = scratch.SGD(net.parameters(), lr=lr, momentum=momentum, nesterov=nesterov, decay=decay)
    rng = np.random.default_rng(6)
    for _ in range(4):
        x, labels = rng.random((5, 1, 16, 16)), rng.integers(0, 3, 5)
        torch_opt.zero_grad()
        F.cross_entropy(torch_net(torch.tensor(x)), torch.tensor(labels)).backward()
        torch_opt.step()
        schedule.step()
        net.zero_grad()
        net.backward(scratch.softmax_cross_entropy(net.forward(x), labels)[1])
        opt.step()
        assert opt.current_lr == pytest.approx(torch_opt.param_groups[0]["lr"], rel=1e-15)
    for name, value in torch_net.state_dict().items():
        assert_close(net.state_dict()[name], value.numpy(), 1e-10, name)
