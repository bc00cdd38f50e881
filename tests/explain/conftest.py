"""Fixtures: the small models explanation tests share, and a digits run directory as `cnnlab train` writes one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from cnnlab.models import create_model

DIGITS_SHAPE = (1, 28, 28)


def digits(count: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's digits as (N, 1, 28, 28) images in [0, 1] and their labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.tensor(data.images[:count], dtype=torch.float32)[:, None] / 16.0
    return F.interpolate(images, size=DIGITS_SHAPE[1:], mode="bilinear", align_corners=False), torch.tensor(
        data.target[:count])


@pytest.fixture(scope="session")
def digits_model() -> torch.nn.Module:
    """seed-cnn trained for five epochs on 1,500 digits (about 90% on the other 297)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    images, labels = digits()
    model = create_model("seed-cnn", 10, DIGITS_SHAPE)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        order = torch.randperm(1500)
        for start in range(0, 1500, 100):
            index = order[start:start + 100]
            optimiser.zero_grad()
            F.cross_entropy(model(images[index]), labels[index]).backward()
            optimiser.step()
    torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="session")
def digits_run(digits_model, tmp_path_factory):
    """A run directory (config.json + model.safetensors) holding `digits_model`, and three digit PNGs
    (the last one 40x56, so that maps must come back at the image's own resolution)."""
    from cnnlab.run import Run, RunConfig, TrainConfig

    root = tmp_path_factory.mktemp("digits-run")
    run = root / "run"
    config = RunConfig(model="seed-cnn", backbone=None, num_classes=10, class_names=[str(i) for i in range(10)],
                       input_shape=list(DIGITS_SHAPE), data="digits", train=TrainConfig(model="seed-cnn"))
    with Run.create(run, config) as written:
        written.finish(digits_model.state_dict(), {})
    images, labels = digits(1600)
    paths = []
    for index in (1500, 1510, 1520):
        path = root / f"digit{index}_{int(labels[index])}.png"
        picture = Image.fromarray((images[index, 0].numpy() * 255).round().astype(np.uint8))
        (picture.resize((56, 40), Image.BILINEAR) if index == 1520 else picture).save(path)
        paths.append(path)
    return run, paths


class FunctionalNet(torch.nn.Module):
    """Applies its ReLUs as functions (F.relu, torch.relu, Tensor.relu_), with no activation modules at all."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = torch.nn.Linear(16 * 4 * 4, 32)
        self.fc2 = torch.nn.Linear(32, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2).flatten(1)
        return self.fc2(self.fc1(x).relu_())


class ModuleNet(torch.nn.Module):
    """FunctionalNet with nn.ReLU modules, the form captum's GuidedBackprop can hook."""

    def __init__(self, functional: FunctionalNet):
        super().__init__()
        self.conv1, self.conv2, self.fc1, self.fc2 = functional.conv1, functional.conv2, functional.fc1, functional.fc2
        self.relu1, self.relu2, self.relu3 = torch.nn.ReLU(), torch.nn.ReLU(), torch.nn.ReLU()

    def forward(self, x):
        x = F.max_pool2d(self.relu1(self.conv1(x)), 2)
        x = F.max_pool2d(self.relu2(self.conv2(x)), 2).flatten(1)
        return self.fc2(self.relu3(self.fc1(x)))


@pytest.fixture
def resnet18():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return resnet18(num_classes=10).eval()


@pytest.fixture(scope="session")
def efficientnet_build():
    from cnnlab.models import get_backbone

    return get_backbone("efficientnet_lite0").build


@pytest.fixture
def efficientnet(efficientnet_build):
    torch.manual_seed(0)
    return efficientnet_build().eval()


@pytest.fixture(scope="session")
def pretrained_efficientnet():
    """EfficientNet-Lite0 with its ImageNet weights (from the package on disk), as a [0, 1]-image network."""
    from cnnlab.run import load_model

    return load_model("pretrained:efficientnet_lite0", "cpu")


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two maps (or batches of maps), flattened."""
    a, b = torch.as_tensor(a).detach().flatten().double(), torch.as_tensor(b).detach().flatten().double()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])
