"""Forward passes the metrics share: the target's probability for many perturbed copies, a pass at a time."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from cnnlab.explain.base import Target, as_batch, borrowed, device_of, targets_for

# Copies per forward pass: on a CPU, four 224x224 RGB images' worth of values per torch thread (the budget
# occlusion measured as fastest); small inputs are packed many to a pass, up to MAX_PER_PASS.
CPU_VALUES_PER_THREAD = 4 * 3 * 224 * 224
GPU_VALUES_PER_PASS = 2**24
MAX_PER_PASS = 256


def per_pass(values_per_image: int, device: torch.device) -> int:
    """How many copies of an image with `values_per_image` values to send through the model at once."""
    budget = GPU_VALUES_PER_PASS if device.type == "cuda" else CPU_VALUES_PER_THREAD * torch.get_num_threads()
    return max(1, min(MAX_PER_PASS, budget // values_per_image))


@torch.no_grad()
def probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Softmax class probabilities of `images`, (N, classes), in eval mode, `per_pass` images at a time."""
    x = as_batch(images, model)
    size = per_pass(x[0].numel(), x.device)
    with borrowed(model):
        return torch.cat([model(x[start:start + size]).float().softmax(dim=-1) for start in range(0, len(x), size)])


def predicted_targets(model: nn.Module, images: torch.Tensor, target: Target = None) -> torch.Tensor:
    """One class per image on the model's device: `target` checked, or the predicted class when None."""
    return targets_for(probabilities(model, images), target)


@torch.no_grad()
def target_probabilities(model: nn.Module, count: int, make: Callable[[torch.Tensor], torch.Tensor],
                         image_of: torch.Tensor, targets: torch.Tensor, values_per_image: int) -> torch.Tensor:
    """The target's probability for `count` perturbed copies, (count,), built `per_pass` at a time.

    ``make(jobs)`` returns the copies numbered `jobs` (a 1-D index tensor);
    ``image_of[job]`` is the image a copy was made from, whose target it scores.
    """
    device = device_of(model)
    size = per_pass(values_per_image, device)
    scores = []
    with borrowed(model):
        for start in range(0, count, size):
            jobs = torch.arange(start, min(count, start + size), device=device)
            copies = make(jobs).to(device, torch.float32)
            chosen = targets[image_of[jobs]]
            scores.append(model(copies).float().softmax(dim=-1).gather(1, chosen[:, None])[:, 0])
    return torch.cat(scores) if scores else torch.zeros(0, device=device)


def explain(method: Callable[..., torch.Tensor], model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
            options: dict | None = None, images_per_call: int = 8) -> torch.Tensor:
    """`method`'s maps of `images` for `targets`, (N, H, W) float on the images' device, a few images a call."""
    maps = [method(model, images[start:start + images_per_call], targets[start:start + images_per_call],
                   **(options or {})).detach().to(images.device, torch.float32)
            for start in range(0, len(images), images_per_call)]
    return torch.cat(maps)
