"""What the checkpoint adapters share: the file as read, the backbone they hand back, key helpers.

An adapter turns a `Checkpoint` (the object `torch.load` or safetensors gave back, never code) into
a `Backbone`: the ResNet trunk's tensors under torchvision parameter names (or a ViT trunk under
timm's names, `family="vit"`), plus what it left out and why. Prefixes are removed exactly
(`key[len(prefix):]` for keys that start with it), never character by character, and every key
the adapter does not use is listed in `Backbone.dropped`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from coanalysis.models.trainer import UserError

Normalization = tuple[tuple[float, ...], tuple[float, ...]]
IMAGENET: Normalization = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

# torchvision ResNet: the two keys every trunk has (a plain stem and at least one block)
STEM_KEY, BLOCK_KEY = "conv1.weight", "layer1.0.conv1.weight"
# lightly's `nn.Sequential(*list(resnet.children())[:-1])`: child index -> torchvision name
SEQUENTIAL_NAMES = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}


@dataclass
class Checkpoint:
    """One checkpoint file as read, safely: tensors and plain containers only."""

    path: Path
    obj: Any  # the top-level object: a dict of tensors, or nested dicts / lists / records
    kind: str  # "safetensors", "torch-zip" or "torch-legacy"
    sha256: str  # of the file's bytes
    header: dict[str, str] = field(default_factory=dict)  # safetensors metadata
    stand_ins: tuple[str, ...] = ()  # pickled globals read as inert records (configs, namespaces)


@dataclass
class Backbone:
    """What an adapter found: trunk tensors under torchvision names and everything else it saw."""

    tensors: dict[str, torch.Tensor]
    where: str  # where the trunk sits in the file, e.g. "state_dict['module.encoder_q.*']"
    dropped: list[str] = field(default_factory=list)  # model keys left out, as named in the file
    branch: str | None = None  # which copy was taken (teacher / student, model / ema)
    normalization: Normalization = IMAGENET  # the format's default input statistics
    arch: str | None = None  # what the file says the architecture is (checked against the weights)
    conv1_padding: int | None = None  # a stem padding other than the architecture's own
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # method, dataset, epoch, input_size when known
    family: str = "resnet"  # "resnet": torchvision names; "vit": timm VisionTransformer names


@dataclass(frozen=True)
class Adapter:
    """One checkpoint family. `match` scores how specifically a file looks like this family (None:
    not at all); the most specific match wins. `extract` returns the trunk of the chosen `branch`
    (None: the first of `branches`)."""

    name: str
    description: str
    layout: str  # where the trunk is, for messages: "state_dict -> module.encoder_q.*"
    match: Callable[[Checkpoint], int | None]
    extract: Callable[[Checkpoint, str | None], Backbone]
    branches: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------------
# Reading nested containers

def is_tensor_dict(obj: Any) -> bool:
    """A mapping with string keys holding at least one tensor (a state dict)."""
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(k, str) for k in obj) \
        and any(isinstance(v, torch.Tensor) for v in obj.values())


def child(obj: Any, *path: str) -> Any:
    """`obj[path[0]][path[1]]...`, or None when a step is missing or not a mapping."""
    for key in path:
        if not isinstance(obj, Mapping) or key not in obj:
            return None
        obj = obj[key]
    return obj


def state_dict_at(obj: Any, *path: str) -> dict[str, torch.Tensor] | None:
    found = child(obj, *path)
    return dict(found) if is_tensor_dict(found) else None


def has_trunk(sd: Mapping[str, Any] | None, prefix: str = "") -> bool:
    """Whether `sd` holds a torchvision-named ResNet trunk under `prefix`."""
    return sd is not None and f"{prefix}{STEM_KEY}" in sd and f"{prefix}{BLOCK_KEY}" in sd


def has_sequential_trunk(sd: Mapping[str, Any] | None, prefix: str = "") -> bool:
    """Whether `sd` holds a trunk as `nn.Sequential(*list(resnet.children())[:-1])` under `prefix`."""
    return sd is not None and f"{prefix}0.weight" in sd and f"{prefix}4.0.conv1.weight" in sd


def split_prefix(sd: Mapping[str, Any], prefix: str) -> tuple[dict[str, Any], list[str]]:
    """(entries under `prefix` with the prefix removed exactly, the other keys as they are)."""
    inside = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    outside = [k for k in sd if not k.startswith(prefix)]
    return inside, outside


def rename_sequential(sd: dict[str, Any]) -> dict[str, Any]:
    """lightly's Sequential trunk (`0.weight`, `4.0.conv1.weight`, ...) under torchvision names."""
    out = {}
    for key, value in sd.items():
        head, _, rest = key.partition(".")
        if head not in SEQUENTIAL_NAMES:
            raise UserError(f"unexpected key {key!r} in a Sequential ResNet trunk (children 0, 1, 4-7 hold weights)")
        out[f"{SEQUENTIAL_NAMES[head]}.{rest}"] = value
    return out


def take_trunk(sd: Mapping[str, Any], prefix: str, where: str, *, outer: str = "") -> Backbone:
    """The trunk under `prefix` of state dict `sd`; every other key is dropped, and so is the trunk's
    own classifier (`fc.*`), the one head torchvision models carry inside the trunk.

    `outer` prefixes the dropped keys' names (e.g. "student.") so they say where they were.
    """
    inside, outside = split_prefix(sd, prefix)
    if has_sequential_trunk(inside):
        inside = rename_sequential(inside)
    dropped = [outer + k for k in outside]
    tensors = {}
    for key, value in inside.items():
        if key.startswith("fc.") or not isinstance(value, torch.Tensor):
            dropped.append(f"{outer}{prefix}{key}")
        else:
            tensors[key] = value
    return Backbone(tensors=tensors, where=where, dropped=dropped)


_OUTER = ("teacher", "student", "model", "model_ema")  # whole networks that a key path starts with
_TRUNKS = ("encoder_q", "base_encoder", "backbone", "encoder")  # trunks whose own fc is a head


def _group(key: str) -> str:
    """The group a dropped key is counted in: 'module.encoder_k.*', 'teacher.module.head.*', 'queue'."""
    parts = key.split(".")
    i = 1 if parts[0] in _OUTER and len(parts) > 2 else 0
    if parts[i] == "module" and len(parts) > i + 1:
        i += 1
    if parts[i] in _TRUNKS and len(parts) > i + 2 and parts[i + 1] == "fc":
        i += 1
    return ".".join(parts[: i + 1]) + (".*" if len(parts) > i + 1 else "")


def group_keys(keys: list[str], limit: int = 6) -> str:
    """'projector.* (8), module.queue (1), ...': dropped keys counted by the module they belong to."""
    counts: dict[str, int] = {}
    for key in keys:
        counts[_group(key)] = counts.get(_group(key), 0) + 1
    items = [f"{g} ({n})" for g, n in counts.items()]
    more = f", and {len(items) - limit} more groups" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
