"""Occlusion's three outputs agree with a direct computation, and its batching changes nothing but speed."""

from __future__ import annotations

import torch
from .conftest import digits

from cnnlab import explain
from cnnlab.explain.methods.occlusion import default_batch


def test_occlusion_outputs_match_a_one_position_at_a_time_loop(digits_model):
    x = digits(2)[0]
    result = explain.occlusion(digits_model, x, patch=10, stride=6, fill=0.0)
    assert result.positions == ([0, 6, 12, 18], [0, 6, 12, 18])  # the last patch hangs over the edge
    expected_probability = torch.zeros(2, 4, 4)
    expected_class = torch.zeros(2, 4, 4, dtype=torch.long)
    with torch.no_grad():
        for a, r in enumerate(result.positions[0]):
            for b, c in enumerate(result.positions[1]):
                copy = x.clone()
                copy[:, :, r:r + 10, c:c + 10] = 0.0
                p = digits_model(copy).softmax(dim=-1)
                expected_probability[:, a, b] = p.gather(1, result.targets[:, None])[:, 0]
                expected_class[:, a, b] = p.argmax(dim=-1)
        assert torch.equal(result.targets, digits_model(x).argmax(dim=-1))
    assert torch.equal(result.predicted, expected_class)
    assert torch.equal(result.counts, torch.stack([torch.bincount(c.flatten(), minlength=10) for c in expected_class]))
    assert result.counts.sum(dim=1).tolist() == [16, 16]
    # Pixel (0, 0) lies under the first patch only; pixel (7, 7) under the first two in each direction.
    assert torch.allclose(result.probability[:, 0, 0], expected_probability[:, 0, 0])
    assert torch.allclose(result.probability[:, 7, 7], expected_probability[:, :2, :2].mean(dim=(1, 2)))


def test_batch_size_changes_nothing_but_speed(resnet18):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    results = [explain.occlusion(resnet18, x, patch=8, stride=8, batch=b) for b in (1, 7, None)]
    for other in results[1:]:
        assert torch.allclose(results[0].probability, other.probability, atol=1e-6)
        assert torch.equal(results[0].predicted, other.predicted)


def test_default_batch_packs_small_inputs_and_keeps_large_ones_few():
    cpu, threads = torch.device("cpu"), torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert default_batch(3 * 224 * 224, cpu) == 8
        assert default_batch(28 * 28, cpu) == 256
        assert default_batch(3 * 1024 * 1024, cpu) == 1
        torch.set_num_threads(1)
        assert default_batch(3 * 224 * 224, cpu) == 4
    finally:
        torch.set_num_threads(threads)
