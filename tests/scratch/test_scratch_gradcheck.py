"""Every layer's backward against central finite differences in float64 (relative error < 1e-6)."""

import numpy as np
import pytest
from .scratch_reference import numerical_gradient, relative_error

from cnnlab import scratch
from cnnlab.scratch import (AvgPool2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sigmoid, Softmax, Tanh,
                            softmax_cross_entropy)

TOLERANCE = 1e-6


def _layers():
    rng = np.random.default_rng(0)
    return {
        "conv": (Conv2D(2, 3, 3, rng=rng, dtype=np.float64), (2, 2, 6, 7)),
        "conv-stride-padding": (Conv2D(2, 3, 3, stride=2, padding=1, rng=rng, dtype=np.float64), (2, 2, 7, 6)),
        "maxpool": (MaxPool2D(2), (2, 3, 6, 5)),
        "maxpool-overlapping": (MaxPool2D(3, 1), (2, 2, 5, 5)),
        "avgpool": (AvgPool2D(2), (2, 3, 6, 5)),
        "avgpool-overlapping": (AvgPool2D(3, 2), (2, 2, 7, 7)),
        "dense": (Dense(5, 4, rng=rng, dtype=np.float64), (3, 5)),
        "flatten": (Flatten(), (2, 3, 2, 2)),
        "relu": (ReLU(), (3, 7)),
        "tanh": (Tanh(), (3, 7)),
        "sigmoid": (Sigmoid(), (3, 7)),
        "softmax": (Softmax(), (3, 7)),
    }


@pytest.mark.parametrize("kind", list(_layers()))
def test_layer_gradients_match_finite_differences(kind):
    layer, shape = _layers()[kind]
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    weights = rng.standard_normal(layer.forward(x).shape)  # loss = sum(weights * output)

    def loss():
        return float(np.sum(weights * layer.forward(x, training=True)))

    layer.forward(x, training=True)
    dx = layer.backward(weights.copy())
    assert relative_error(dx, numerical_gradient(loss, x)) < TOLERANCE
    for param in layer.parameters():
        assert relative_error(param.grad, numerical_gradient(loss, param.value)) < TOLERANCE, param.name


def test_dropout_gradient_matches_finite_differences_under_a_fixed_mask():
    rng = np.random.default_rng(2)
    x, weights = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    layer = Dropout(0.4, seed=7)
    out = layer.forward(x, training=True)
    dx = layer.backward(weights)

    def loss():
        return float(np.sum(weights * Dropout(0.4, seed=7).forward(x, training=True)))  # the same mask each time

    assert relative_error(dx, numerical_gradient(loss, x)) < TOLERANCE
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / 0.6)  # inverted dropout: survivors scaled by 1 / (1 - rate)
    assert 0 < kept.mean() < 1
    assert layer.forward(x, training=False) is x


def test_softmax_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    logits, labels = rng.standard_normal((5, 4)) * 3, np.array([0, 3, 1, 1, 2])
    _, dlogits = softmax_cross_entropy(logits, labels)
    numerical = numerical_gradient(lambda: softmax_cross_entropy(logits, labels)[0], logits)
    assert relative_error(dlogits, numerical) < TOLERANCE


def test_whole_seed_cnn_gradients_match_finite_differences():
    net = scratch.build("seed-cnn", 3, (1, 16, 16), seed=0, dtype=np.float64)
    rng = np.random.default_rng(4)
    x, labels = rng.random((2, 1, 16, 16)), np.array([0, 2])

    def loss():
        return softmax_cross_entropy(net.forward(x), labels)[0]

    _, dlogits = softmax_cross_entropy(net.forward(x), labels)
    dx = net.backward(dlogits, input_grad=True)
    assert relative_error(dx, numerical_gradient(loss, x)) < TOLERANCE
    for param in net.parameters():
        checked = rng.choice(param.value.size, size=min(param.value.size, 40), replace=False)
        numerical = numerical_gradient(loss, param.value, checked)
        assert relative_error(param.grad.reshape(-1)[checked], numerical) < TOLERANCE, param.name
