"""The CO-SSL local branch, shared by every CO-variant (PROTOCOLS.md section 1).

Each CO-method X adds to X's global objective a local one: the local map of view a (before
pooling; the final stage, or `layer3`), adaptively average-pooled to an `n x n` grid, goes through
local heads applied at every position (1x1-convolution MLPs, see `heads.per_position`), and every
local output is trained with X's own loss against the *global* target of view b, averaged over the
`n^2` positions and symmetrized over the two views. Total `L_g + w_s L_l` (additive) or
`(1 - w_s) L_g + w_s L_l` (convex).

`positions = M` (ours, off by default) computes the local loss at M grid positions drawn each step
instead of all `n^2` (see `LocalBranch.sample`).

Options (the paper's ablations):
- `shared_heads`: the local branch uses the very modules of the global head (one head for both)
  instead of a separately initialized copy of its architecture;
- `mlp_after_pool=False` (our reading of "no MLP after pooling"): the heads run at every position
  of the final map and the global output is the mean of those per-position outputs, so there is
  no head after the pooling; the local outputs are the same per-position outputs (heads shared).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from co_ssl_train.errors import UserError
from co_ssl_train.methods.heads import per_position


@dataclass(frozen=True)
class LocalSettings:
    """The CO-SSL options of one run (see the module docstring)."""

    weight: float = 0.5  # w_s
    form: str = "additive"  # or "convex"
    grid: int = 0  # n; 0 = the map's own size
    layer: str = "layer4"  # stage whose map gives the local vectors
    shared_heads: bool = False
    mlp_after_pool: bool = True
    target: str = "global"  # CO-BYOL: "local" regresses the target's local projection of its pooled map
    positions: int = 0  # M: random grid positions per step; 0 = all n^2

    def to_json(self) -> dict:
        """The settings as meta.json records them (`target` and `positions` only when not the defaults)."""
        return dict(weight=self.weight, form=self.form, grid=self.grid, layer=self.layer,
                    shared_heads=self.shared_heads, mlp_after_pool=self.mlp_after_pool,
                    **({"target": self.target} if self.target != "global" else {}),
                    **({"positions": self.positions} if self.positions else {}))


def local_settings(cfg, co: bool) -> LocalSettings | None:
    """The `LocalSettings` a TrainConfig asks for, or None for a method without a local branch."""
    if not co:
        return None
    return LocalSettings(weight=cfg.local_weight, form=cfg.weight_form, grid=cfg.local_grid, layer=cfg.local_layer,
                         shared_heads=cfg.shared_heads or not cfg.mlp_after_pool, mlp_after_pool=cfg.mlp_after_pool,
                         target=cfg.local_target, positions=cfg.local_positions)


def combine(global_loss: torch.Tensor, local_loss: torch.Tensor, weight: float, form: str) -> torch.Tensor:
    """`L_g + w L_l` (additive) or `(1 - w) L_g + w L_l` (convex)."""
    if form == "convex":
        return (1 - weight) * global_loss + weight * local_loss
    return global_loss + weight * local_loss


def draw_positions(count: int, m: int, device: torch.device) -> torch.Tensor:
    """`m` of the positions `0..count-1`, without replacement, from torch's generator of `device`."""
    return torch.randperm(count, device=device)[:m]


class LocalBranch(nn.Module):
    """Online local heads: `forward(map (B, C, h, w)) -> (n*n, B, D)`.

    `global_head` is the method's online global head (e.g. BYOL's projector then predictor) and
    `make_head(in_dim)` builds a fresh head of the same architecture. With `shared_heads` the branch
    calls `global_head` itself (which needs the local map to have the final map's channels);
    otherwise it owns `make_head(local_channels)`, freshly initialized.
    """

    def __init__(self, global_head: nn.Module, make_head: Callable[[int], nn.Module], local_channels: int,
                 global_channels: int, settings: LocalSettings):
        super().__init__()
        self.settings = settings
        self.shared = settings.shared_heads
        if self.shared and local_channels != global_channels:
            raise UserError(f"shared local/global heads (and --no-mlp-after-pool) need the local map to have the "
                            f"final map's {global_channels} channels, but {settings.layer} has {local_channels}; "
                            "use --local-layer layer4 or separate heads")
        # a shared head stays registered only by the method that owns it
        self._shared_head = [global_head] if self.shared else []
        self.head = None if self.shared else make_head(local_channels)

    def pool(self, local: torch.Tensor) -> torch.Tensor:
        n = self.settings.grid
        return F.adaptive_avg_pool2d(local, n) if n and n != local.shape[-1] else local

    def sample(self, local: torch.Tensor) -> torch.Tensor:
        """`positions` of the grid's `n^2`, drawn without replacement from torch's generator of the map's
        device (saved with the run, so a resumed run draws the same), the same for every image and view
        of the call: as `(B, C, M, 1)`. Every CO-loss is a mean over positions of a per-position loss
        (VICReg's variance and covariance are taken over the batch at one position), so the mean over
        M drawn positions is an unbiased estimate of it; heads with BatchNorm (the ResNet recipes' BYOL,
        SimCLR, MoCo v3, VICReg heads) normalize by the drawn positions' batch statistics, so for them
        it is so only up to those statistics (DINO's ViT head has none)."""
        m, (h, w) = self.settings.positions, local.shape[-2:]
        if not m or m >= h * w:
            return local
        chosen = draw_positions(h * w, m, local.device)
        return local.flatten(2).index_select(2, chosen).unsqueeze(-1)

    def forward(self, local: torch.Tensor) -> torch.Tensor:
        head = self._shared_head[0] if self.shared else self.head
        return per_position(head, self.sample(self.pool(local)))


def local_stage(encoder, layer: str) -> str:
    """The encoder stage `--local-layer` names: itself for ResNets; for a ViT `layer4` is its final
    block (the patch tokens after the final norm, PROTOCOLS.md section 13)."""
    if getattr(encoder, "family", None) != "vit":
        return layer
    if layer != "layer4":
        raise UserError(f"--local-layer {layer} is a ResNet stage; a ViT's local map is its final patch tokens "
                        "(--local-layer layer4)")
    return encoder.final_layer


def attach_local_branch(encoder, global_head: nn.Module, make_head: Callable[[int], nn.Module],
                        settings: LocalSettings | None) -> tuple[tuple[str, ...], LocalBranch | None]:
    """What every method's constructor needs for its CO-variant: the encoder layers to return (the
    global one, i.e. the final map or a ViT's readout, plus the local branch's layer when it differs)
    and the branch (None without CO). On a ViT every patch token (or the n x n pooled grid of them)
    is a local vector, and the local heads are per-token MLPs."""
    if settings is None:
        return (encoder.global_layer,), None
    stage = local_stage(encoder, settings.layer)
    if getattr(encoder, "family", None) == "vit" and not settings.mlp_after_pool:
        raise UserError("--no-mlp-after-pool is a ResNet ablation; a ViT's global representation is its readout "
                        "token, not a pooled map")
    layers = (encoder.global_layer,) + (() if stage == encoder.global_layer else (stage,))
    branch = LocalBranch(global_head, make_head, encoder.backbone.channels[stage], encoder.num_features, settings)
    return layers, branch
