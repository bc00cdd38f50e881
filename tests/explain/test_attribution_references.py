"""Integrated gradients, input x gradient, the SmoothGrad family and RISE against captum and their formulas.

Where the definitions differ, exactly:
- captum returns per-channel attributions; cnnlab's maps reduce the channels:
  integrated-gradients and input-x-gradient sum them (signed), smoothgrad,
  smoothgrad-squared and vargrad reduce as their base does (max for saliency
  and guided, sum for input-x-gradient). `integrated_gradients_attributions`
  and `noise_tunnel` return the per-channel values, compared unreduced.
- captum's NoiseTunnel draws its noise from torch's global generator with one
  standard deviation for the batch; cnnlab draws standard normal noise sample
  by sample from a CPU generator seeded with `seed`, shares it across the
  batch and scales it by `noise` x (max - min) of each image. The tests hand
  captum that same noise (its ``_add_noise_to_inputs`` replaced), so the
  comparison is exact, not statistical.
- captum's VarGrad is E[a^2] - E[a]^2 unclamped; cnnlab clamps it at 0 (rounding).
- captum's Saliency inside NoiseTunnel takes |gradient| (abs=True); guided
  backprop is compared squared (smoothgrad-squared), since captum's
  GuidedBackprop is signed and cnnlab's guided base is |guided gradient|.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from captum.attr import GuidedBackprop, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency
from torch import nn

from cnnlab import explain
from cnnlab.errors import ConfigError
from cnnlab.explain.methods.integrated_gradients import integrated_gradients_attributions
from cnnlab.explain.methods.rise import rise_masks
from cnnlab.explain.methods.smoothgrad import noise_tunnel

from .conftest import FunctionalNet, ModuleNet, digits

pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU activations")


@pytest.fixture
def net():
    torch.manual_seed(0)
    return FunctionalNet().eval()


def images(count=3, shape=(3, 16, 16), seed=0):
    return torch.rand(count, *shape, generator=torch.Generator().manual_seed(seed))


TARGET = torch.tensor([1, 2, 3])


def reference_baseline(x, baseline, seed=0):
    """The baselines as docs/explain.md defines them."""
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    return torch.rand(x.shape[1:], generator=torch.Generator().manual_seed(seed)).expand_as(x).clone()


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_trapezoid", "riemann_left"])
@pytest.mark.parametrize("baseline", ["zero", "mean", "uniform"])
def test_integrated_gradients_equals_captum(net, rule, baseline):
    x = images()
    start = reference_baseline(x, baseline, seed=3)
    theirs = IntegratedGradients(net).attribute(x, baselines=start, target=TARGET, n_steps=12, method=rule)
    ours = integrated_gradients_attributions(net, x, TARGET, baseline=baseline, steps=12, rule=rule, seed=3)
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-6 * float(theirs.abs().max()))
    maps = explain.integrated_gradients(net, x, TARGET, baseline=baseline, steps=12, rule=rule, seed=3)
    assert torch.allclose(maps, theirs.sum(dim=1), rtol=1e-4, atol=1e-6 * float(theirs.abs().max()))


def test_integrated_gradients_equals_captum_on_resnet_with_in_place_relus(resnet18):
    x = images(shape=(3, 32, 32))
    theirs = IntegratedGradients(resnet18).attribute(x, target=TARGET, n_steps=8, internal_batch_size=5)
    ours = explain.integrated_gradients(resnet18, x, TARGET, steps=8)
    assert torch.allclose(ours, theirs.sum(dim=1), rtol=1e-4, atol=1e-5 * float(theirs.abs().max()))


def scores(model, x, target):
    with torch.no_grad():
        return model(x).gather(1, target[:, None])[:, 0]


@pytest.mark.parametrize("baseline", ["zero", "mean", "uniform"])
def test_integrated_gradients_are_complete(digits_model, baseline):
    """The attributions of each image sum to score(x) - score(baseline) (tanh network: smooth along the path)."""
    x, target = digits(3)[0], torch.tensor([0, 1, 5])
    maps = explain.integrated_gradients(digits_model, x, target, baseline=baseline, steps=24)
    difference = scores(digits_model, x, target) - scores(digits_model, reference_baseline(x, baseline), target)
    assert difference.abs().min() > 0.5  # a real difference to account for
    # From a noise image the path crosses many max-pooling switches, where the integrand jumps: 1% there.
    tolerance = 1e-2 if baseline == "uniform" else 1e-3
    assert torch.allclose(maps.sum(dim=(1, 2)), difference, rtol=tolerance, atol=tolerance)


def test_integrated_gradients_follow_the_target(digits_model):
    x = digits(2)[0]
    predicted = digits_model(x).argmax(dim=1)
    other = (predicted + 3) % 10
    assert torch.equal(explain.integrated_gradients(digits_model, x, steps=8),
                       explain.integrated_gradients(digits_model, x, predicted, steps=8))
    maps = explain.integrated_gradients(digits_model, x, other, steps=24)
    difference = scores(digits_model, x, other) - scores(digits_model, torch.zeros_like(x), other)
    assert torch.allclose(maps.sum(dim=(1, 2)), difference, rtol=1e-3, atol=1e-3)


def test_input_x_gradient_equals_captum(net, resnet18):
    for model, x in ((net, images()), (resnet18, images(shape=(3, 32, 32)))):
        theirs = InputXGradient(model).attribute(x.clone().requires_grad_(), target=TARGET).sum(dim=1)
        assert torch.allclose(explain.input_x_gradient(model, x, TARGET), theirs, atol=1e-6 * float(theirs.abs().max()))


def reference_noise(x, samples, noise, seed):
    """(N * samples, C, H, W) noise in captum's order (image-major), as docs/explain.md defines it."""
    generator = torch.Generator().manual_seed(seed)
    standard = torch.stack([torch.randn(x.shape[1:], generator=generator) for _ in range(samples)])
    spread = noise * (x.flatten(1).amax(dim=1) - x.flatten(1).amin(dim=1))
    return (spread[:, None, None, None, None] * standard[None]).flatten(0, 1)


