"""Softmax cross-entropy on logits, computed through log-sum-exp so it never takes log(0)."""

from __future__ import annotations

import numpy as np

from cnnlab.scratch.activations import softmax


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over the batch of -log softmax(logits)[label], and its gradient d loss / d logits.

    log softmax(z)_c = z_c - max z - log sum exp(z - max z); the gradient is
    (softmax(z) - one_hot(label)) / N. `labels` are class indices (N,).
    """
    labels = np.asarray(labels)
    n = len(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, classes), every entry <= 0
    log_sum_exp = np.log(np.exp(shifted).sum(axis=1))
    rows = np.arange(n)
    loss = float(np.mean(log_sum_exp - shifted[rows, labels]))
    dlogits = softmax(logits)
    dlogits[rows, labels] -= 1
    dlogits /= n
    return loss, dlogits
