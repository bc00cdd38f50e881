"""Score-CAM (Wang et al., 2020): each channel, upsampled and scaled to [0, 1], masks the image; its weight is
the target's probability on that masked image.

w_k = p_c(X * M_k), M_k = minmax(U(A^k)) (U: bilinear upsampling to the input, then each channel's min-max
scaling), p = softmax of the logits, and w_k = 0 for a constant channel, as the authors' code has it (the
paper subtracts a baseline's score, which the code leaves out). The map is ReLU(sum_k w_k A^k). The masked
copies run in passes of `copies_per_pass` within `budget_mb`, copies of different images sharing a
pass; never all K x N at once.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.explain.base import Target, borrowed, upsample
from cnnlab.explain.cam import BUDGET, BUDGET_MB, copies_per_pass, layer_pass, weighted_sum
from cnnlab.explain.registry import register_method


def masks(activation: torch.Tensor, size) -> torch.Tensor:
    """(B, h, w) channels upsampled to `size` and min-max scaled to [0, 1] each, (B, H, W)."""
    upsampled = upsample(activation, size)
    low = upsampled.flatten(1).amin(dim=1)[:, None, None]
    high = upsampled.flatten(1).amax(dim=1)[:, None, None]
    return (upsampled - low) / (high - low + 1e-8)


@register_method("scorecam", "Score-CAM: channels weighted by the target's probability with each, as a mask, on "
                 "the image (Wang et al.)", units="Score-CAM (target probability)", layer=True,
                 gradients=False, slow=True, options=BUDGET, reference="pytorch-grad-cam ScoreCAM")
@torch.no_grad()
def scorecam(model: nn.Module, images: torch.Tensor, target: Target = None, layer: str | None = None,
             budget_mb: float = BUDGET_MB) -> torch.Tensor:
    """Score-CAM maps, (N, H, W), for `layer` (default: `find_layer`'s)."""
    step = layer_pass(model, images, target, layer, gradient=False)
    x, activation, targets = step.x, step.activation, step.targets
    count, channels = activation.shape[:2]
    per_pass = copies_per_pass(budget_mb, model, x)
    # A constant channel has no mask to give (the authors' code skips it): its weight stays 0.
    flat = activation.flatten(2)
    jobs = (flat.amax(dim=2) > flat.amin(dim=2)).flatten().nonzero()[:, 0]  # (image * channels + channel)
    weights = torch.zeros(count * channels, device=x.device)
    with borrowed(model):
        for start in range(0, len(jobs), per_pass):
            chunk = jobs[start:start + per_pass]
            image, channel = chunk // channels, chunk % channels
            probabilities = model(x[image] * masks(activation[image, channel], x.shape[-2:])[:, None])
            weights[chunk] = probabilities.float().softmax(dim=-1).gather(1, targets[image][:, None])[:, 0]
    return upsample(F.relu(weighted_sum(weights.view(count, channels), activation)), x.shape[-2:])
