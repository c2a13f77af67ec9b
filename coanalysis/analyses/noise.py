"""Gaussian-noise robustness (PROTOCOLS.md section 3).

Additive Gaussian noise in pixel space, clipped to [0, 1]; accuracy of the unchanged probe per
sigma. The noise of image i at sigma comes from its own stream seeded by (seed, sigma, i) (the
sigma's value, not its place in the list, so a sigma gets the same noise whatever else is asked
for), so results do not depend on batch size or interruptions. sigma = 0 leaves the
images untouched and equals the clean accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from coanalysis.analyses.context import EvalContext
from coanalysis.data.seeding import per_image_normal
from coanalysis.results.stats import correctness_record

SIGMAS = (0.0, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5)


@dataclass(frozen=True)
class NoiseProtocol:
    sigmas: tuple[float, ...] = SIGMAS
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "sigmas": list(self.sigmas), "space": "pixel, [0, 1]", "clip": [0.0, 1.0],
                "noise_stream": "per image, seeded by (seed, sigma, image position)"}


def cells(protocol: NoiseProtocol) -> list[str]:
    return [f"sigma={s:g}" for s in protocol.sigmas]


def add_noise(x: torch.Tensor, sigma: float, seed: int, condition: int, positions: torch.Tensor) -> torch.Tensor:
    """`clip(x + sigma * eps, 0, 1)` with per-image seeded eps; sigma = 0 returns x itself."""
    if sigma == 0:
        return x
    eps = per_image_normal(tuple(x.shape[1:]), seed, condition, positions).to(x.device, x.dtype)
    return (x + sigma * eps).clamp_(0, 1)


def condition(sigma: float) -> int:
    """The stream index of a sigma: its value in millionths."""
    return int(round(sigma * 1_000_000))


def run_cell(ctx: EvalContext, protocol: NoiseProtocol, key: str) -> dict[str, Any]:
    sigma = protocol.sigmas[cells(protocol).index(key)]
    correct, ids = ctx.correctness(lambda x, pos: add_noise(x, sigma, protocol.seed, condition(sigma), pos))
    n = len(correct)
    return {"sigma": sigma, "accuracy": int(correct.sum()) / max(n, 1), "n": n,
            **correctness_record(correct.numpy(), ids.numpy())}
