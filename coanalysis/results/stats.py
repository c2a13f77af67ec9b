"""Uncertainty of findings (PROTOCOLS.md section 11), torch-free: image bootstrap, paired
differences, seed groups and the wording of a finding.

- Per-image correctness is stored in each result cell as packed bits (`correctness_record`),
  with a digest of the evaluated images' dataset indices in order, so two models' cells can be
  paired only when they saw the same images in the same order (`same_images`).
- `bootstrap_interval`: the 95% percentile interval of the mean over images (default 1 000
  resamples, seed 0: recorded beside the interval). Resampling is vectorized and never calls a
  model: multinomial counts of the distinct per-image values where few occur (correctness), else
  one `(R, n)` index matrix. Values may be `(n,)` (one draw per image) or `(m, n)` (m
  masks/draws per image: masks are resampled too).
- `paired_difference`: the difference of two models' means on the same images, resampling the
  same image indices for both.
- `t_interval`: mean ± sd over seeds and the t-interval of the mean (training noise).
- `finding`: one sentence that states a difference, its interval, n and seeds, and uses
  comparative words only when the interval excludes 0.
"""

from __future__ import annotations

import base64
import math
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95


def bootstrap_protocol(resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    return {"method": "percentile bootstrap over images", "resamples": resamples, "seed": seed, "level": LEVEL}


def pack_bits(correct: np.ndarray) -> str:
    """Booleans `(n,)` -> base64 text of their packed bits (n / 8 bytes)."""
    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode("ascii")


def unpack_bits(text: str, n: int) -> np.ndarray:
    """`pack_bits` inverted: base64 text -> booleans `(n,)`."""
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8), count=n).astype(bool)


def images_digest(ids: Sequence[int] | np.ndarray) -> str:
    """crc32 (hex) of the evaluated images' dataset indices in order: equal digests, same images."""
    return f"{zlib.crc32(np.asarray(ids, dtype=np.int64).tobytes()):08x}"


def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n), dtype=np.int32 if n < 2**31 else np.int64)


def _resampled_row_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """`(m, R)` means of each row of `values` `(m, n)` over the same images resampled with
    replacement. A resample needs only how often it picks each distinct column of values, so when
    few distinct columns occur (per-image correctness: 2 for one row, at most 2^m for m masks;
    k/76 levels for a mean over corruption cells) it draws those counts (`counted_row_means`),
    in O(R K) instead of gathering an `(R, n)` index matrix (`indexed_row_means`)."""
    columns, inverse = np.unique(values.T, axis=0, return_inverse=True)
    if len(columns) * 8 <= values.shape[1]:
        return counted_row_means(columns, inverse.reshape(-1), resamples, seed)
    return indexed_row_means(values, resamples, seed)


