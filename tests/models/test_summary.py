import torch
import torchvision

from cnnlab.models import create_model, summary


def test_mnist_cnn_summary_matches_keras():
    lines = []
    result = summary(create_model("mnist-cnn", 10, (1, 28, 28)), (1, 28, 28), print_fn=lines.append)
    text = "\n".join(lines)
    assert "Total params: 1,199,882" in text
    assert "Trainable params: 1,199,882" in text
    assert "conv2 (Conv2d)" in text and "(None, 64, 24, 24)" in text
    # conv1 26*26*32 outputs * 9 taps + conv2 24*24*64 * 288 + dense 9216*128 + 128*10
    assert result.mult_adds == 26 * 26 * 32 * 9 + 24 * 24 * 64 * 288 + 9216 * 128 + 128 * 10


def test_summary_counts_frozen_parameters_and_restores_mode():
    model = torchvision.models.resnet18(weights=None)
    for parameter in model.layer1.parameters():
        parameter.requires_grad_(False)
    model.train()
    result = summary(model, (3, 64, 64), print_fn=None)
    frozen = sum(p.numel() for p in model.layer1.parameters())
    assert result.total_params == 11_689_512
    assert result.non_trainable_params == frozen
    assert model.training
    assert sum(r.params for r in result.rows) == result.total_params
    assert not any(m._forward_hooks for m in model.modules())


def test_summary_of_shared_parameters_counts_them_once():
    layer = torch.nn.Linear(4, 4)
    model = torch.nn.Sequential(layer, torch.nn.ReLU(), layer)
    assert summary(model, (1, 1, 4), print_fn=None).total_params == 20
