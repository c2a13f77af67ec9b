"""Internal corruption of the local representations (PROTOCOLS.md section 5).

The local map `L (N, C, h, w)` of each evaluation image is computed once; each cell corrupts it
before the global pooling and classifies with the unchanged probe:
- `spatial p=...`: drop a random fraction p of the h*w positions (keep `h*w - round(p*h*w)`, at
  least one); the global vector is the mean of the kept positions. `p=1-1/hw` keeps one position.
- `channel p=...`: zero `round(p*C)` random channels and rescale the map by `1 / (1 - p)` (ours,
  recorded in every cell);
- `noise alpha=...`: add Gaussian noise of std `alpha x` the per-channel std of the clean maps
  (over images and positions of the evaluation subset).
Each cell draws `masks` independent masks (default 5) and reports every accuracy with their mean
and std (ddof 1). The mask of image i comes from its own stream seeded by (seed, cell, mask index,
image position), so results do not depend on batch size. p = 0 and alpha = 0 leave the map as it
is and pool it exactly as the encoder does, so they equal the clean accuracy.
"""

from __future__ import annotations

import statistics
import zlib
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from coanalysis.analyses.context import EvalContext
from coanalysis.data.seeding import image_seed
from coanalysis.results.stats import correctness_record

SINGLE = "1-1/hw"  # the spatial p that keeps a single position
SPATIAL_PS: tuple[float | str, ...] = (0.0, 0.25, 0.5, 0.75, 0.9, SINGLE)
CHANNEL_PS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 0.9)
NOISE_ALPHAS: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class DropoutProtocol:
    spatial_ps: tuple[float | str, ...] = SPATIAL_PS
    channel_ps: tuple[float, ...] = CHANNEL_PS
    noise_alphas: tuple[float, ...] = NOISE_ALPHAS
    masks: int = 5
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "spatial_ps": list(self.spatial_ps), "channel_ps": list(self.channel_ps),
                "noise_alphas": list(self.noise_alphas),
                "spatial": "keep h*w - round(p*h*w) random positions (at least 1); global = their mean",
                "channel": "zero round(p*C) random channels, rescale by 1/(1-p)",
                "noise": "alpha x per-channel std of the clean maps (all images and positions)",
                "std": "over masks, ddof 1", "mask_stream": "per image, seeded by (seed, cell, mask, position)"}


def _value(v: float | str) -> str:
    return v if isinstance(v, str) else f"{v:g}"


def cells(protocol: DropoutProtocol) -> list[str]:
    return ([f"spatial p={_value(p)}" for p in protocol.spatial_ps]
            + [f"channel p={_value(p)}" for p in protocol.channel_ps]
            + [f"noise alpha={_value(a)}" for a in protocol.noise_alphas])


def parse_key(key: str) -> tuple[str, float | str]:
    kind, setting = key.split(" ", 1)
    text = setting.split("=", 1)[1]
    return kind, text if text == SINGLE else float(text)


def kept_positions(p: float | str, positions: int) -> int:
    """How many of `positions` map positions spatial dropout at `p` keeps (at least one)."""
    if p == SINGLE:
        return 1
    return min(positions, max(1, positions - round(float(p) * positions)))


def _per_image_normal(shape: tuple[int, ...], seed: int, condition: int, positions: torch.Tensor,
                      device: torch.device) -> torch.Tensor:
    """`(B, *shape)` standard normal noise on `device`, one seeded stream per image position."""
    out = torch.empty((len(positions), *shape), device=device)
    g = torch.Generator(device=device)
    for row, pos in enumerate(positions.tolist()):
        g.manual_seed(image_seed(seed, condition, pos))
        out[row] = torch.randn(shape, generator=g, device=device)
    return out


def _per_image_subsets(total: int, size: int, seed: int, condition: int, positions: torch.Tensor) -> torch.Tensor:
    """`(B, size)` indices: a random `size`-subset of range(total) per image, from its own stream."""
    g = torch.Generator()
    rows = []
    for pos in positions.tolist():
        g.manual_seed(image_seed(seed, condition, pos))
        rows.append(torch.randperm(total, generator=g)[:size])
    return torch.stack(rows)