def captum_tunnel(method, x, kind, samples, noise, seed, monkeypatch):
    """captum's NoiseTunnel over `method`, fed cnnlab's noise."""
    added = reference_noise(x, samples, noise, seed)

    def add_noise(self, nt_samples_partition, inputs, stdevs):
        assert nt_samples_partition == samples
        return tuple(i.repeat_interleave(samples, dim=0) + added for i in inputs)

    monkeypatch.setattr(NoiseTunnel, "_add_noise_to_inputs", add_noise)
    return NoiseTunnel(method).attribute(x, nt_type=kind, nt_samples=samples, stdevs=1.0, target=TARGET)


KINDS = {"smoothgrad": "smoothgrad", "smoothgrad-squared": "smoothgrad_sq", "vargrad": "vargrad"}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("base", ["saliency", "input-x-gradient"])
def test_smoothgrad_family_equals_captum_noise_tunnel(net, kind, base, monkeypatch):
    x = images()
    peer = Saliency(net) if base == "saliency" else InputXGradient(net)
    theirs = captum_tunnel(peer, x, KINDS[kind], 6, 0.2, 4, monkeypatch)
    if kind == "vargrad":
        theirs = theirs.clamp(min=0)
    ours = noise_tunnel(net, x, TARGET, kind, base, samples=6, noise=0.2, seed=4)
    tolerance = 1e-5 * float(theirs.abs().max())
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=tolerance)
    reduced = theirs.amax(dim=1) if base == "saliency" else theirs.sum(dim=1)
    maps = explain.METHODS[kind](net, x, TARGET, base=base, samples=6, noise=0.2, seed=4)
    assert torch.allclose(maps, reduced, rtol=1e-4, atol=tolerance)


def test_smoothgrad_squared_of_guided_backprop_equals_captum(net, monkeypatch):
    x = images()
    theirs = captum_tunnel(GuidedBackprop(ModuleNet(net).eval()), x, "smoothgrad_sq", 5, 0.1, 0, monkeypatch)
    ours = explain.smoothgrad_squared(net, x, TARGET, base="guided", samples=5, noise=0.1)
    assert torch.allclose(ours, theirs.amax(dim=1), rtol=1e-4, atol=1e-6 * float(theirs.max()))


