"""Optimisers and per-iteration learning-rate schedules (Keras' time-based decay among them)."""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.run.config import TrainConfig


def build_optimizer(parameters, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam or AdamW with the config's learning rate and weight decay."""
    if isinstance(parameters, nn.Module):
        parameters = [p for p in parameters.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.base_lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0, weight_decay=config.weight_decay)
    optimizer = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return optimizer(parameters, lr=config.base_lr, weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """A scheduler stepped after every batch.

    ``time``: Keras' ``lr / (1 + decay * iteration)``; ``cosine``: from lr to 0
    over the run; ``onecycle``: warm up to lr then anneal (Smith's one-cycle).
    """
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   total_steps=total)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)))
    decay = config.decay
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 / (1.0 + decay * t))