def counted_row_means(columns: np.ndarray, inverse: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Resampled row means from the distinct columns `(K, m)` and each image's column index:
    counts ~ Multinomial(n, column frequencies), the distribution of n draws with replacement."""
    n = len(inverse)
    freq = np.bincount(inverse, minlength=len(columns)) / n
    counts = np.random.default_rng(seed).multinomial(n, freq, size=resamples)  # (R, K)
    return (counts @ columns.astype(np.float64)).T / n


def indexed_row_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Resampled row means through one `(R, n)` matrix of image indices shared by all rows."""
    n = values.shape[1]
    idx = _indices(n, resamples, seed)
    if values.dtype == bool or np.isin(values, (0, 1)).all():
        small = values.astype(np.uint8)  # gather bytes and count (3x faster than gathering float64)
        return np.stack([row[idx].sum(axis=1, dtype=np.int64) / n for row in small])
    return np.stack([row[idx].mean(axis=1) for row in values.astype(np.float64)])


def resampled_means(values: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """`(R,)` means of `values` over images resampled with replacement (and over rows, for `(m, n)`
    values: each resample also draws m rows with replacement, from its own stream)."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[None]
    m = values.shape[0]
    per_row = _resampled_row_means(values, resamples, seed)  # (m, R)
    if m == 1:
        return per_row[0]
    rows = np.random.default_rng(seed + 1).integers(0, m, size=(resamples, m))
    return per_row[rows, np.arange(resamples)[:, None]].mean(axis=1)


def joint_resampled_means(matrix: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """`(cells, R)` means of each row of `matrix` `(cells, n)` over the same resampled images (one
    draw of images for all rows), for statistics across cells such as mean accuracy or mCE."""
    return _resampled_row_means(np.asarray(matrix, dtype=np.float64), resamples, seed)


def percentile_interval(samples: np.ndarray) -> tuple[float, float]:
    alpha = (1 - LEVEL) / 2
    lo, hi = np.quantile(samples, [alpha, 1 - alpha])
    return float(lo), float(hi)


def bootstrap_interval(values: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    """The 95% percentile interval of the mean of `values` `(n,)` or `(m, n)` over images."""
    if np.asarray(values).size == 0:
        return float("nan"), float("nan")
    return percentile_interval(resampled_means(values, resamples, seed))


def correctness_record(correct: np.ndarray, ids: Sequence[int] | np.ndarray, *, resamples: int = RESAMPLES,
                       seed: int = SEED) -> dict[str, Any]:
    """The fields a cell stores for its per-image correctness `(n,)` or `(m, n)` (m masks):
    packed bits, the images' digest, the bootstrap interval of the accuracy and its protocol."""
    correct = np.asarray(correct, dtype=bool)
    rows = correct if correct.ndim == 2 else correct[None]
    lo, hi = bootstrap_interval(correct, resamples, seed)
    return {"correct": [pack_bits(r) for r in rows] if correct.ndim == 2 else pack_bits(correct),
            "images": images_digest(ids), "interval": [lo, hi], "bootstrap": bootstrap_protocol(resamples, seed)}


def cell_correctness(cell: dict[str, Any]) -> np.ndarray | None:
    """Per-image correctness of a stored cell as floats `(n,)` or `(m, n)`; None when the cell
    predates per-image records (result schema < 3) or holds none."""
    packed, n = cell.get("correct"), cell.get("n")
    if packed is None or not isinstance(n, int):
        return None
    if isinstance(packed, list):
        return np.stack([unpack_bits(p, n) for p in packed]).astype(np.float64)
    return unpack_bits(packed, n).astype(np.float64)


def same_images(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two cells were measured on the same images in the same order (pairable)."""
    return a.get("images") is not None and a.get("images") == b.get("images") and a.get("n") == b.get("n")


def per_image(values: np.ndarray) -> np.ndarray:
    """`(n,)` per-image means of `(n,)` or `(m, n)` values (the paired bootstrap resamples images only)."""
    values = np.asarray(values, dtype=np.float64)
    return values if values.ndim == 1 else values.mean(axis=0)


def paired_difference(a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES,
                      seed: int = SEED) -> tuple[float, float, float]:
    """(mean(a) − mean(b), 95% interval) with the same resampled images for both; `a`, `b` `(n,)`
    or `(m, n)` per-image values on the same images in the same order."""
    a, b = per_image(a), per_image(b)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same images, got {a.shape} and {b.shape}")
    diff = a - b
    lo, hi = bootstrap_interval(diff, resamples, seed)
    return float(diff.mean()), lo, hi


TWO_LEVEL_RESAMPLES = 2000


def two_level_bootstrap(a: Sequence[np.ndarray], b: Sequence[np.ndarray], *,
                        resamples: int = TWO_LEVEL_RESAMPLES, seed: int = SEED) -> tuple[float, float, float]:
    """Effect and 95% interval of mean-over-seeds(a) − mean-over-seeds(b) (PROTOCOLS §15).

    `a`, `b`: one per-image value array `(n,)` per run (seed) of each group, every run on the same
    n images in the same order (e.g. correctness bits, or per-image claim statistics). Each
    resample draws seeds with replacement within each group, then one draw of n images with
    replacement used for every chosen run, and recomputes the effect; the interval is the
    percentile interval of those effects. Returns (effect, lo, hi) in the values' units.
    """
    runs_a = np.stack([per_image(x) for x in a])  # (sa, n)
    runs_b = np.stack([per_image(x) for x in b])  # (sb, n)
    if runs_a.shape[1] != runs_b.shape[1]:
        raise ValueError(f"two-level bootstrap needs the same images, got {runs_a.shape[1]} and {runs_b.shape[1]}")
    n = runs_a.shape[1]
    effect = float(runs_a.mean() - runs_b.mean())
    rng = np.random.default_rng(seed)
    effects = np.empty(resamples)
    for r in range(resamples):
        pick_a = rng.integers(0, len(runs_a), len(runs_a))
        pick_b = rng.integers(0, len(runs_b), len(runs_b))
        # counts of each image in one draw of n with replacement: the same images for every run
        weights = np.bincount(rng.integers(0, n, n), minlength=n) / n
        effects[r] = runs_a[pick_a].mean(axis=0) @ weights - runs_b[pick_b].mean(axis=0) @ weights
    lo, hi = percentile_interval(effects)
    return effect, lo, hi


# two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom (then the normal's 1.96)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_quantile(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` >= 1 degrees of freedom (1.96 beyond 30)."""
    return _T975[df - 1] if df <= len(_T975) else 1.96


@dataclass(frozen=True)
class SeedSummary:
    """Mean ± sd over a group's seeds and the 95% t-interval of the mean (None with one seed)."""

    mean: float
    sd: float | None
    interval: tuple[float, float] | None
    seeds: int

    def text(self, scale: float = 100.0, digits: int = 1) -> str:
        if self.seeds < 2:
            return f"{self.mean * scale:.{digits}f} (1 seed)"
        lo, hi = self.interval
        note = "; 2 seeds: a wide interval" if self.seeds == 2 else ""
        return (f"{self.mean * scale:.{digits}f} ± {self.sd * scale:.{digits}f} "
                f"[{lo * scale:.{digits}f}, {hi * scale:.{digits}f}] ({self.seeds} seeds{note})")


def t_interval(values: Sequence[float]) -> SeedSummary:
    """Mean, sd (ddof 1) and the t-interval of the mean of per-seed values."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return SeedSummary(float(x.mean()) if len(x) else float("nan"), None, None, len(x))
    sd = float(x.std(ddof=1))
    half = t_quantile(len(x) - 1) * sd / math.sqrt(len(x))
    return SeedSummary(float(x.mean()), sd, (float(x.mean()) - half, float(x.mean()) + half), len(x))


def fmt_n(n: int | None) -> str:
    return "?" if n is None else f"{int(n):,}".replace(",", "\u202f")


def seeds_text(seeds: int) -> str:
    """'one seed: training noise not measured' or 'k seeds'."""
    return "one seed: training noise not measured" if seeds < 2 else f"{seeds} seeds"


def finding(name: str, reference: str, diff: float, interval: tuple[float, float] | None, *, what: str,
            n: int | None, seeds: int = 1, quantity: str = "accuracy", unit: str = "points", scale: float = 100.0,
            note: str = "") -> str:
    """A finding: `name` against `reference` by `diff` (a fraction, shown ×`scale` in `unit`) at
    condition `what`, with its 95% interval, n images and the number of seeds per model.

    Comparative words only when the interval excludes 0; without an interval (older results) the
    sentence says the difference has no interval and ranks nothing."""
    d = diff * scale
    parts = [f"n = {fmt_n(n)}", seeds_text(seeds)] + ([note] if note else [])
    if interval is None or any(math.isnan(v) for v in interval):
        return (f"{name} − {reference}: {d:+.1f} {unit} {quantity} at {what} (no per-image record: interval "
                f"unknown, so no ranking; {', '.join(parts)}).")
    lo, hi = interval[0] * scale, interval[1] * scale
    ci = f"95% CI [{lo:+.1f}, {hi:+.1f}]"
    if lo > 0 or hi < 0:
        word = "higher" if d > 0 else "lower"
        return (f"{name} has {abs(d):.1f} {unit} {word} {quantity} than {reference} at {what} "
                f"({ci}, {', '.join(parts)}).")
    return (f"{name} − {reference} at {what}: {d:+.1f} {unit} {quantity}, within noise ({ci} contains 0, "
            f"{', '.join(parts)}).")
