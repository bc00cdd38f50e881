"""Many-pass methods in chunks: how many (image, repeat) pairs one pass may hold under a memory budget.

Integrated gradients' steps, SmoothGrad's samples and RISE's masks each send
every (image, repeat) pair through the model. All pairs in one pass is fast
only until memory runs out (captum's IntegratedGradients without
``internal_batch_size`` puts all 50 steps of a batch of eight 224x224 images
through EfficientNet-Lite0 at once: 21.6 GB); one pair per pass wastes the
batch dimension. A chunk holds as many pairs as `budget_mb` allows (and no more than keep
the threads busy, as occlusion's passes), each costing `HEADROOM` times the bytes autograd saves for one image's forward
pass, measured on the first image with `torch.autograd.graph.saved_tensors_hooks`.
Forward-only methods (RISE) are charged the same, which over-counts: a pass
without a graph keeps fewer activations alive.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import torch
from torch import nn

from cnnlab.explain.base import Target, targets_for
from cnnlab.explain.methods.occlusion import default_batch

DEFAULT_BUDGET_MB = 1024.0
# A backward pass holds, besides the saved activations, the gradients flowing through the layer it is at,
# a few activation-sized tensors at a time: half again the saved bytes covers them on ResNet and EfficientNet.
HEADROOM = 1.5
MIN_PAIRS_PER_PASS = 8


def saved_bytes(model: nn.Module, image: torch.Tensor) -> tuple[int, int]:
    """Bytes autograd saves for backward in one forward pass of `image` (1, C, H, W), and the model's class count.

    Parameters and buffers are left out (they are shared by the whole chunk);
    tensors that share a storage are counted once.
    """
    shared = {t.untyped_storage().data_ptr() for t in itertools.chain(model.parameters(), model.buffers())}
    sizes: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in shared:
            sizes[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        # A copy: a slice of the batch would share (and be charged) the whole batch's storage.
        logits = model(image.detach().clone().requires_grad_())
        # The graph (and so every saved storage) is alive until here, so no address was reused.
        return sum(sizes.values()), logits.shape[-1]


def plan(model: nn.Module, x: torch.Tensor, target: Target, budget_mb: float) -> tuple[torch.Tensor, int]:
    """The target of each image and the pairs per pass that `budget_mb` allows (at least one).

    Call with the model borrowed. The predicted classes, when `target` is
    None, come from forward passes of at most that many images.
    """
    cost, classes = saved_bytes(model, x[:1])
    fit = int(budget_mb * 2**20 // max(1.0, HEADROOM * cost))
    # On a CPU a pass of every pair that fits runs slower than passes of a few (ResNet-18, 224x224, one thread:
    # 32 pairs a pass 1.19x the time of 16, 8 per pass 0.97x): as many as keep the threads busy, at least 8.
    size = max(1, min(fit, max(MIN_PAIRS_PER_PASS, default_batch(x[0].numel(), x.device))))
    if target is not None:  # checked against the class count alone: an empty (N, classes) stands in for logits
        return targets_for(torch.empty(len(x), classes, device=x.device), target), size
    with torch.no_grad():
        logits = torch.cat([model(x[start:start + size]) for start in range(0, len(x), size)])
    return targets_for(logits, None), size


def chunks(count: int, repeats: int, size: int,
           device: torch.device | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(image index, repeat index) of `size` consecutive pairs at a time, repeat-major.

    Repeat-major order keeps a chunk's repeats (steps, noise samples, masks)
    few and consecutive, so each is made once and shared by every image.
    """
    total = count * repeats
    for start in range(0, total, size):
        pair = torch.arange(start, min(start + size, total), device=device)
        yield pair % count, pair // count
