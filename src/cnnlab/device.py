"""Which device a command runs on, and which autocast dtype a precision means there."""

from __future__ import annotations

import statistics
import time

import torch

from cnnlab.errors import ConfigError, unknown

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# bf16 autocast must beat fp32 by this factor to be chosen by --precision auto, and is worth a warning below
# the other: on a CPU without native bf16 (AVX2 only) it ran at 0.13x fp32, on one with AVX-512 BF16 1.5-1.8x.
BF16_PAYS, BF16_SLOW = 1.15, 0.8


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` is CUDA when present, else the CPU; asking for CUDA without it is a ConfigError."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).split(":")[0] not in DEVICES:
        raise ConfigError(unknown("--device value", device, DEVICES))
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("The --device option asks for cuda, but no CUDA device is available; use --device cpu.")
    return torch.device(device)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision on a device, or None for fp32 (and for `auto`, until resolved)."""
    if precision in ("fp32", "auto"):
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("The --precision fp16 needs a CUDA device (a grad scaler keeps fp16 stable there); "
                          "on the CPU use bf16.")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def bf16_speedup(model: torch.nn.Module, batch: torch.Tensor, device: torch.device) -> float:
    """How many times faster `model`'s forward and backward pass on `batch` runs under bf16 autocast than in fp32
    on `device`, measured.

    A measurement, not a lookup of the device's name: CPUs report the same
    capability ("AVX512") with and without native bf16 instructions, and the
    difference is 0.13x against 1.8x. The median of paired ratios (fp32 then
    bf16, back to back, so a busy machine slows both alike) after warming up.
    The model's weights, gradients and modes are left as they were.
    """
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return 0.0
    model = model.to(device)
    x = batch.to(device)
    was_training = model.training
    grads = [(p, p.grad) for p in model.parameters()]
    model.eval()

    def seconds(bf16: bool) -> float:
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(x).float().square().mean()
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

    try:
        seconds(False), seconds(True)  # warm up: oneDNN compiles its bf16 kernels on first use
        return statistics.median(seconds(False) / seconds(True) for _ in range(5))
    finally:
        model.train(was_training)
        for parameter, grad in grads:
            parameter.grad = grad


def resolve_precision(precision: str, model: torch.nn.Module, batch: torch.Tensor,
                      device: torch.device) -> tuple[str, str]:
    """(precision to train with, a line to print or ''): `auto` becomes bf16 only where `model` measures
    faster under it, and an explicit bf16 that runs slower than fp32 here is said so."""
    if precision not in ("auto", "bf16"):
        return precision, ""
    speedup = bf16_speedup(model, batch, device)
    if precision == "auto":
        chosen = "bf16" if speedup >= BF16_PAYS else "fp32"
        return chosen, (f"--precision auto: {chosen} (a training step ran {speedup:.2f}x as fast under bf16 autocast "
                        f"as in fp32 on this {device.type})")
    if speedup < BF16_SLOW:
        return "bf16", (f"Note: a training step runs {speedup:.2f}x as fast under bf16 autocast as in fp32 on this "
                        f"{device.type} (no native bf16?); --precision auto would choose fp32.")
    return "bf16", ""
