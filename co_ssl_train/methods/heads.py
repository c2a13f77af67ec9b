"""Small head modules shared by the methods: MLPs on vectors and 1x1-conv MLPs on maps."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Sequential):
    """`(B, in) -> (B, out)`: Linear, BatchNorm, ReLU, Linear (BYOL's projector and predictor)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out_dim))


class ConvMLP(nn.Sequential):
    """`(B, in, n, n) -> (B, out, n, n)`: the same MLP applied at every position (1x1 convolutions)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__(nn.Conv2d(in_dim, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
                         nn.Conv2d(hidden, out_dim, 1))