def spatial_pooling(p: float | str, seed: int, condition: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Pooling `(maps (B, C, h, w), positions (B,)) -> (B, C)`: the mean of the kept positions."""

    def pool(maps: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        b, c, h, w = maps.shape
        keep = kept_positions(p, h * w)
        if keep == h * w:
            return maps.mean(dim=(2, 3))  # exactly Encoder.forward_global
        idx = _per_image_subsets(h * w, keep, seed, condition, positions).to(maps.device)
        kept = maps.flatten(2).gather(2, idx[:, None, :].expand(b, c, keep))
        return kept.mean(dim=2)

    return pool


def channel_pooling(p: float, seed: int, condition: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Zero `round(p*C)` channels per image, rescale by `1/(1-p)`, then average over positions."""

    def pool(maps: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        if p == 0:
            return maps.mean(dim=(2, 3))
        b, c = maps.shape[:2]
        mask = torch.ones(b, c, device=maps.device)
        dropped = round(p * c)
        if dropped:
            idx = _per_image_subsets(c, dropped, seed, condition, positions).to(maps.device)
            mask.scatter_(1, idx, 0.0)
        return (maps * (mask / (1.0 - p)).to(maps.dtype)[:, :, None, None]).mean(dim=(2, 3))

    return pool


def noise_pooling(alpha: float, channel_std: torch.Tensor, seed: int,
                  condition: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Add `alpha * channel_std[c] * N(0, 1)` to every map entry, then average over positions."""

    def pool(maps: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        if alpha == 0:
            return maps.mean(dim=(2, 3))
        noise = _per_image_normal(tuple(maps.shape[1:]), seed, condition, positions, maps.device)
        return (maps.float() + alpha * channel_std.to(maps.device)[None, :, None, None] * noise).mean(dim=(2, 3))

    return pool


def channel_std(maps: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Per-channel std `(C,)` of maps `(N, C, h, w)` over images and positions (float64 sums, in chunks)."""
    total = torch.zeros(maps.shape[1], dtype=torch.float64, device=maps.device)
    squares = torch.zeros_like(total)
    for start in range(0, len(maps), chunk):
        x = maps[start:start + chunk].double()
        total += x.sum(dim=(0, 2, 3))
        squares += (x * x).sum(dim=(0, 2, 3))
    count = maps.shape[0] * maps.shape[2] * maps.shape[3]
    var = (squares - total * total / count) / max(count - 1, 1)
    return var.clamp_min(0).sqrt().float()


def describe(kind: str, value: float | str, shape: tuple[int, ...], std: torch.Tensor | None) -> dict[str, Any]:
    """The setting fields of a cell on maps of `shape` `(N, C, h, w)` (`std`: the per-channel std,
    for noise cells); shared with `token_dropout`."""
    _, c, h, w = shape
    if kind == "spatial":
        cell: dict[str, Any] = {"kind": kind, "p": value if value == SINGLE else float(value), "positions": h * w,
                                "kept_positions": kept_positions(value, h * w)}
        if value == SINGLE:
            cell["p_value"] = 1 - 1 / (h * w)
        return cell
    if kind == "channel":
        return {"kind": kind, "p": float(value), "channels": c, "dropped_channels": round(float(value) * c),
                "scale": 1.0 / (1.0 - float(value))}
    return {"kind": kind, "alpha": float(value), "mean_channel_std": float(std.mean())}


def summarize_masks(rows: list[torch.Tensor], ids: torch.Tensor) -> dict[str, Any]:
    """Accuracy fields from per-image correctness `(n,)` per mask: every mask's accuracy, their
    mean (from the counts, so equal counts give exactly the clean accuracy) and std (ddof 1), and
    the per-image record with one row per mask (its interval resamples masks and images)."""
    n = len(rows[0]) if rows else 0
    accuracies = [int(r.sum()) / max(n, 1) for r in rows]
    mean = sum(int(r.sum()) for r in rows) / max(len(rows) * n, 1)
    return {"accuracies": accuracies, "mean": mean, "accuracy": mean, "n": n, "masks": len(rows),
            "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            **correctness_record(torch.stack(rows).numpy(), ids.numpy())}


def run_cell(ctx: EvalContext, protocol: DropoutProtocol, key: str) -> dict[str, Any]:
    kind, value = parse_key(key)
    maps = ctx.local_maps(on_device=True).maps
    if kind == "noise" and ctx.map_channel_std is None:
        ctx.map_channel_std = channel_std(maps)
    cell = describe(kind, value, tuple(maps.shape), ctx.map_channel_std)
    rows = []
    for mask in range(protocol.masks):
        condition = zlib.crc32(f"{key}#{mask}".encode())
        if kind == "spatial":
            pool = spatial_pooling(value, protocol.seed, condition)
        elif kind == "channel":
            pool = channel_pooling(float(value), protocol.seed, condition)
        else:
            pool = noise_pooling(float(value), ctx.map_channel_std, protocol.seed, condition)
        rows.append(ctx.correctness_from_maps(pool))
    return {**cell, **summarize_masks(rows, ctx.local_maps(on_device=True).indices)}
