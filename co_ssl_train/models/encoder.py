"""The one encoder interface every model in co-ssl exposes, ours or third-party.

Input is RGB in [0, 1]; the mean/std normalization is a buffer inside the encoder, so attacks,
saliency and corruptions all work in pixel space.

- `forward_local(x) -> (B, C, h, w)`: the feature map before global pooling (stage
  `local_layer`, `layer4` unless chosen otherwise);
- `forward_global(x) -> (B, C)`: its average over positions (also `forward`), through the
  backbone's `pooled_head` when it has one (RF-ResNet with `head="mlp"`; `pool` does this step);
- `forward_maps(x, layers)`: several stage maps from one pass (training uses it to get the final
  map for the global branch and the CO-SSL local map, e.g. `layer3`, together).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Encoder(nn.Module):
    """Normalization + backbone. `backbone` needs `forward_features(x, layer)`, `channels`
    (stage name -> C) and `receptive_field(layer)`."""

    def __init__(self, backbone: nn.Module, *, arch: str, arch_kwargs: dict, mean: Sequence[float],
                 std: Sequence[float], local_layer: str = "layer4"):
        super().__init__()
        if local_layer not in backbone.channels:
            raise ValueError(f"unknown layer {local_layer!r}; choose one of {tuple(backbone.channels)}")
        self.backbone = backbone
        self.arch = arch
        self.arch_kwargs = dict(arch_kwargs)
        self.local_layer = local_layer
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def num_features(self) -> int:
        return self.backbone.channels[self.local_layer]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward_local(self, x: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        """Images `(B, 3, H, W)` in [0, 1] -> local map `(B, C, h, w)` of `layer` (default `local_layer`)."""
        return self.backbone.forward_features(self.normalize(x), layer or self.local_layer)

    def forward_global(self, x: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        """Images `(B, 3, H, W)` in [0, 1] -> global representation `(B, C)`, the mean of the local map
        (then the backbone's `pooled_head`, when it has one and `layer` is the final stage)."""
        local = self.forward_local(x, layer)
        return self.pool(local) if (layer or self.local_layer) == self.final_layer else local.mean(dim=(2, 3))

    def pool(self, final_map: torch.Tensor) -> torch.Tensor:
        """The final stage's map `(B, C, h, w)` -> the global representation `(B, C)`: its mean over
        positions, then the backbone's `pooled_head` when it has one."""
        pooled = final_map.mean(dim=(2, 3))
        head = getattr(self.backbone, "pooled_head", None)
        return pooled if head is None else head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_global(x)

    @property
    def final_layer(self) -> str:
        """The backbone's last stage (the map the global representation of a trained model pools)."""
        return list(self.backbone.channels)[-1]

    @property
    def global_layer(self) -> str:
        """The layer whose pooled map is the global representation in training (a ViT: its readout)."""
        return self.final_layer

    def forward_maps(self, x: torch.Tensor, layers: Sequence[str]) -> list[torch.Tensor]:
        """Images `(B, 3, H, W)` in [0, 1] -> the maps `(B, C_l, h_l, w_l)` of `layers`, one backbone pass
        when the backbone has `forward_stages` (every co-ssl backbone does)."""
        x = self.normalize(x)
        stages = getattr(self.backbone, "forward_stages", None)
        if stages is not None:
            return stages(x, tuple(layers))
        return [self.backbone.forward_features(x, layer) for layer in layers]

    def receptive_field(self, layer: str | None = None) -> int | None:
        """Analytic receptive field (px) of one local vector, or None when the backbone cannot say."""
        fn = getattr(self.backbone, "receptive_field", None)
        return fn(layer or self.local_layer) if fn is not None else None

    def normalization(self) -> dict:
        return {"mean": [round(v, 6) for v in self.mean.flatten().tolist()],
                "std": [round(v, 6) for v in self.std.flatten().tolist()]}

    def describe(self) -> dict:
        """The JSON-ready identity of this encoder's architecture."""
        return {"arch": self.arch, "arch_kwargs": self.arch_kwargs, "local_layer": self.local_layer,
                "normalization": self.normalization(), "num_features": self.num_features,
                "receptive_field": self.receptive_field()}
