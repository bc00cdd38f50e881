"""Ablation-CAM (Desai & Ramaswamy, 2020): each channel weighted by how much the target's logit drops when
that channel is set to zero.

w_k = y_c - y_c(A^k = 0), map ReLU(sum_k w_k A^k). The paper divides the drop by y_c, which flips every
weight's sign when the logit is negative; cnnlab keeps the drop in logit units (pytorch-grad-cam keeps the
ratio, and ablates to min - 1e7 instead of 0 when the layer's output has negative values).

Only the layers after the ablated one need the ablated copies: each pass runs the image once up to the
layer and swaps in a batch of ablated activations there, so everything downstream sees the copies by
broadcasting (a residual sum adds the image's one skip tensor to every copy). A model that cannot
broadcast a batch of one runs the image repeated instead. Copies per pass come from `budget_mb`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.explain.base import Target, borrowed, upsample
from cnnlab.explain.cam import BUDGET, BUDGET_MB, copies_per_pass, layer_pass, weighted_sum
from cnnlab.explain.hooks import Hooks
from cnnlab.explain.registry import register_method


@register_method("ablation-cam", "Ablation-CAM: channels weighted by the drop in the target's logit when each is "
                 "zeroed (Desai & Ramaswamy)", units="Ablation-CAM (drop in logit)", layer=True, gradients=False,
                 slow=True, options=BUDGET, reference="pytorch-grad-cam AblationCAM")
@torch.no_grad()
def ablation_cam(model: nn.Module, images: torch.Tensor, target: Target = None, layer: str | None = None,
                 budget_mb: float = BUDGET_MB) -> torch.Tensor:
    """Ablation-CAM maps, (N, H, W), for `layer` (default: `find_layer`'s)."""
    step = layer_pass(model, images, target, layer, gradient=False)
    x, activation, targets = step.x, step.activation, step.targets
    count, channels = activation.shape[:2]
    per_pass = copies_per_pass(budget_mb, model, x)
    scores = step.logits.float().gather(1, targets[:, None])[:, 0]
    drops = torch.zeros(count, channels, device=x.device)
    ablated = [None]
    with borrowed(model), Hooks() as hooks:
        hooks.add(step.module, lambda module, inputs, output: ablated[0])
        for n in range(count):
            # Zeroing a channel that is zero already changes nothing: its drop is 0 and it is not run.
            live = activation[n].flatten(1).ne(0).any(dim=1).nonzero()[:, 0]
            for start in range(0, len(live), per_pass):
                chunk = live[start:start + per_pass]
                copies = activation[n].repeat(len(chunk), 1, 1, 1)
                copies[torch.arange(len(chunk)), chunk] = 0
                ablated[0] = copies
                logits = _downstream(model, x[n:n + 1], len(chunk))
                drops[n, chunk] = scores[n] - logits.float()[:, targets[n]]
    return upsample(F.relu(weighted_sum(drops, activation)), x.shape[-2:])


def _downstream(model: nn.Module, image: torch.Tensor, copies: int) -> torch.Tensor:
    """The logits of `copies` ablated copies: the image run once up to the layer, or repeated when the model
    cannot broadcast a batch of one past it."""
    try:
        logits = model(image)
        if logits.shape[0] == copies:
            return logits
    except RuntimeError:
        pass
    return model(image.expand(copies, *image.shape[1:]))
