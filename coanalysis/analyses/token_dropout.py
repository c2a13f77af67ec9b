"""Internal corruption of a Vision Transformer's patch tokens (PROTOCOLS.md sections 5 and 13).

The cells, masks and seeds are those of `dropout` (the same keys, the same per-image streams, so
a position dropped in a CNN's map is the token dropped in a ViT's grid); what differs is where the
corruption acts and how the global vector is read out:
- CLS readouts (`cls`, `cls+avg`): the patch tokens that *enter the last block* are corrupted;
  spatial dropout leaves the dropped tokens out of the last block, i.e. out of its attention
  (exactly an attention mask on them), and the class token (and the mean, for `cls+avg`) is read
  after the final norm from the kept tokens;
- mean readouts (`avg`): the final patch tokens (the local map) are corrupted and averaged over
  the kept ones, through `fc_norm` when the model has one;
- channel dropout and feature noise act on the same patch tokens as for CNNs (zero `round(p*C)`
  channels and rescale by 1/(1-p); Gaussian noise of std alpha x the per-channel std of the clean
  tokens); prefix tokens (class, registers) are never corrupted (ours, recorded).
p = 0 and alpha = 0 reproduce the encoder's own forward, so they equal the clean accuracy.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import torch

from coanalysis.analyses import dropout
from coanalysis.analyses.dropout import (_per_image_normal, _per_image_subsets, channel_std, describe, kept_positions,
                                         parse_key, summarize_masks)
from coanalysis.analyses.context import EvalContext
from coanalysis.features.extraction import autocast, to_input


@dataclass(frozen=True)
class TokenState:
    """The patch tokens corruption acts on, as maps `(N, C, h, w)` on the device, the prefix tokens
    `(N, P, C)` (CLS readouts only), labels `(N,)` and positions `(N,)` on the CPU."""

    maps: torch.Tensor
    prefix: torch.Tensor | None
    labels: torch.Tensor
    positions: torch.Tensor


def applies(ctx: EvalContext) -> bool:
    return getattr(ctx.encoder, "family", None) == "vit"


def _uses_cls(ctx: EvalContext) -> bool:
    return "cls" in ctx.encoder.readout


@torch.no_grad()
def token_state(ctx: EvalContext) -> TokenState:
    """Computed once per context, in the batches `accuracy` uses (kept in `ctx.vit_tokens`)."""
    if ctx.vit_tokens is None:
        if not _uses_cls(ctx):
            local = ctx.local_maps(on_device=True)
            ctx.vit_tokens = TokenState(local.maps, None, local.labels, local.positions)
        else:
            enc, maps, prefix, labels, positions = ctx.encoder, [], [], [], []
            for images, y, pos in ctx.data.batches(ctx.batch_size, ctx.workers):
                x = to_input(images, ctx.device)
                with autocast(ctx.device, ctx.precision):
                    tokens = enc.forward_pre_readout(x)
                prefix.append(tokens[:, : enc.num_prefix_tokens])
                maps.append(enc.backbone.to_map(tokens, enc.backbone.grid(x)))
                labels.append(y)
                positions.append(pos)
            ctx.vit_tokens = TokenState(torch.cat(maps), torch.cat(prefix), torch.cat(labels), torch.cat(positions))
    return ctx.vit_tokens


def _corrupt(kind: str, value: float | str, maps: torch.Tensor, positions: torch.Tensor, seed: int, condition: int,
             std: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(corrupted maps `(B, C, h, w)`, kept positions `(B, k)` or None for all)."""
    b, c, h, w = maps.shape
    if kind == "spatial":
        keep = kept_positions(value, h * w)
        if keep == h * w:
            return maps, None
        return maps, _per_image_subsets(h * w, keep, seed, condition, positions).to(maps.device)
    if kind == "channel":
        p = float(value)
        if p == 0:
            return maps, None
        mask = torch.ones(b, c, device=maps.device)
        dropped = round(p * c)
        if dropped:
            mask.scatter_(1, _per_image_subsets(c, dropped, seed, condition, positions).to(maps.device), 0.0)
        return maps * (mask / (1.0 - p)).to(maps.dtype)[:, :, None, None], None
    alpha = float(value)
    if alpha == 0:
        return maps, None
    noise = _per_image_normal((c, h, w), seed, condition, positions, maps.device)
    return (maps.float() + alpha * std.to(maps.device)[None, :, None, None] * noise).to(maps.dtype), None


@torch.no_grad()
def _correctness(ctx, state: TokenState, kind: str, value: float | str, seed: int, condition: int,
                 std: torch.Tensor | None) -> torch.Tensor:
    """Per-image correctness `(n,)` bool under one mask."""
    enc, correct = ctx.encoder, []
    for start in range(0, len(state.labels), ctx.batch_size):
        chunk = slice(start, start + ctx.batch_size)
        with autocast(ctx.device, ctx.precision):
            maps, keep = _corrupt(kind, value, state.maps[chunk], state.positions[chunk], seed, condition, std)
            if state.prefix is None:
                features = enc.pool_map(maps, keep)
            else:
                tokens = torch.cat([state.prefix[chunk], maps.flatten(2).transpose(1, 2)], dim=1)
                features = enc.readout_tokens(tokens, keep)
        correct.append(ctx.probe(features.float()).argmax(1).cpu() == state.labels[chunk])
    return torch.cat(correct) if correct else torch.zeros(0, dtype=torch.bool)


def run_cell(ctx, protocol, key: str) -> dict[str, Any]:
    """One `dropout` cell on a ViT (same keys and fields, plus where the corruption acted)."""
    kind, value = parse_key(key)
    state = token_state(ctx)
    where = "patch tokens entering the last block (dropped ones out of its attention)" if state.prefix is not None \
        else "final patch tokens (mean readout over the kept ones)"
    std = None
    if kind == "noise":
        if ctx.vit_token_std is None:
            ctx.vit_token_std = channel_std(state.maps)
        std = ctx.vit_token_std
    cell = {**describe(kind, value, tuple(state.maps.shape), std), "family": "vit", "readout": ctx.encoder.readout,
            "corrupted": where}
    rows = [_correctness(ctx, state, kind, value, protocol.seed, zlib.crc32(f"{key}#{mask}".encode()), std)
            for mask in range(protocol.masks)]
    return {**cell, **summarize_masks(rows, ctx.data.indices[state.positions])}


def run_any_cell(ctx, protocol, key: str) -> dict[str, Any]:
    """The `dropout` analysis for either family: this module's cell for a ViT, `dropout.run_cell` otherwise."""
    return run_cell(ctx, protocol, key) if applies(ctx) else dropout.run_cell(ctx, protocol, key)
