"""Optimisers and schedules against their published formulas, written out here in NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cnnlab.loop.optim import build_optimizer, build_scheduler
from cnnlab.train import TrainConfig

STEPS_PER_EPOCH, EPOCHS = 5, 4
TOTAL = STEPS_PER_EPOCH * EPOCHS


def learning_rates(**options) -> list[float]:
    """The rate each of the run's updates uses, read off the optimiser before each step."""
    config = TrainConfig(epochs=EPOCHS, **options)
    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(1))], config)
    scheduler = build_scheduler(optimizer, config, STEPS_PER_EPOCH)
    rates = []
    for _ in range(TOTAL):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_cosine_anneals_from_the_rate_to_zero_over_the_run():
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * t / TOTAL)) for t in range(TOTAL)]
    np.testing.assert_allclose(learning_rates(schedule="cosine", lr=0.1), expected, rtol=1e-12, atol=1e-15)


def test_one_cycle_warms_up_for_30_percent_then_anneals_as_smith_describes():
    top, start, end = 0.1, 0.1 / 25, 0.1 / 25 / 1e4  # max, initial (max / div_factor), final (/ final_div_factor)
    peak = 0.3 * TOTAL - 1

    def cosine(a, b, fraction):
        return b + (a - b) / 2 * (1 + math.cos(math.pi * fraction))

    expected = [cosine(start, top, t / peak) if t <= peak else cosine(top, end, (t - peak) / (TOTAL - 1 - peak))
                for t in range(TOTAL)]
    np.testing.assert_allclose(learning_rates(schedule="onecycle", lr=0.1), expected, rtol=1e-12, atol=1e-15)


def run_updates(gradients: list[np.ndarray], start: np.ndarray, **options) -> np.ndarray:
    """The parameter after one update per gradient, by the optimiser `build_optimizer` makes."""
    parameter = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    optimizer = build_optimizer([parameter], TrainConfig(**options))
    for gradient in gradients:
        parameter.grad = torch.tensor(gradient, dtype=torch.float64)
        optimizer.step()
    return parameter.detach().numpy()


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    return rng.normal(size=5), [rng.normal(size=5) for _ in range(4)]


def adam(start, gradients, lr, weight_decay, decoupled, beta1=0.9, beta2=0.999, eps=1e-8):
    """Kingma & Ba's Adam; with `decoupled`, Loshchilov & Hutter's AdamW, else weight decay as an L2 gradient."""
    p, m, v = start.copy(), np.zeros_like(start), np.zeros_like(start)
    for t, g in enumerate(gradients, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
    return p


@pytest.mark.parametrize("optimizer, decoupled", [("adam", False), ("adamw", True)])
def test_adam_and_adamw_follow_their_papers_with_weight_decay(problem, optimizer, decoupled):
    start, gradients = problem
    got = run_updates(gradients, start, optimizer=optimizer, lr=0.01, weight_decay=0.1)
    np.testing.assert_allclose(got, adam(start, gradients, 0.01, 0.1, decoupled), rtol=1e-10)


def test_sgd_uses_nesterov_momentum_and_l2_weight_decay(problem):
    start, gradients = problem
    lr, momentum, weight_decay = 0.05, 0.9, 0.01
    p, velocity = start.copy(), None
    for g in gradients:  # Sutskever et al.'s Nesterov momentum, in the form torch and Keras write it
        g = g + weight_decay * p
        velocity = g if velocity is None else momentum * velocity + g
        p = p - lr * (g + momentum * velocity)
    got = run_updates(gradients, start, optimizer="sgd", lr=lr, momentum=momentum, weight_decay=weight_decay)
    np.testing.assert_allclose(got, p, rtol=1e-12)
