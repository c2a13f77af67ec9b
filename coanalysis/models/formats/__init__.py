"""Checkpoint formats: one small adapter module per family, listed in the `FORMATS` table.

`detect(ckpt)` scores every adapter on the file's keys and nesting and takes the most specific
match; `--format NAME` skips detection. An unknown layout gets an error naming the closest known
formats and a few of the file's keys. Reading the file safely is `reading.read_checkpoint`,
turning a trunk's weight shapes into an architecture is `arch.infer_arch`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from coanalysis.models.formats import (co_ssl_run, dino, lightning, mmselfsup, moco, pycontrast, swav, timm_resnet,
                                torchvision_resnet, vissl, vit)
from coanalysis.models.formats.base import IMAGENET, Adapter, Backbone, Checkpoint
from coanalysis.models.trainer import UserError

VIT_FORMATS = tuple(a.name for a in vit.ADAPTERS)

FORMATS: dict[str, Adapter] = {a.name: a for a in (
    co_ssl_run.ADAPTER,
    torchvision_resnet.ADAPTER,
    timm_resnet.ADAPTER,
    lightning.SOLO_LEARN,
    lightning.LIGHTLY,
    mmselfsup.ADAPTER,
    vissl.ADAPTER,
    dino.ADAPTER,
    moco.MOCO,
    moco.MOCO_V3,
    swav.ADAPTER,
    pycontrast.ADAPTER,
    *vit.ADAPTERS,
)}


def get_format(name: str) -> Adapter:
    if name not in FORMATS:
        raise UserError(f"unknown checkpoint format {name!r}; choose one of: {', '.join(FORMATS)}")
    return FORMATS[name]


def detect(ckpt: Checkpoint) -> Adapter:
    """The adapter whose layout fits the file most specifically; ties go to the earlier entry."""
    scores = {}
    for adapter in FORMATS.values():
        score = adapter.match(ckpt)
        if score is not None:
            scores[adapter.name] = score
    if not scores:
        raise unknown_layout(ckpt)
    return FORMATS[max(scores, key=lambda n: (scores[n], -list(FORMATS).index(n)))]


def flat_keys(obj: Any, prefix: str = "", depth: int = 0, limit: int = 20000) -> list[str]:
    """Every leaf key of nested mappings as 'a/b/c' (mapping levels joined by '/')."""
    out: list[str] = []
    if isinstance(obj, Mapping) and depth < 6:
        for key, value in obj.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping) and value and not any(hasattr(v, "shape") for v in value.values()):
                out += flat_keys(value, name + "/", depth + 1, limit)
            elif isinstance(value, Mapping) and value:
                out += [f"{name}/{k}" for k in value]
            else:
                out.append(name)
            if len(out) > limit:
                break
    return out


RESNET_MARKERS = ("layer1.0.conv1.weight", "conv1.weight")
VIT_MARKERS = ("patch_embed.proj.weight", "blocks.0.attn.qkv.weight")


def _trunk_prefixes(keys: list[str], markers: tuple[str, ...] = RESNET_MARKERS + VIT_MARKERS) -> list[str]:
    """Where a trunk seems to sit: the text before each '...conv1.weight' / 'layer1.0.conv1.weight' (ResNet)
    or 'patch_embed.proj.weight' / 'blocks.0.attn.qkv.weight' (ViT)."""
    found = []
    for key in keys:
        for marker in markers:
            if key.endswith(marker) and (len(key) == len(marker) or key[-len(marker) - 1] in "./"):
                found.append(key[: -len(marker)])
                break
    return sorted(set(found), key=len)


def unknown_layout(ckpt: Checkpoint) -> UserError:
    """A one-line error: the closest formats by where the trunk seems to sit, and a few of the keys."""
    keys = flat_keys(ckpt.obj)
    candidates = _trunk_prefixes(keys) or [k.split("/")[0] for k in keys[:20]]

    def tokens(text: str) -> set[str]:
        return {t for t in re.split(r"[/.*|()]+", text) if t}

    def closeness(adapter: Adapter) -> tuple[float, float]:
        """(shared names of the trunk's path, then character similarity) with the adapter's layout."""
        target = adapter.layout.replace(" -> ", "/").split(" ")[0]
        return max(((len(tokens(c) & tokens(target)) / max(len(tokens(c) | tokens(target)), 1),
                     difflib.SequenceMatcher(None, c, target).ratio()) for c in candidates), default=(0.0, 0.0))

    # a ResNet-looking trunk is compared with the ResNet formats only, a ViT-looking one with the ViT ones
    family = "resnet" if _trunk_prefixes(keys, RESNET_MARKERS) else "vit" if _trunk_prefixes(keys, VIT_MARKERS) \
        else None
    pool = [a for a in FORMATS.values() if family is None or (a.name in VIT_FORMATS) == (family == "vit")]
    closest = sorted(pool, key=closeness, reverse=True)[:3]
    hint = "; ".join(f"{a.name} ({a.layout})" for a in closest)
    shown = ", ".join(keys[:5]) + (f" ... ({len(keys)} keys)" if len(keys) > 5 else "")
    where = f"a trunk seems to sit under {candidates[0]!r}; " if _trunk_prefixes(keys) \
        else "no ResNet or ViT trunk found; "
    return UserError(f"{ckpt.path}: unknown checkpoint layout ({where}keys: {shown or 'none'}); closest known formats: "
                     f"{hint}; pass --format NAME to force one")


__all__ = ["FORMATS", "IMAGENET", "Adapter", "Backbone", "Checkpoint", "detect", "get_format", "unknown_layout"]
