"""What every result records about where it ran: package and library versions, and the device."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

import torch

from coanalysis.models.trainer import package_version

_LIBRARIES = ("torch", "torchvision", "numpy", "foolbox", "captum", "imagecorruptions-imaug", "safetensors")


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
