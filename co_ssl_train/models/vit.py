"""Vision Transformers: timm's `VisionTransformer` behind co-ssl's one encoder interface.

`ViT` is timm's `VisionTransformer` itself (a subclass without a classifier head), so its
parameters have timm's names (`cls_token`, `reg_token`, `pos_embed`, `patch_embed.proj.*`,
`blocks.i.{norm1,attn.qkv,attn.proj,ls1,norm2,mlp.fc1,mlp.fc2,ls2}.*`, `norm.*`, `fc_norm.*`) and
a timm ViT state dict (without `head.*`) loads as it is. Attention is timm's, which calls
`torch.nn.functional.scaled_dot_product_attention` (fused kernels on GPU).

The encoder interface (PROTOCOLS.md section 13):
- `forward_local(x) -> (B, C, H/p, W/p)`: the patch tokens after the final norm, without the
  class, register or distillation tokens, as a map (stage `blocks.<depth-1>`; an earlier block
  `blocks.i` gives that block's tokens through the same final norm, as DINOv2's
  `get_intermediate_layers(norm=True)`);
- `forward_global(x) -> (B, C)` (or `(B, 2C)` for `cls+avg`): the readout, `cls` (the class token
  after the final norm), `avg` (the mean of the patch tokens, through `fc_norm` when the model has
  one) or `cls+avg` (both, concatenated, as DINO's linear evaluation of ViT-S does). Default
  (`readout=None`): `cls`, or `avg` for a model without class token or with `fc_norm` (MAE
  fine-tuned, iBOT mean pooling, timm's avg-pool models).
- Inputs of another size than `img_size` resample the position embedding of the patch grid
  (timm's `resample_abs_pos_embed`: bicubic, antialiased; `dynamic_img_size=True`);
  `position_embedding(size)` says what was done.
- `forward_pre_readout` / `readout_tokens`: what token dropout (section 13) needs: the tokens that
  enter the last block, and the readout of a subset of patch tokens, with the dropped ones left
  out of the last block's attention.
"""

from __future__ import annotations

from typing import Sequence

import torch
from timm.layers import DropPath, SwiGLUPacked
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from co_ssl_train.models.encoder import Encoder
from co_ssl_train.models.vit_spec import MLPS, READOUTS, SIZES  # noqa: F401 (SIZES: re-exported)

READOUT_LAYER = "readout"  # the pseudo-layer `forward_maps` answers with the global readout as a (B, C, 1, 1) map


