"""Intervals of the corruption summaries (PROTOCOLS §4, §11), torch-free: mean accuracy over the
standard cells and mCE, by resampling the same images in every cell (one index matrix), paired
between two models measured on the same images."""

from __future__ import annotations

from typing import Any

import numpy as np

from coanalysis.results import stats
from coanalysis.results.derived.corruptions import STANDARD, parse_key


def _standard_cells(cells: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: c for k, c in cells.items() if k != "clean" and c.get("accuracy") is not None
            and parse_key(k)[0] in STANDARD}


def _matrix(cells: dict[str, dict[str, Any]], keys: list[str]) -> np.ndarray | None:
    rows = [stats.cell_correctness(cells[k]) for k in keys]
    if not rows or any(r is None for r in rows) or len({r.shape for r in rows}) != 1 \
            or len({cells[k].get("images") for k in keys}) != 1:
        return None
    return np.stack(rows)


def mean_accuracy_interval(cells: dict[str, dict[str, Any]]) -> tuple[float, float] | None:
    """95% image-bootstrap interval of the mean accuracy over the standard cells (None without
    per-image records, or when the cells do not share their images)."""
    keys = sorted(_standard_cells(cells))
    m = _matrix(cells, keys)
    return None if m is None else stats.bootstrap_interval(m.mean(axis=0))


def mean_accuracy_difference(cells: dict[str, dict[str, Any]],
                             reference: dict[str, dict[str, Any]]) -> tuple[float, tuple[float, float] | None]:
    """(mean accuracy − the reference's over the standard cells both have, paired 95% interval)."""
    keys = sorted(set(_standard_cells(cells)) & set(_standard_cells(reference)))
    a, b = _matrix(cells, keys), _matrix(reference, keys)
    plain = float(np.mean([cells[k]["accuracy"] - reference[k]["accuracy"] for k in keys])) if keys else float("nan")
    if a is None or b is None or a.shape != b.shape or cells[keys[0]].get("images") != reference[keys[0]].get("images"):
        return plain, None
    d, lo, hi = stats.paired_difference(a.mean(axis=0), b.mean(axis=0))
    return d, (lo, hi)


def mce_interval(cells: dict[str, dict[str, Any]],
                 reference: dict[str, dict[str, Any]]) -> tuple[float, float] | None:
    """95% interval of mCE against a reference model on the same images: both models' errors are
    resampled with the same images, CE_c = Σ_s err(c, s) / Σ_s err_ref(c, s), mCE their mean."""
    keys = sorted(set(_standard_cells(cells)) & set(_standard_cells(reference)))
    a, b = _matrix(cells, keys), _matrix(reference, keys)
    if a is None or b is None or a.shape != b.shape:
        return None
    both = stats.joint_resampled_means(np.concatenate([a, b]))  # same images for both models
    err_a, err_b = 1 - both[:len(keys)], 1 - both[len(keys):]
    ces = []
    for corruption in sorted({parse_key(k)[0] for k in keys}):
        rows = [i for i, k in enumerate(keys) if parse_key(k)[0] == corruption]
        denominator = err_b[rows].sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ces.append(err_a[rows].sum(axis=0) / denominator)
    mce = np.mean(ces, axis=0)
    mce = mce[np.isfinite(mce)]
    return stats.percentile_interval(mce) if len(mce) else None
