"""The feature cache: a frozen backbone's pooled features, computed once per image, for training the head alone.

With everything but the head frozen (and in eval mode), the head's input for
an image never changes, so every epoch after the first needs only the head:
a Linear layer on (N, features) vectors instead of a network on images.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from cnnlab.data.datasets import ArrayDataset
from cnnlab.device import autocast_dtype
from cnnlab.loop.distributed import World
from cnnlab.models.backbones import set_submodule
from cnnlab.progress import progress


@contextmanager
def headless(model: nn.Module, classifier: str):
    """While active, `model` outputs the input of its head `classifier` (the pooled features) instead of logits."""
    head = model.get_submodule(classifier)
    set_submodule(model, classifier, nn.Identity())
    try:
        yield model
    finally:
        set_submodule(model, classifier, head)


@torch.no_grad()
def extract_features(model: nn.Module, classifier: str, data, preprocess: nn.Module, *,
                     device: str | torch.device = "cpu", precision: str = "fp32", batch_size: int = 64,
                     workers: int = 0) -> ArrayDataset:
    """The (N, features) head inputs of every image in `data`, as float32 on the CPU, with the same labels.

    The model runs in eval mode, in the Trainer's layout (channels_last and
    autocast on CUDA); file data comes through a DataLoader with workers and
    pinned memory.
    """
    device = torch.device(device)
    amp_dtype = autocast_dtype(precision, device)
    channels_last = device.type == "cuda"
    was_training = model.training
    model.eval().to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    preprocess = preprocess.to(device)
    features = []
    try:
        with headless(model, classifier):
            batches = _image_batches(data, batch_size, workers, device.type == "cuda")
            for x in progress(batches, total=-(-len(data) // batch_size), desc="backbone features"):
                x = x.to(device, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext():
                    features.append(model(preprocess(x)).float().flatten(1).cpu())
    finally:
        model.train(was_training)
    labels = data.y if hasattr(data, "y") else torch.as_tensor(data.targets)
    return ArrayDataset(torch.cat(features) if features else torch.empty(0, 0), labels, getattr(data, "index", None))


def _image_batches(data, batch_size: int, workers: int, pin_memory: bool):
    if hasattr(data, "x") and torch.is_tensor(data.x):
        for start in range(0, len(data), batch_size):
            yield data.x[start:start + batch_size]
        return
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=pin_memory)
    for x, _ in loader:
        yield x


class FeatureCache:
    """Features of each split, extracted on first use and kept; `seconds` is the time spent extracting.

    With several processes each extracts its own share of a split once, and
    the shares are gathered, so that every process holds the whole split's
    features in the split's order.
    """

    def __init__(self, model: nn.Module, classifier: str, preprocess: nn.Module, world: World = World(),
                 **options):
        self.model, self.classifier, self.preprocess, self.options = model, classifier, preprocess, options
        self.world = world
        self.features: dict[str, ArrayDataset] = {}
        self.seconds = 0.0

    def get(self, name: str, data) -> ArrayDataset | None:
        if data is None:
            return None
        if name not in self.features:
            started = time.perf_counter()
            share = data.subset(self.world.shard(np.arange(len(data)))) if self.world.active else data
            features = extract_features(self.model, self.classifier, share, self.preprocess, **self.options)
            if self.world.active:
                parts = self.world.gather(features.x)
                features = ArrayDataset(torch.cat(parts), torch.as_tensor(data.targets), getattr(data, "index", None))
            self.features[name] = features
            self.seconds += time.perf_counter() - started
        return self.features[name]
