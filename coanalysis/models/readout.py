"""Readouts recorded by the checkpoint: BagSSL's bag of patches as an `Encoder`.

A BagSSL run's image representation is not `forward_global` on the full image (a resolution its
encoder never saw in training) but the mean of the encoder's global vectors over a grid of
`patch_size` patches at stride `stride` (native size, no resize), as the trainer's
`co_ssl_train.methods.bagssl.bag_of_patches` computes it. `BagOfPatchesEncoder` exposes that
readout through the one encoder interface, so every analysis uses it unchanged (on a ViT too: each
patch's global vector is the ViT's own readout, its CLS token, as in training):

- `forward_local(x) -> (B, C, nh, nw)`: the grid of patch representations (the "local map" the
  internal-corruption and redundancy analyses read);
- `forward_global(x) -> (B, C)`: its mean, the bag readout; differentiable, so PGD attacks the bag.

Other layers (`layer=` not the local layer) are the plain encoder's. `load_encoder(readout=...)`
applies it from `meta["representation"]` and records it in `ModelSource.readout`, which is part
of the probe and feature-cache identity.
"""

from __future__ import annotations

from typing import Any

import torch

from coanalysis.models.trainer import Encoder, UserError, patch_features

READOUTS = ("auto", "global", "bag")


def bag_readout_of(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The bag readout `meta.json` records (`{"kind": "bag-of-patches", "patch_size", "stride"}`), or None."""
    rep = meta.get("representation") if isinstance(meta, dict) else None
    if not isinstance(rep, dict) or rep.get("kind") != "bag-of-patches":
        return None
    size = rep.get("patch_size")
    if not isinstance(size, int) or size < 1:
        return None
    stride = rep.get("stride") if isinstance(rep.get("stride"), int) and rep.get("stride") > 0 else max(1, size // 2)
    return {"kind": "bag-of-patches", "patch_size": size, "stride": stride, "feed": "native",
            "source": "meta.json representation"}


class BagOfPatchesEncoder(Encoder):
    """The encoder `plain` read as the mean over its grid of patches (shares its weights)."""

    def __init__(self, plain: Encoder, patch_size: int, stride: int):
        super().__init__(plain.backbone, arch=plain.arch, arch_kwargs=plain.arch_kwargs,
                         mean=plain.mean.flatten().tolist(), std=plain.std.flatten().tolist(),
                         local_layer=plain.local_layer)
        self.plain = plain  # the same weights read plainly (the bagssl analysis feeds it whole images and patches)
        self.patch_size, self.stride = patch_size, stride
        self.readout = {"kind": "bag-of-patches", "patch_size": patch_size, "stride": stride, "feed": "native"}

    def patch_grid(self, x: torch.Tensor) -> torch.Tensor:
        """Images `(B, 3, H, W)` -> patch representations `(B, C, nh, nw)` (the trainer's grid)."""
        h, w = x.shape[-2:]
        if self.patch_size > min(h, w):
            raise UserError(f"the bag readout's patch size {self.patch_size} px exceeds the {h}x{w} input")
        # the plain global vector of each patch (a ViT: its readout), as the trainer's bag
        return patch_features(self.plain, x, self.patch_size, self.stride).permute(0, 3, 1, 2)

    def forward_local(self, x: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        if layer not in (None, self.local_layer):
            return super().forward_local(x, layer)
        return self.patch_grid(x)

    def forward_global(self, x: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        if layer not in (None, self.local_layer):
            return super().forward_local(x, layer).mean(dim=(2, 3))
        return self.patch_grid(x).mean(dim=(2, 3))

    def forward_maps(self, x: torch.Tensor, layers) -> list[torch.Tensor]:
        return [self.forward_local(x, layer) for layer in layers]

    def describe(self) -> dict:
        return {**super().describe(), "readout": self.readout}


def apply_readout(encoder: Encoder, meta: dict[str, Any], readout: str) -> tuple[Encoder, dict[str, Any]]:
    """(the encoder read as `readout` asks, the readout record). `auto`: the bag readout when the
    checkpoint records one, else the plain global one; `global`: always the plain one; `bag`:
    the recorded bag readout, refused when there is none."""
    if readout not in READOUTS:
        raise UserError(f"unknown readout {readout!r}; choose one of: {', '.join(READOUTS)}")
    bag = bag_readout_of(meta)
    if readout == "bag" and bag is None:
        raise UserError("--readout bag needs a checkpoint whose meta.json records a bag-of-patches representation "
                        "(a BagSSL run)")
    if bag is None or readout == "global":
        record = {"kind": "global-average", "source": "default" if bag is None else "--readout global"}
        return encoder, record
    wrapped = BagOfPatchesEncoder(encoder, bag["patch_size"], bag["stride"])
    return wrapped, bag
