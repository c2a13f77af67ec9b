"""What every result records about where it ran: package and library versions, and the device."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

import torch

from coanalysis.trainer import package_version

_LIBRARIES = ("torch", "torchvision", "numpy", "foolbox", "captum", "imagecorruptions-imaug", "safetensors")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda when present, else cpu."""
    from coanalysis.trainer import UserError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for, but CUDA is not available here; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def environment(device: torch.device) -> dict[str, Any]:
    versions = {"co-ssl": package_version, "python": platform.python_version()}
    for lib in _LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            versions[lib] = None
    return {"versions": versions, "device": describe_device(device)}
