"""Derived numbers of the common-corruptions analysis (PROTOCOLS.md section 4), from stored cells.

Mean accuracy over the standard cells, corruption error `CE_c = sum_s err(c, s) / sum_s
err_ref(c, s)` over the severities both have, and `mCE`, the mean CE over the 15 standard
corruptions. The reference is AlexNet on ImageNet-C (published per-severity errors, keyed by
corruption name) or any baseline checkpoint's stored cells. The robustness command and the
report use them; torch-free.
"""

from __future__ import annotations

from typing import Any

from coanalysis.results.corruption_names import SEVERITIES, STANDARD

# AlexNet top-1 error on ImageNet-C per corruption and severity 1..5, from Hendrycks & Dietterich,
# "Benchmarking Neural Network Robustness to Common Corruptions and Perturbations" (ICLR 2019), the
# reference of their mCE. The per-severity values are as tabulated in timm (`timm.utils`,
# `imagenetc_alexnet_error_rates_list`); their means are the per-corruption constants used by
# mmpretrain (`get_ce_alexnet`: gaussian_noise 0.886428, ..., jpeg_compression 0.606500), which a
# test checks. Keyed by name, never by list position.
ALEXNET_ERRORS: dict[str, tuple[float, float, float, float, float]] = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
}
ALEXNET = "AlexNet (ImageNet-C, Hendrycks & Dietterich 2019)"


def cell_key(corruption: str, severity: int) -> str:
    return f"{corruption}/{severity}"


def parse_key(key: str) -> tuple[str, int]:
    corruption, severity = key.split("/")
    return corruption, int(severity)


def errors(result_cells: dict[str, dict]) -> dict[str, dict[int, float]]:
    """corruption -> {severity: top-1 error} of the cells that ran (missing ones left out)."""
    out: dict[str, dict[int, float]] = {}
    for key, cell in result_cells.items():
        if key == "clean" or cell.get("accuracy") is None:
            continue
        c, s = parse_key(key)
        out.setdefault(c, {})[s] = 1.0 - cell["accuracy"]
    return out


def alexnet_errors() -> dict[str, dict[int, float]]:
    return {c: dict(zip(SEVERITIES, errs)) for c, errs in ALEXNET_ERRORS.items()}


def corruption_errors(model: dict[str, dict[int, float]],
                      reference: dict[str, dict[int, float]]) -> dict[str, float]:
    """`CE_c = sum_s err(c, s) / sum_s err_ref(c, s)` over the severities both have, per corruption."""
    out = {}
    for c, errs in model.items():
        shared = sorted(set(errs) & set(reference.get(c, {})))
        denominator = sum(reference[c][s] for s in shared)
        if shared and denominator > 0:
            out[c] = sum(errs[s] for s in shared) / denominator
    return out


def mean_corruption_error(ce: dict[str, float]) -> tuple[float | None, int]:
    """(mCE over the standard corruptions present, how many of the 15 there are)."""
    values = [ce[c] for c in STANDARD if c in ce]
    return (sum(values) / len(values) if values else None), len(values)


def mean_standard_accuracy(result_cells: dict[str, dict]) -> tuple[float | None, int]:
    """(mean accuracy over the standard corruption cells that ran, how many there are)."""
    values = [cell["accuracy"] for key, cell in result_cells.items()
              if key != "clean" and cell.get("accuracy") is not None and parse_key(key)[0] in STANDARD]
    return (sum(values) / len(values) if values else None), len(values)


def missing_cells(result_cells: dict[str, dict]) -> list[str]:
    return [key for key, cell in result_cells.items() if cell.get("missing")]


def summarize(result_cells: dict[str, dict], reference_cells: dict[str, dict] | None = None,
              reference_name: str | None = None) -> dict[str, Any]:
    """Mean accuracy, CE per corruption and mCE against a baseline's cells and, on ImageNet (1000
    classes), against AlexNet; plus the missing cells and undecodable files."""
    mean, count = mean_standard_accuracy(result_cells)
    clean = result_cells.get("clean", {})
    out: dict[str, Any] = {"clean_accuracy": clean.get("accuracy"), "mean_accuracy": mean, "standard_cells": count,
                           "missing": missing_cells(result_cells),
                           "undecodable": sum(c.get("undecodable_count", 0) for c in result_cells.values())}
    own = errors(result_cells)
    if reference_cells is not None:
        ce = corruption_errors(own, errors(reference_cells))
        out["ce"] = ce
        out["mce"], out["mce_corruptions"] = mean_corruption_error(ce)
        out["reference"] = reference_name
    if clean.get("num_classes") == 1000:
        ce = corruption_errors(own, alexnet_errors())
        out["ce_alexnet"] = ce
        out["mce_alexnet"], _ = mean_corruption_error(ce)
    return out
