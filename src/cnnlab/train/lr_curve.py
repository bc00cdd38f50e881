"""The learning-rate range test's arithmetic: the exponential schedule, the smoothed loss, the suggestions.

Smith (2017), "Cyclical Learning Rates for Training Neural Networks", section
3.3, as fastai's `lr_find` does it: the rate grows exponentially from `start`
to `end` over `steps` batches; the loss is smoothed by an exponential moving
average with beta 0.98, bias-corrected as in Adam (divided by 1 - beta^n); the
test stops once the smoothed loss exceeds 4 times its minimum so far. The
suggestion is fastai's ``steep`` rule, the rate where the smoothed loss falls
fastest against log(lr), with fastai's trim (the first tenth of the steps and
the last five are left out); beside it, fastai's ``minimum`` rule, the rate of
the lowest smoothed loss divided by 10.
"""

from __future__ import annotations

import math

import numpy as np

BETA = 0.98  # smoothing of the loss
DIVERGE = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum
SKIP_END = 5  # steps fastai leaves out at the end of the curve before choosing


def exponential_lr(start: float, end: float, steps: int):
    """The factor on `start` at step t: (end / start) ** (t / (steps - 1)), so step 0 has `start`, the last `end`."""
    ratio = end / start
    return lambda t: ratio ** (t / max(steps - 1, 1))


class SmoothedLoss:
    """The bias-corrected exponential moving average of the loss, and whether it has diverged."""

    def __init__(self, beta: float = BETA, diverge: float = DIVERGE):
        self.beta, self.diverge = beta, diverge
        self.average, self.count, self.best = 0.0, 0, math.inf

    def add(self, loss: float) -> float:
        """The smoothed value after `loss`; it also updates the minimum so far."""
        self.count += 1
        self.average = self.beta * self.average + (1 - self.beta) * loss
        smoothed = self.average / (1 - self.beta ** self.count)
        self.best = min(self.best, smoothed)
        return smoothed

    def diverged(self, smoothed: float) -> bool:
        return not math.isfinite(smoothed) or smoothed > self.diverge * self.best


def trimmed(lrs, losses) -> tuple[np.ndarray, np.ndarray]:
    """The curve without its first tenth and last SKIP_END points (fastai's trim), or whole when too short."""
    lrs, losses = np.asarray(lrs, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    first, last = len(lrs) // 10, len(lrs) - SKIP_END
    if last - first >= 3:
        return lrs[first:last], losses[first:last]
    return lrs, losses


def steepest(lrs, smoothed) -> float:
    """The rate at which the smoothed loss falls fastest against log(lr) (fastai's ``steep``)."""
    x, y = trimmed(lrs, smoothed)
    if len(x) < 2:
        return float(x[0])
    slopes = np.diff(y) / np.diff(np.log(x))
    return float(x[int(np.argmin(slopes))])


def minimum_over_ten(lrs, smoothed) -> float:
    """The rate of the lowest smoothed loss, divided by 10 (fastai's ``minimum``)."""
    x, y = trimmed(lrs, smoothed)
    return float(x[int(np.argmin(y))] / 10)