def test_no_noise_smoothgrad_is_the_base_method(net):
    x = images()
    assert torch.allclose(explain.smoothgrad(net, x, TARGET, noise=0.0, samples=3), explain.saliency(net, x, TARGET))
    assert torch.allclose(explain.vargrad(net, x, TARGET, noise=0.0, samples=3), torch.zeros(3, 16, 16))


class TinyClassifier(nn.Module):
    """A classifier RISE can only query: a hard threshold inside (no useful gradient anywhere)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.conv(x)
        return self.fc(((x > 0.1).float() * x).mean(dim=(2, 3)))


def test_rise_is_the_mask_weighted_mean_probability():
    torch.manual_seed(0)
    model = TinyClassifier().eval()
    x, target = images(2, (3, 12, 10)), torch.tensor([2, 0])
    masks = rise_masks(masks=40, cells=3, p=0.4, size=(12, 10), seed=5).numpy().astype(np.float64)
    expected = []
    for image, t in zip(x, target.tolist()):
        with torch.no_grad():
            logits = model(image[None] * torch.from_numpy(masks).float()[:, None]).double().numpy()
        probability = np.exp(logits - logits.max(1, keepdims=True))
        probability = probability[:, t] / probability.sum(1)
        expected.append((probability[:, None, None] * masks).sum(0) / (len(masks) * 0.4))
    ours = explain.rise(model, x, target, masks=40, cells=3, p=0.4, seed=5)
    assert np.allclose(ours.numpy(), np.stack(expected), rtol=1e-5, atol=1e-7)


def test_rise_masks_are_shifted_upsampled_grids():
    masks = rise_masks(masks=400, cells=4, p=0.3, size=(20, 20), seed=0)
    assert masks.shape == (400, 20, 20) and masks.min() >= 0 and masks.max() <= 1
    assert abs(float(masks.mean()) - 0.3) < 0.02  # each cell kept with probability p
    assert len({tuple(m.flatten().tolist()) for m in masks}) > 390  # grids and shifts differ
    # Cells of 5 pixels upsampled bilinearly to 25 / 4 pixels each: neighbours differ by at most 4 / 25.
    assert masks.diff(dim=1).abs().max() <= 4 / 25 + 1e-6 and masks.diff(dim=2).abs().max() <= 4 / 25 + 1e-6
    assert torch.allclose(rise_masks(masks=3, cells=4, p=1.0, size=(20, 20)), torch.ones(3, 20, 20))


def test_rise_needs_a_probability(net):
    with pytest.raises(ConfigError, match="'p' option of method 'rise' must be a probability"):
        explain.METHODS["rise"](net, images(1), p=1.5)


def saved_activation_bytes(model, image):
    """Bytes autograd saves for one image's forward pass, parameters and buffers aside: the documented cost."""
    shared = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    sizes = {}

    def pack(tensor):
        if tensor.untyped_storage().data_ptr() not in shared:
            sizes[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = model(image.clone().requires_grad_())
    del output
    return sum(sizes.values())


MANY_PASS = {"integrated-gradients": {"steps": 5}, "smoothgrad": {"samples": 5}, "vargrad": {"samples": 5},
             "rise": {"masks": 5, "cells": 2}}


def forward_batches(model, method, x, target=TARGET, **options):
    sizes = []
    handle = model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    try:
        maps = explain.METHODS[method](model, x, target, **options)
    finally:
        handle.remove()
    return maps, sizes


@pytest.mark.parametrize("method", list(MANY_PASS))
def test_budget_bounds_the_pass_and_leaves_the_map_unchanged(net, method):
    x = images()
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    cost = 1.5 * saved_activation_bytes(net, x[:1])
    for parameter in net.parameters():
        parameter.requires_grad_(True)
    budget = 3.5 * cost / 2**20  # room for three pairs
    unlimited, sizes = forward_batches(net, method, x, budget_mb=1e6, **MANY_PASS[method])
    assert max(sizes) == 15  # every (image, repeat) pair in one pass
    bounded, sizes = forward_batches(net, method, x, budget_mb=budget, **MANY_PASS[method])
    assert max(sizes) == 3 and sum(sizes) == 1 + 15  # one image measured, then every pair three at a time
    assert torch.allclose(bounded, unlimited, rtol=1e-5, atol=1e-6 * float(unlimited.abs().max()))
    tiny, sizes = forward_batches(net, method, x, budget_mb=0.001, **MANY_PASS[method])
    assert set(sizes) == {1}
    assert torch.allclose(tiny, unlimited, rtol=1e-5, atol=1e-6 * float(unlimited.abs().max()))


def test_predicted_targets_come_from_bounded_passes(net):
    x = images()
    _, sizes = forward_batches(net, "integrated-gradients", x, None, budget_mb=0.001, steps=2)
    assert set(sizes) == {1} and len(sizes) == 1 + 3 + 3 * 2  # measured, predicted, explained
    with torch.no_grad():
        predicted = net(x).argmax(dim=1)
    assert torch.equal(explain.integrated_gradients(net, x, steps=2),
                       explain.integrated_gradients(net, x, predicted, steps=2))


SEEDED = {"integrated-gradients": {"baseline": "uniform", "steps": 4}, "smoothgrad": {"samples": 4},
          "smoothgrad-squared": {"samples": 4}, "vargrad": {"samples": 4}, "rise": {"masks": 20, "cells": 3}}


@pytest.mark.parametrize("method", list(SEEDED))
def test_seed_fixes_the_map(net, method):
    x = images()
    run = lambda seed: explain.METHODS[method](net, x, TARGET, seed=seed, **SEEDED[method])  # noqa: E731
    assert torch.equal(run(1), run(1))
    assert not torch.allclose(run(1), run(2))


@pytest.mark.parametrize("method", list(SEEDED) + ["input-x-gradient"])
def test_batch_equals_each_image_alone(net, method):
    x = images(4)
    target = torch.tensor([0, 4, 1, 1])
    options = SEEDED.get(method, {})
    maps = explain.METHODS[method](net, x, target, **options)
    alone = torch.cat([explain.METHODS[method](net, x[i:i + 1], target[i:i + 1], **options) for i in range(4)])
    assert torch.allclose(maps, alone, rtol=1e-4, atol=1e-6 * float(alone.abs().max()))


@pytest.mark.parametrize("method", list(SEEDED) + ["input-x-gradient"])
def test_target_changes_the_map(net, method):
    x = images()
    options = SEEDED.get(method, {})
    assert not torch.allclose(explain.METHODS[method](net, x, 0, **options),
                              explain.METHODS[method](net, x, 1, **options))


def test_bad_options_raise_one_line_errors(net):
    x = images(1)
    with pytest.raises(ConfigError, match="Unknown integrated-gradients baseline 'blak'"):
        explain.METHODS["integrated-gradients"](net, x, baseline="blak")
    with pytest.raises(ConfigError, match="Unknown integration rule 'riemann'.*'riemann_left'"):
        explain.METHODS["integrated-gradients"](net, x, rule="riemann")
    with pytest.raises(ConfigError, match="Unknown base method of smoothgrad 'gradcam'"):
        explain.METHODS["smoothgrad"](net, x, base="gradcam")
    with pytest.raises(ConfigError, match="'samples' option of method 'vargrad' must be >= 1"):
        explain.METHODS["vargrad"](net, x, samples=0)


def test_many_pass_methods_are_marked_slow_and_rise_needs_no_gradients():
    for name in ("integrated-gradients", "smoothgrad", "smoothgrad-squared", "vargrad", "rise"):
        assert explain.METHODS[name].slow
    assert not explain.METHODS["input-x-gradient"].slow
    assert not explain.METHODS["rise"].gradients
    assert math.isclose(explain.METHODS["integrated-gradients"].options["steps"].default, 32)
