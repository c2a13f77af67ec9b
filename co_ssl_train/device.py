"""Where a run computes and in which precision: device names, precision names and the autocast
context, shared by the trainer and (through `coanalysis.models.trainer`) by coanalysis.

`resolve_device("auto")` is cuda when present, else cpu (under torchrun with nccl, this rank's
GPU); `resolve_precision("auto", device)` is bf16 on GPU and fp32 elsewhere; `autocast(device,
"bf16")` runs the enclosed forward passes under bf16 autocast, `"fp32"` leaves them alone.
"""

from __future__ import annotations

import contextlib

import torch

from co_ssl_train.distributed import DistContext
from co_ssl_train.errors import UserError

PRECISIONS = ("auto", "bf16", "fp32")


def resolve_device(name: str = "auto", ctx: DistContext | None = None) -> torch.device:
    """A `--device` value ('auto', 'cpu', 'cuda', 'cuda:N') -> a device; unavailable or unknown ones are a UserError."""
    if ctx is not None and ctx.backend == "nccl":
        return torch.device("cuda", ctx.local_rank)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for, but CUDA is not available here; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' on GPU, 'fp32' elsewhere; 'bf16' and 'fp32' as they are."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; use auto, bf16 or fp32")
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device` for precision 'bf16'; no change for 'fp32'."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
