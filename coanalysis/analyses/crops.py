"""Parts versus whole: accuracy on random crops (PROTOCOLS.md section 7).

Each evaluation image is replaced by a random crop covering a fraction s of its area, resized
back to the input size, and classified with the unchanged probe. The crop keeps the image's
aspect ratio (ours: sides `round(sqrt(s) * H)` x `round(sqrt(s) * W)`), sits at a uniformly random
position drawn from the image's own stream seeded by (seed, s, image position), and is resized
bilinearly (align_corners=False). s = 1 leaves the images untouched
and equals the clean accuracy. Models trained with different minimum crop ratios c_min are
compared in the report (their training c_min is read from the checkpoint's config).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from coanalysis.analyses.context import EvalContext
from coanalysis.data.seeding import per_image_generator
from coanalysis.results.stats import correctness_record

SCALES = (1.0, 0.5, 0.25, 0.1)


@dataclass(frozen=True)
class CropProtocol:
    scales: tuple[float, ...] = SCALES
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "scales": list(self.scales),
                "crop": "aspect ratio of the image, sides round(sqrt(s) * side), uniform position",
                "resize": "bilinear back to the input size", "crop_stream": "per image, seeded by (seed, s, position)"}


def cells(protocol: CropProtocol) -> list[str]:
    return [f"scale={s:g}" for s in protocol.scales]


def _condition(scale: float) -> int:
    return int(round(scale * 1_000_000))


def crop_side(scale: float, side: int) -> int:
    return min(side, max(1, round(scale ** 0.5 * side)))


def random_crops(x: torch.Tensor, scale: float, seed: int, positions: torch.Tensor) -> torch.Tensor:
    """Float images `(B, 3, H, W)` -> one random crop of area fraction `scale` per image, resized
    back to `(B, 3, H, W)`; `scale` = 1 returns `x` itself."""
    b, _, h, w = x.shape
    ch, cw = crop_side(scale, h), crop_side(scale, w)
    if (ch, cw) == (h, w):
        return x
    corners = []
    for pos in positions.tolist():
        g = per_image_generator(seed, _condition(scale), pos)
        corners.append((int(torch.randint(0, h - ch + 1, (1,), generator=g)),
                        int(torch.randint(0, w - cw + 1, (1,), generator=g))))
    top, left = torch.tensor(corners, device=x.device).unbind(1)
    rows = (top[:, None] + torch.arange(ch, device=x.device))[:, :, None]  # (B, ch, 1)
    cols = (left[:, None] + torch.arange(cw, device=x.device))[:, None, :]  # (B, 1, cw)
    crops = x.permute(0, 2, 3, 1)[torch.arange(b, device=x.device)[:, None, None], rows, cols]  # (B, ch, cw, 3)
    out = torch.nn.functional.interpolate(crops.permute(0, 3, 1, 2), size=(h, w), mode="bilinear",
                                          align_corners=False)
    return out.clamp_(0, 1)


def run_cell(ctx: EvalContext, protocol: CropProtocol, key: str) -> dict[str, Any]:
    scale = protocol.scales[cells(protocol).index(key)]
    correct, ids = ctx.correctness(lambda x, pos: random_crops(x, scale, protocol.seed, pos))
    n, side = len(correct), ctx.data.info.image_size
    return {"scale": scale, "accuracy": int(correct.sum()) / max(n, 1), "n": n, "crop_side": crop_side(scale, side),
            "image_size": side, **correctness_record(correct.numpy(), ids.numpy())}
