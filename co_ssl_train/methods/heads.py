"""Small head modules shared by the methods, and `per_position`, which applies any vector head at
every position of a map (the CO-SSL local heads).

A Linear layer applied to each position's vector is a 1x1 convolution, and BatchNorm1d over the
flattened `(B * h * w, C)` vectors computes the same statistics as BatchNorm2d over `(B, C, h, w)`;
so `per_position(MLP(...), map)` is exactly the paper's "MLP of 1x1 convolutions", and the same
module can also serve as a shared global/local head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Sequential):
    """`(N, in) -> (N, out)`: `layers` Linear layers with BatchNorm + ReLU between them.

    `layers=2` is BYOL's projector and predictor; `last_bn=True` adds a BatchNorm without affine
    parameters at the end (MoCo v3's projector). `bn=False`: Linear + GELU without BatchNorm between
    the layers (DINO's ViT head, `use_bn_in_head=False`), so every sample's output is its own.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int = 2, last_bn: bool = False,
                 bn: bool = True):
        modules: list[nn.Module] = []
        dim = in_dim
        for _ in range(layers - 1):
            modules += ([nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)] if bn
                        else [nn.Linear(dim, hidden), nn.GELU()])
            dim = hidden
        modules.append(nn.Linear(dim, out_dim, bias=not last_bn))
        if last_bn:
            modules.append(nn.BatchNorm1d(out_dim, affine=False))
        super().__init__(*modules)


class DINOHead(nn.Module):
    """DINO's head: MLP to a bottleneck, l2-normalization, then a weight-normalized linear layer to
    `prototypes` logits, weight `g * v / ||v||` per row (DINO's `weight_norm` last layer). With
    `norm_last_layer=True` (DINO's default) g is fixed at 1, so the rows keep unit norm and there is no
    `prototypes_g` parameter; with False, `prototypes_g (prototypes, 1)` is trained from 1 (decayed like
    DINO's `weight_g`, a 2-d tensor). `(N, in) -> (N, prototypes)`; `bn=False` as DINO's ViT head."""

    def __init__(self, in_dim: int, hidden: int, bottleneck: int, prototypes: int, layers: int = 3, bn: bool = True,
                 norm_last_layer: bool = True):
        super().__init__()
        self.mlp = MLP(in_dim, hidden, bottleneck, layers=layers, bn=bn)
        self.prototypes = nn.Parameter(torch.empty(prototypes, bottleneck))  # v: the rows' directions
        nn.init.trunc_normal_(self.prototypes, std=0.02)
        self.register_parameter("prototypes_g", None if norm_last_layer else nn.Parameter(torch.ones(prototypes, 1)))

    def last_layer_weight(self) -> torch.Tensor:
        """The prototype layer's weight `(prototypes, bottleneck)`: `g * v / ||v||` row by row."""
        weight = F.normalize(self.prototypes, dim=-1)
        return weight if self.prototypes_g is None else weight * self.prototypes_g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(self.mlp(x), dim=-1), self.last_layer_weight())


def per_position(head: nn.Module, local: torch.Tensor) -> torch.Tensor:
    """Apply a vector head `(N, C) -> (N, D)` at every position of `local` `(B, C, h, w)`.

    Returns `(h * w, B, D)`: positions first, so losses written for `(B, D)` batches broadcast over
    them. With channels_last maps the flattening is free.
    """
    b, c, h, w = local.shape
    out = head(local.permute(0, 2, 3, 1).reshape(b * h * w, c))
    return out.view(b, h * w, -1).transpose(0, 1)
