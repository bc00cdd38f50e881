"""Which device a command runs on, and which autocast dtype a precision means there."""

from __future__ import annotations

import torch

from cnnlab.errors import ConfigError, unknown

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")


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
    """The autocast dtype for a precision on a device, or None for fp32."""
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("The --precision fp16 needs a CUDA device (a grad scaler keeps fp16 stable there); "
                          "on the CPU use bf16.")
    return torch.bfloat16 if precision == "bf16" else torch.float16