class ViT(VisionTransformer):
    """timm's VisionTransformer without a head, with co-ssl's backbone protocol: `channels`,
    `forward_features(x, layer)`, `forward_stages(x, layers)`, `receptive_field(layer)` (None: a
    patch token sees the whole image). Arch options (all JSON values, stored in meta.json):
    patch_size, img_size (the trained grid), embed_dim, depth, num_heads, mlp_ratio, mlp
    (gelu | swiglu, DINOv2 ViT-g), class_token, reg_tokens, no_embed_class (the position
    embedding skips the prefix tokens), init_values (layer scale; None: none), fc_norm, qkv_bias,
    readout."""

    def __init__(self, *, patch_size: int = 16, img_size: int = 224, embed_dim: int = 384, depth: int = 12,
                 num_heads: int = 6, mlp_ratio: float = 4.0, mlp: str = "gelu", class_token: bool = True,
                 reg_tokens: int = 0, no_embed_class: bool = False, init_values: float | None = None,
                 fc_norm: bool = False, qkv_bias: bool = True, readout: str | None = None):
        if mlp not in MLPS:
            raise ValueError(f"mlp must be one of {MLPS}, got {mlp!r}")
        readout = readout or ("cls" if class_token and not fc_norm else "avg")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        if "cls" in readout and not class_token:
            raise ValueError(f"readout {readout!r} needs a class token (class_token=False)")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not a multiple of num_heads {num_heads}")
        swiglu = {"mlp_layer": SwiGLUPacked, "act_layer": nn.SiLU} if mlp == "swiglu" else {}
        super().__init__(img_size=img_size, patch_size=patch_size, num_classes=0,
                         global_pool="avg" if readout == "avg" else "token", embed_dim=embed_dim, depth=depth,
                         num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, init_values=init_values,
                         class_token=class_token, no_embed_class=no_embed_class, reg_tokens=reg_tokens,
                         fc_norm=fc_norm, dynamic_img_size=True, **swiglu)
        self.patch = patch_size
        self.img_size = img_size
        self.readout = readout
        self.channels = {f"blocks.{i}": embed_dim for i in range(depth)}

    # ---- tokens

    def grid(self, x: torch.Tensor) -> tuple[int, int]:
        """The patch grid `(h, w)` of images `x (B, 3, H, W)`."""
        return x.shape[-2] // self.patch, x.shape[-1] // self.patch

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images `(B, 3, H, W)` -> tokens `(B, prefix + h*w, C)` entering the first block."""
        return self.norm_pre(self.patch_drop(self._pos_embed(self.patch_embed(x))))

    def _index(self, layer: str) -> int:
        if layer not in self.channels:
            raise ValueError(f"unknown layer {layer!r}; choose one of blocks.0 .. blocks.{len(self.blocks) - 1}")
        return int(layer.split(".")[1])

    def to_map(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Tokens `(B, T, C)` -> patch-token map `(B, C, h, w)` (prefix tokens left out)."""
        patches = tokens[:, self.num_prefix_tokens:]
        return patches.transpose(1, 2).reshape(patches.shape[0], patches.shape[2], *grid)

    def forward_tokens(self, x: torch.Tensor, layers: Sequence[str]) -> list[torch.Tensor]:
        """Normalized images -> the tokens `(B, T, C)` after each of `layers`, through the final norm."""
        wanted = {self._index(layer) for layer in layers}
        x = self.embed(x)
        out = {}
        for i, block in enumerate(self.blocks[: max(wanted) + 1]):
            x = block(x)
            if i in wanted:
                out[i] = self.norm(x)
        return [out[self._index(layer)] for layer in layers]

    def forward_features(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """Normalized images -> the patch-token map `(B, C, h, w)` of `layer`."""
        return self.to_map(self.forward_tokens(x, (layer,))[0], self.grid(x))

    def forward_stages(self, x: torch.Tensor, layers: Sequence[str]) -> list[torch.Tensor]:
        grid = self.grid(x)
        return [self.to_map(t, grid) for t in self.forward_tokens(x, layers)]

    def receptive_field(self, layer: str | None = None) -> None:
        return None  # self-attention: every token sees the whole image

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth for training: block i drops its two residual branches per sample with
        probability `rate * i / (depth - 1)` in train mode (timm's and DINO's linear rule; kept
        samples are scaled by 1 / keep). Eval mode and `rate=0` are the plain forward. No parameters."""
        rates = torch.linspace(0, rate, len(self.blocks)).tolist()
        for block, r in zip(self.blocks, rates):
            block.drop_path1 = DropPath(r) if r > 0 else nn.Identity()
            block.drop_path2 = DropPath(r) if r > 0 else nn.Identity()

    # ---- readouts

    def read_out(self, tokens: torch.Tensor, readout: str | None = None,
                 keep: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens after the final norm `(B, T, C)` -> global `(B, C)` (`(B, 2C)` for cls+avg).

        `keep` `(B, k)`: indices of the patch tokens the mean is taken over (all when None)."""
        readout = readout or self.readout
        parts = []
        if "cls" in readout:
            parts.append(tokens[:, 0])
        if "avg" in readout:
            patches = tokens[:, self.num_prefix_tokens:]
            if keep is not None:
                patches = patches.gather(1, keep[:, :, None].expand(-1, -1, patches.shape[2]))
            parts.append(self.fc_norm(patches.mean(dim=1)))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def forward_pre_readout(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images -> tokens `(B, T, C)` entering the last block."""
        x = self.embed(x)
        for block in self.blocks[:-1]:
            x = block(x)
        return x

    def readout_tokens(self, tokens: torch.Tensor, keep: torch.Tensor | None = None,
                       readout: str | None = None) -> torch.Tensor:
        """Tokens entering the last block `(B, T, C)` -> global `(B, C')`, with only the patch tokens
        `keep (B, k)` (indices into the patches) present in the last block's attention."""
        if keep is not None:
            prefix, patches = tokens[:, : self.num_prefix_tokens], tokens[:, self.num_prefix_tokens:]
            patches = patches.gather(1, keep[:, :, None].expand(-1, -1, patches.shape[2]))
            tokens = torch.cat([prefix, patches], dim=1)
        return self.read_out(self.norm(self.blocks[-1](tokens)), readout)


def build_vit(size: str | None):
    """The ARCHS builder of a named size (width, depth and heads preset) or of the free `vit`."""

    def build(**kwargs) -> ViT:
        if size is not None:
            width, depth, heads = SIZES[size]
            kwargs = {"embed_dim": width, "depth": depth, "num_heads": heads, **kwargs}
        return ViT(**kwargs)

    return build


class ViTEncoder(Encoder):
    """Normalization + `ViT`. The readout is the backbone's (`arch_kwargs["readout"]`) unless
    `readout` is set (coanalysis's `--global`)."""

    family = "vit"

    def __init__(self, backbone: ViT, *, arch: str, arch_kwargs: dict, mean: Sequence[float],
                 std: Sequence[float], local_layer: str | None = None, readout: str | None = None):
        super().__init__(backbone, arch=arch, arch_kwargs=arch_kwargs, mean=mean, std=std,
                         local_layer=local_layer or f"blocks.{len(backbone.blocks) - 1}")
        if readout is not None and readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        if readout is not None and "cls" in readout and not backbone.has_class_token:
            raise ValueError(f"readout {readout!r} needs a class token; this ViT has none (use avg)")
        self.readout = readout or backbone.readout

    @property
    def num_features(self) -> int:
        return self.backbone.embed_dim

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth of rate `rate` in the blocks (training only; see `ViT.set_drop_path`)."""
        self.backbone.set_drop_path(rate)

    @property
    def global_features(self) -> int:
        """Width of `forward_global`'s output (2C for cls+avg)."""
        return self.backbone.embed_dim * (2 if self.readout == "cls+avg" else 1)

    def forward_local(self, x: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        """Images `(B, 3, H, W)` in [0, 1] -> patch-token map `(B, C, H/p, W/p)` of `layer`."""
        return self.backbone.forward_features(self.normalize(x), layer or self.local_layer)

    def forward_global(self, x: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        """Images `(B, 3, H, W)` in [0, 1] -> the readout `(B, C)` of `layer`'s tokens."""
        tokens = self.backbone.forward_tokens(self.normalize(x), (layer or self.local_layer,))[0]
        return self.backbone.read_out(tokens, self.readout)

    @property
    def global_layer(self) -> str:
        """What training asks `forward_maps` for to get the global representation: the readout."""
        return READOUT_LAYER

    def forward_maps(self, x: torch.Tensor, layers: Sequence[str]) -> list[torch.Tensor]:
        """Images in [0, 1] -> the patch-token maps `(B, C, h, w)` of `layers`, one pass; the layer
        `"readout"` gives the global readout as a `(B, C', 1, 1)` map (so pooling it is the identity;
        co-ssl-train's methods pool the map of `global_layer`)."""
        x = self.normalize(x)
        names = [self.final_layer if layer == READOUT_LAYER else layer for layer in layers]
        grid = self.backbone.grid(x)
        tokens = self.backbone.forward_tokens(x, names)
        return [self.backbone.read_out(t, self.readout)[:, :, None, None] if layer == READOUT_LAYER
                else self.backbone.to_map(t, grid) for layer, t in zip(layers, tokens)]

    def forward_local_global(self, x: torch.Tensor, layer: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [0, 1] -> (patch-token map `(B, C, h, w)`, readout `(B, C')`) of `layer`, from one pass."""
        tokens = self.backbone.forward_tokens(self.normalize(x), (layer or self.local_layer,))[0]
        return self.backbone.to_map(tokens, self.backbone.grid(x)), self.backbone.read_out(tokens, self.readout)

    def forward_pre_readout(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] -> tokens `(B, T, C)` entering the last block (token dropout starts here)."""
        return self.backbone.forward_pre_readout(self.normalize(x))

    def readout_tokens(self, tokens: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens entering the last block -> global features, only the patch tokens `keep` attended to."""
        return self.backbone.readout_tokens(tokens, keep, self.readout)

    def pool_map(self, maps: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Final patch-token map `(B, C, h, w)` -> the mean over the positions `keep (B, k)` (all when
        None), through `fc_norm` when the model has one: the `avg` readout of a subset of tokens."""
        patches = maps.flatten(2).transpose(1, 2)
        if keep is not None:
            patches = patches.gather(1, keep[:, :, None].expand(-1, -1, patches.shape[2]))
        return self.backbone.fc_norm(patches.mean(dim=1))

    @property
    def num_prefix_tokens(self) -> int:
        return self.backbone.num_prefix_tokens

    def position_embedding(self, size: tuple[int, int] | int) -> str:
        """What happens to the position embedding at input size `size` (H, W) px."""
        h, w = (size, size) if isinstance(size, int) else size
        trained = tuple(self.backbone.patch_embed.grid_size)
        grid = (h // self.backbone.patch, w // self.backbone.patch)
        if grid == trained:
            return f"as trained ({trained[0]}x{trained[1]} patches)"
        return (f"resampled {trained[0]}x{trained[1]} -> {grid[0]}x{grid[1]} patches "
                "(timm resample_abs_pos_embed, bicubic, antialias)")

    def describe(self) -> dict:
        b = self.backbone
        return {**super().describe(), "family": "vit", "patch_size": b.patch, "img_size": b.img_size,
                "prefix_tokens": b.num_prefix_tokens, "register_tokens": b.num_reg_tokens,
                "class_token": b.has_class_token, "readout": self.readout, "global_features": self.global_features}
