"""Occlusion (Zeiler & Fergus): slide a patch over the image and watch the class probability.

Returns, per image, the target's probability with the patch over each pixel
(averaged over the patch positions that cover it), the class predicted at each patch position,
and how often each class was predicted. `importance` (unoccluded minus
occluded probability) equals captum's Occlusion on the softmax output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.errors import ConfigError, invalid
from cnnlab.explain.base import Target, as_batch, borrowed, targets_for
from cnnlab.explain.registry import Option, register_method

# Occluded copies per forward pass: on a CPU, four 224x224 RGB images' worth of values per torch thread.
# Measured with two threads (benchmarks/explain.py): eight 224x224 copies per pass beat three and 32, and
# 128 (captum's Occlusion with 16 perturbations per pass on a batch of eight) was 1.7-2.6x slower. Small
# inputs are packed many to a pass, up to MAX_PER_PASS.
CPU_VALUES_PER_THREAD = 4 * 3 * 224 * 224
GPU_VALUES_PER_PASS = 2**24
MAX_PER_PASS = 256


@dataclass
class OcclusionResult:
    probability: torch.Tensor  # (N, H, W): target probability with the patch over each pixel
    predicted: torch.Tensor  # (N, rows, cols): class predicted at each patch position
    counts: torch.Tensor  # (N, classes): patch positions at which each class was predicted
    unoccluded: torch.Tensor  # (N,): target probability of the intact image
    targets: torch.Tensor  # (N,)
    positions: tuple[list[int], list[int]]  # patch top rows, left columns

    @property
    def importance(self) -> torch.Tensor:
        """Drop in the target's probability when the pixel is hidden, (N, H, W)."""
        return self.unoccluded[:, None, None] - self.probability


def default_batch(values_per_image: int, device: torch.device) -> int:
    """Occluded copies per forward pass: enough to keep every thread busy, few enough to stay in cache."""
    if device.type == "cuda":
        budget = GPU_VALUES_PER_PASS
    else:
        budget = CPU_VALUES_PER_THREAD * torch.get_num_threads()
    return max(1, min(MAX_PER_PASS, budget // values_per_image))


def _window(size: int, patch: int, stride: int) -> list[int]:
    """Patch starts every `stride` pixels; the last patch may hang over the edge, so every pixel is covered."""
    return list(range(0, -(-(size - patch) // stride) * stride + 1, stride))


@torch.no_grad()
def occlusion(model: nn.Module, images: torch.Tensor, target: Target = None, patch: int | None = None,
              stride: int | None = None, fill: float = 0.5, batch: int | None = None) -> OcclusionResult:
    """Occlude each image with a `patch` x `patch` square of value `fill` every `stride` pixels.

    Defaults: patch = 1/4 of the smaller side, stride = half the patch;
    `batch` occluded copies per forward pass (default: `default_batch`).
    """
    x = as_batch(images, model)
    count, channels, height, width = x.shape
    patch = patch or max(1, min(height, width) // 4)
    stride = stride or max(1, patch // 2)
    for name, value in (("patch", patch), ("stride", stride), ("batch", batch)):
        if value is not None and (int(value) != value or value < 1):
            raise ConfigError(invalid(f"'{name}'", "occlusion", "a positive integer", value))
    if stride > patch:
        raise ConfigError(invalid("'stride'", "occlusion", f"at most the patch size ({patch}), so every pixel is "
                                  "covered", stride))
    if patch > min(height, width):
        raise ConfigError(invalid("'patch'", "occlusion", f"at most the image side ({min(height, width)})", patch))
    rows, cols = _window(height, patch, stride), _window(width, patch, stride)
    positions = [(r, c) for r in rows for c in cols]
    batch = batch or default_batch(channels * height * width, x.device)
    with borrowed(model):
        probabilities = model(x).float().softmax(dim=-1)
        targets = targets_for(probabilities, target)
        # Every (image, position) pair, in order; copies from different images share a pass.
        jobs = [(i, r, c) for i in range(count) for r, c in positions]
        occluded_probability, occluded_class = [], []
        for start in range(0, len(jobs), batch):
            chunk = jobs[start:start + batch]
            index = torch.tensor([i for i, _, _ in chunk], device=x.device)
            copies = x[index].clone()
            for k, (_, r, c) in enumerate(chunk):
                copies[k, :, r:r + patch, c:c + patch] = fill
            chunk_probabilities = model(copies).float().softmax(dim=-1)
            occluded_probability.append(chunk_probabilities.gather(1, targets[index][:, None])[:, 0])
            occluded_class.append(chunk_probabilities.argmax(dim=-1))
    grid_probability = torch.cat(occluded_probability).view(count, len(rows), len(cols)).cpu()
    predicted = torch.cat(occluded_class).view(count, len(rows), len(cols)).cpu()
    unoccluded = probabilities.gather(1, targets[:, None])[:, 0].cpu()
    total = torch.zeros(count, height, width)
    covered = torch.zeros(height, width)
    for a, r in enumerate(rows):
        for b, c in enumerate(cols):
            total[:, r:r + patch, c:c + patch] += grid_probability[:, a, b, None, None]
            covered[r:r + patch, c:c + patch] += 1
    probability = total / covered
    counts = torch.stack([torch.bincount(p.flatten(), minlength=probabilities.shape[-1]) for p in predicted])
    return OcclusionResult(probability, predicted, counts, unoccluded, targets.cpu(), (rows, cols))


@register_method("occlusion", "drop in the target's probability when a patch hides each pixel (Zeiler & Fergus)",
                 units="drop in probability", gradients=False, signed=True, figure="occlusion", slow=True,
                 reference="captum Occlusion",
                 options={"patch": Option(None, "patch side in pixels (default: 1/4 of the smaller side)", int, 1),
                          "stride": Option(None, "pixels between patch positions (default: half the patch)", int, 1),
                          "fill": Option(0.5, "value of the patch in [0, 1] image units", float),
                          "batch": Option(None, "occluded copies per forward pass (default: chosen)", int, 1)})
def occlusion_importance(model: nn.Module, images: torch.Tensor, target: Target = None, patch: int | None = None,
                         stride: int | None = None, fill: float = 0.5, batch: int | None = None) -> torch.Tensor:
    """Unoccluded minus occluded probability of the target at each pixel, (N, H, W); negative where hiding helps."""
    return occlusion(model, images, target, patch, stride, fill, batch).importance
