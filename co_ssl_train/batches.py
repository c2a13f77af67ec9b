"""From a dataset to the views of one training step, and the statistics the encoder stores.

- `batch_indices`: an epoch's seeded permutation as `(steps, global batch)` image indices (the
  last partial batch dropped); `shard`: one rank's columns of it, as a DistributedSampler would;
- `epoch_batches`: uint8 batches on the training device, from in-memory datasets (already on the
  device) or from DataLoader workers decoding a folder dataset;
- `make_views`: a batch -> the method's augmented views, one batched augmentation call per plan entry;
- `dataset_normalization`: the mean/std the encoder keeps inside (training images, ImageNet's, or none).
"""

from __future__ import annotations

from typing import Iterator

import torch

from co_ssl_train.arch_options import is_vit
from co_ssl_train.data import ImageDataset
from co_ssl_train.data.datasets import UNDECODABLE
from co_ssl_train.data.augment import augment_batch
from co_ssl_train.errors import UserError
from co_ssl_train.methods.views import ViewPlan
from co_ssl_train.models import IMAGENET_MEAN, IMAGENET_STD


def dataset_normalization(dataset, mode: str) -> tuple[list[float], list[float]]:
    """Mean/std stored in the encoder: of the training images (up to 10 000), ImageNet's, or none."""
    if mode == "none":
        return [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    if mode == "imagenet" or not isinstance(dataset, ImageDataset):
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    step = max(1, len(dataset) // 10_000)
    x = dataset.images[::step].float().div_(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return [round(v, 4) for v in mean.tolist()], [round(v, 4) for v in std.tolist()]


def batch_indices(n: int, batch_size: int, seed: int, epoch: int) -> torch.Tensor:
    """`(steps, batch_size)` image indices of one epoch: a seeded permutation, last partial batch dropped."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    steps = n // batch_size
    return perm[: steps * batch_size].view(steps, batch_size)


def shard(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's columns of an epoch's `(steps, global batch)` order: `(steps, batch / world)`."""
    per_rank = order.shape[1] // world_size
    return order[:, rank * per_rank:(rank + 1) * per_rank]


def epoch_batches(dataset, order: torch.Tensor, start: int, device: torch.device, workers: int,
                  skipped: list[str] | None = None) -> Iterator[torch.Tensor]:
    """uint8 image batches on `device`, from step `start` of the epoch's `order`. Files of a folder
    set that do not decode are left out of their batch and appended to `skipped`; a batch left
    with fewer than 2 images (batch norm) is a UserError naming the files."""
    if isinstance(dataset, ImageDataset):
        for idx in order[start:]:
            yield dataset.images[idx.to(dataset.images.device)]
        return
    flat = order[start:].reshape(-1).tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, flat), batch_size=order.shape[1],
                                         shuffle=False, num_workers=workers, drop_last=True,
                                         pin_memory=device.type == "cuda", persistent_workers=False)
    size = order.shape[1]
    for b, (images, labels) in enumerate(loader):
        keep = labels != UNDECODABLE
        if not keep.all():
            bad = [dataset.samples[flat[b * size + int(i)]][0] for i in torch.nonzero(~keep).flatten()]
            if skipped is not None:
                skipped.extend(bad)
            if int(keep.sum()) < 2:
                raise UserError(f"{len(bad)} of the {size} images of a training batch did not decode (e.g. {bad[0]}); "
                                f"check the image files under {dataset.info.source}")
            images = images[keep]
        yield images.to(device, non_blocking=True)


def make_views(images: torch.Tensor, plan: ViewPlan, generator: torch.Generator,
               channels_last: bool) -> list[torch.Tensor]:
    """uint8 `(B, 3, H, W)` -> the method's views, each `(B, 3, S_v, S_v)` float in [0, 1]; one batched
    augmentation call per plan entry (an entry of count c augments the batch repeated c times)."""
    views: list[torch.Tensor] = []
    for view, count in plan:
        x = augment_batch(images.repeat(count, 1, 1, 1) if count > 1 else images, view, generator)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        views.extend(x.chunk(count))
    return views


def use_channels_last(cfg, device: torch.device) -> bool:
    """`--channels-last`, except on CPU with fewer than 8 channels in the first stage: there, torch's
    channels_last backward of a strided 1x1 convolution corrupts memory (seen with torch 2.x)."""
    if is_vit(cfg.arch):
        return False  # a ViT has one convolution (the patch embedding); its tokens are (B, N, C)
    return cfg.channels_last and (device.type == "cuda" or cfg.width >= 8)
