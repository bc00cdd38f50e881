import pytest
import torch

from cnnlab.data import ArrayDataset


@pytest.fixture
def blobs():
    """A tiny learnable 3-class image problem: each class lights up its own quadrant."""
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(90) % 3
    x = torch.rand(90, 1, 12, 12, generator=generator) * 0.3
    for label in range(3):
        rows = y == label
        x[rows, :, (label // 2) * 6:(label // 2) * 6 + 6, (label % 2) * 6:(label % 2) * 6 + 6] += 0.7
    return ArrayDataset(x.clamp(0, 1), y)
