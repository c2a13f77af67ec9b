"""BagSSL: fixed-scale patch bags with the VICReg objective (Chen, Bardes, Li, LeCun, TMLR 2023).

Training: each image gives `--patches` K random patches of `--patch-size` s px (a crop of fixed
scale, square, each with its own flip / colour jitter / grayscale), embedded separately (encoder
global vector -> 3-layer expander) at their own s x s resolution. The loss pulls every patch
embedding towards the bag's mean embedding (the mean over the K patches of the same image) and
keeps each patch set's embeddings spread out with VICReg's variance and covariance terms:

    L = lambda * mean_k MSE(z_k, mean_k z) + mu * mean_k v(z_k) + nu * mean_k c(z_k)

(`v`, `c` as in `vicreg.py`, over the global batch). The patch-to-patch form is the same loss up to
a constant: mean over pairs k != l of ||z_k - z_l||^2 = 2K / (K - 1) * mean_k ||z_k - mean z||^2.

Representation: at test time an image's representation is the mean of its patches' embeddings
(`bag_of_patches`, a grid of s x s patches with stride s / 2, ours). The exported checkpoint holds
the plain encoder: `encoder.forward_global(full image)` is the ordinary global representation,
NOT the bag readout; `meta.json` says so under `representation` (see `representation_meta`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from co_ssl_train.data.augment import ViewAugment
from co_ssl_train.methods.heads import MLP
from co_ssl_train.methods.vicreg import covariance_term, gather_batch, variance_term
from co_ssl_train.methods.views import ViewPlan, encode_views, global_outputs
from co_ssl_train.models import Encoder


def bag_loss(z: torch.Tensor, sim_weight: float = 25.0, var_weight: float = 25.0,
             cov_weight: float = 1.0) -> torch.Tensor:
    """BagSSL's loss on patch embeddings z `(K, N, D)`: K patches of each of N images (N the
    batch axis, gathered across ranks)."""
    z = z.float()
    bag = z.mean(dim=0, keepdim=True)
    invariance = F.mse_loss(z, bag.expand_as(z))
    return sim_weight * invariance + var_weight * variance_term(z) + cov_weight * covariance_term(z)


def patch_grid_stride(patch_size: int) -> int:
    return max(1, patch_size // 2)


def patch_features(encoder: Encoder, images: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:
    """`encoder.forward_global` of every `patch_size` patch of the grid with `stride`: images
    `(B, 3, H, W)` -> `(B, nh, nw, C)` (gradients flow: attacks and saliency read through it)."""
    b, c, h, w = images.shape
    patches = images.unfold(2, patch_size, stride).unfold(3, patch_size, stride)  # (B, 3, nh, nw, s, s)
    nh, nw = patches.shape[2], patches.shape[3]
    flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(b * nh * nw, c, patch_size, patch_size)
    return encoder.forward_global(flat).view(b, nh, nw, -1)


@torch.no_grad()
def bag_of_patches(encoder: Encoder, images: torch.Tensor, patch_size: int, stride: int | None = None) -> torch.Tensor:
    """The bag readout: images `(B, 3, H, W)` in [0, 1] -> `(B, C)`, the mean of
    `encoder.forward_global` over the grid of `patch_size` patches (stride `patch_size / 2`)."""
    features = patch_features(encoder, images, patch_size, stride or patch_grid_stride(patch_size))
    return features.flatten(1, 2).mean(dim=1)


def views(cfg) -> ViewPlan:
    frac = (cfg.patch_size / cfg.image_size) ** 2
    patch = ViewAugment(cfg.patch_size, scale=(frac, frac), ratio=(1.0, 1.0), blur_p=0.0, solarize_p=0.0)
    return [(patch, cfg.patches)]


def representation_meta(cfg) -> dict:
    """What `meta.json` says about how to read a BagSSL encoder."""
    return {"kind": "bag-of-patches", "patch_size": cfg.patch_size, "stride": patch_grid_stride(cfg.patch_size),
            "train_patches_per_image": cfg.patches,
            "readout": "mean of encoder.forward_global over the patch grid (co_ssl_train.methods.bagssl.bag_of_patches)",
            "note": "encoder.forward_global on the full image is the plain global representation, not the bag readout"}


class BagSSL(nn.Module):
    """`forward(views)` takes K patch views `(B, 3, s, s)` and returns `(loss, logs)`."""

    def __init__(self, encoder: Encoder, *, proj_hidden: int, proj_dim: int, weights: tuple[float, float, float]):
        super().__init__()
        self.encoder = encoder
        self.head = MLP(encoder.num_features, proj_hidden, proj_dim, layers=3)
        self.weights = weights

    def online_modules(self) -> list[nn.Module]:
        return [self.encoder, self.head]

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        maps = encode_views(self.encoder, views, (self.encoder.global_layer,))[0]
        z = gather_batch(torch.stack(global_outputs(self.head, maps, pool=self.encoder.pool)))  # (K, N, D)
        with torch.autocast(views[0].device.type, enabled=False):
            loss = bag_loss(z, *self.weights)
        return loss, {"loss_global": loss.detach()}
