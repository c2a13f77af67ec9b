"""Views in, outputs out: which augmented views a method trains on, and the forward passes every
method shares.

A method's `views(cfg)` returns `[(ViewAugment, count), ...]`; the training loop augments the
batch `count` times with each (one batched call per entry) and hands the method the flat list of
views: two global views first, then any multi-crop crops or patches.

- `two_views`: BYOL's asymmetric pair (view 1 always blurred, view 2 rarely blurred and sometimes
  solarized) or SimCLR's symmetric one; blur is off for images of 64 px and less (`--blur auto`).
- `local_crops`: multi-crop's small crops (DINO / SwAV style).
- `encode_views`: the encoder's maps for all views, views of one size in one pass.
- `global_outputs`: a head on the pooled maps (or pooled per-position heads).
- `cross_view_mean`: the multi-view loss of BYOL-multi-crop and DINO, every student view against
  every teacher view but itself.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from co_ssl_train.data.augment import ViewAugment, byol_views
from co_ssl_train.methods.heads import per_position
from co_ssl_train.models import Encoder

ViewPlan = list[tuple[ViewAugment, int]]


def two_views(cfg, symmetric: bool = False) -> ViewPlan:
    """The two global views: BYOL's asymmetric pair, or (symmetric) SimCLR's: blur p=0.5 in both,
    no solarization."""
    blur = cfg.blur == "on"
    if symmetric:
        view = ViewAugment(cfg.image_size, scale=(cfg.min_scale, 1.0), blur_p=0.5 if blur else 0.0, solarize_p=0.0)
        return [(view, 2)]
    a, b = byol_views(cfg.image_size, cfg.min_scale, blur=blur)
    return [(a, 1), (b, 1)]


def local_crop_size(cfg) -> int:
    """`--local-crop-size`, or by default 96/224 of the image side (DINO's 96 px at 224), at least 8;
    on a ViT the default is rounded to whole patches (DINO: 96 px = 6 x 16)."""
    if cfg.local_crop_size:
        return cfg.local_crop_size
    size = max(8, round(cfg.image_size * 96 / 224))
    patch = getattr(cfg, "vit_patch_size", 0)
    return max(patch, round(size / patch) * patch) if patch else size


def local_crops(cfg) -> ViewPlan:
    """`cfg.local_crops` small crops of area `[local_crop_scale_min, local_crop_scale_max]`, blur p=0.5."""
    if not cfg.local_crops:
        return []
    view = ViewAugment(local_crop_size(cfg), scale=(cfg.local_crop_scale_min, cfg.local_crop_scale_max),
                       blur_p=0.5 if cfg.blur == "on" else 0.0, solarize_p=0.0)
    return [(view, cfg.local_crops)]


def encode_views(encoder: Encoder, views: Sequence[torch.Tensor], layers: Sequence[str]) -> list[list[torch.Tensor]]:
    """`maps[l][v]`: the map `(B, C_l, h, w)` of layer `layers[l]` for view `v`.

    Consecutive views of the same size go through the encoder as one batch (so BatchNorm sees all
    of them, as BYOL's implementation does); multi-crop views of another size take another pass.
    """
    maps: list[list[torch.Tensor]] = [[] for _ in layers]
    for batch, count in _same_size_runs(views):
        for slot, m in zip(maps, encoder.forward_maps(batch, layers)):
            slot.extend(m.chunk(count))
    return maps


def global_outputs(head: nn.Module, maps: Sequence[torch.Tensor], mlp_after_pool: bool = True,
                   pool: Callable[[torch.Tensor], torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Per view `(B, D)`: `head(pool(map))` (`pool`: the encoder's, default the mean over positions),
    or, with `mlp_after_pool=False`, the mean over positions of `head` applied at every position.
    Views of one size share one head call."""
    out: list[torch.Tensor] = []
    for batch, count in _same_size_runs(maps):
        if mlp_after_pool:
            y = head(pool(batch) if pool is not None else batch.mean(dim=(2, 3)))
        else:
            y = per_position(head, batch).mean(dim=0)
        out.extend(y.chunk(count))
    return out


def _same_size_runs(tensors: Sequence[torch.Tensor]):
    """Yield `(concatenation, count)` for each run of consecutive tensors of equal shape."""
    i = 0
    while i < len(tensors):
        j = i + 1
        while j < len(tensors) and tensors[j].shape == tensors[i].shape:
            j += 1
        yield (torch.cat(list(tensors[i:j])) if j - i > 1 else tensors[i]), j - i
        i = j


def cross_view_mean(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], student: Sequence[torch.Tensor],
                    teacher: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean of `loss(student[v], teacher[t])` over every teacher view t and student view v != t.

    With two views this is the symmetrized loss `(loss(s0, t1) + loss(s1, t0)) / 2`.
    """
    terms = [loss(s, t) for ti, t in enumerate(teacher) for si, s in enumerate(student) if si != ti]
    return torch.stack(terms).mean()
