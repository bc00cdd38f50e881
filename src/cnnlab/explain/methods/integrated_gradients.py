"""Integrated gradients (Sundararajan et al. 2017): the gradient averaged along the line from a baseline.

attribution = (x - baseline) * sum_k w_k d score / d input at baseline + a_k (x - baseline),
with the nodes a_k and weights w_k of captum's rules (Gauss-Legendre by default),
so that the attributions equal captum's IntegratedGradients. The map is their
sum over channels, signed: a map sums to about score(x) - score(baseline)
(completeness). Steps run in chunks of (image, step) pairs within `budget_mb`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cnnlab.errors import ConfigError, unknown
from cnnlab.explain.base import Target, as_batch, borrowed
from cnnlab.explain.chunks import DEFAULT_BUDGET_MB, chunks, plan
from cnnlab.explain.methods.saliency import input_gradient
from cnnlab.explain.registry import Option, register_method

BASELINES = ("zero", "mean", "uniform")
RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def path_rule(steps: int, rule: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes in [0, 1] and their weights (summing to 1) of `rule` with `steps` points, as captum defines them."""
    if rule not in RULES:
        raise ConfigError(unknown("integration rule", rule, RULES))
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return torch.tensor(0.5 * (1 + nodes)), torch.tensor(0.5 * weights)
    if steps < 2:
        raise ConfigError(f"The rule {rule!r} of integrated-gradients needs 'steps' >= 2. Got {steps} instead.")
    weights = torch.full((steps,), 1.0 / steps, dtype=torch.float64)
    nodes = {"riemann_left": torch.linspace(0, 1 - 1 / steps, steps),
             "riemann_right": torch.linspace(1 / steps, 1, steps),
             "riemann_middle": torch.linspace(1 / (2 * steps), 1 - 1 / (2 * steps), steps),
             "riemann_trapezoid": torch.linspace(0, 1, steps)}[rule]
    if rule == "riemann_trapezoid":
        weights[[0, -1]] /= 2
    return nodes.double(), weights


def baseline_for(x: torch.Tensor, baseline: str, seed: int) -> torch.Tensor:
    """The baseline of each image: black ('zero'), its own mean colour ('mean'), or seeded uniform noise in [0, 1]."""
    if baseline not in BASELINES:
        raise ConfigError(unknown("integrated-gradients baseline", baseline, BASELINES))
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    # One noise image for every image, drawn on the CPU: the same seed gives the same baseline on any device.
    noise = torch.rand(x.shape[1:], generator=torch.Generator().manual_seed(seed))
    return noise.to(x.device).expand_as(x)


def integrated_gradients_attributions(model: nn.Module, images: torch.Tensor, target: Target = None,
                                      baseline: str = "zero", steps: int = 32, rule: str = "gausslegendre",
                                      seed: int = 0, budget_mb: float = DEFAULT_BUDGET_MB) -> torch.Tensor:
    """Integrated gradients per channel, (N, C, H, W), as captum's IntegratedGradients computes them."""
    x = as_batch(images, model)
    start = baseline_for(x, baseline, seed)
    nodes, weights = (t.to(x.device, torch.float32) for t in path_rule(int(steps), rule))
    total = torch.zeros_like(x)
    with borrowed(model):
        targets, size = plan(model, x, target, budget_mb)
        for image, step in chunks(len(x), len(nodes), size, x.device):
            along = nodes[step].view(-1, 1, 1, 1)
            points = start[image] + along * (x[image] - start[image])
            gradient = input_gradient(model, points, targets[image])
            total.index_add_(0, image, gradient * weights[step].view(-1, 1, 1, 1))
    return total * (x - start)


@register_method("integrated-gradients", "integrated gradients from a baseline, summed over channels "
                 "(Sundararajan et al.)", units="share of score(x) - score(baseline) (logit)", signed=True,
                 percentile=99.0, slow=True, reference="captum IntegratedGradients",
                 options={"baseline": Option("zero", "where the path starts: zero (black), mean (the image's mean "
                                             "colour) or uniform (seeded noise in [0, 1])", str),
                          "steps": Option(32, "points on the path", int, 1),
                          "rule": Option("gausslegendre", "integration rule: gausslegendre or riemann_left, "
                                         "_right, _middle, _trapezoid (captum's names)", str),
                          "seed": Option(0, "seed of the uniform baseline", int),
                          "budget_mb": Option(DEFAULT_BUDGET_MB, "memory for one forward + backward pass of a "
                                              "chunk of (image, step) pairs, in MiB", float, 0.001)})
def integrated_gradients(model: nn.Module, images: torch.Tensor, target: Target = None, baseline: str = "zero",
                         steps: int = 32, rule: str = "gausslegendre", seed: int = 0,
                         budget_mb: float = DEFAULT_BUDGET_MB) -> torch.Tensor:
    """Integrated gradients summed over channels, (N, H, W): positive for evidence for the target."""
    return integrated_gradients_attributions(model, images, target, baseline, steps, rule, seed, budget_mb).sum(dim=1)
