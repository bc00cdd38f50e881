"""Fixtures for fine-tuning tests: weights files on disk, so that no test downloads anything."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def convnext_weights(tmp_path_factory):
    """A state dict of timm's tiny `test_convnext` (its head is `head.fc`, a dotted name), as a .pth file."""
    import timm

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "test_convnext.pth"
    torch.save(timm.create_model("test_convnext", pretrained=False).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def resnet18_weights(tmp_path_factory):
    """Random torchvision resnet18 weights as a .pth file, standing in for the ImageNet ones."""
    from torchvision.models import resnet18

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(resnet18().state_dict(), path)
    return path


@pytest.fixture
def no_hub_cache(tmp_path, monkeypatch):
    """An empty torch hub cache, so torchvision weights are missing whatever this machine holds."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"
