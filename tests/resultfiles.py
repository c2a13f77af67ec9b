"""Writers of small results folders with known numbers, for report tests.

The report is rendered from results JSON alone, so these folders are real inputs: each model
gets a `model.json`, a probe result and (optionally) a noise result whose accuracies are given
by the test, written through `ResultsStore` exactly as the pipeline writes them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from coanalysis.results import stats
from coanalysis.results.store import Result, ResultsStore

ENV = {"versions": {"co-ssl": "0.1.0", "torch": "2.15.0"}, "device": "cpu: test, 2 threads"}
DATA = {"dataset": "synthetic", "split": "test", "n": 10000, "subset_seed": 0, "image_size": 32}


def model_record(name: str, method: str = "byol") -> dict[str, Any]:
    digest = hashlib.sha256(name.encode()).hexdigest()
    return {"path": f"/runs/{name}", "format": "co-ssl-run", "content_hash": digest, "name": name, "arch": "resnet10",
            "arch_kwargs": {"stem": "cifar", "width": 8}, "method": method, "dataset": "synthetic", "input_size": 32,
            "epoch": 1, "notes": [], "config": {"method": method, "dataset": "synthetic", "epochs": 1, "lr": 0.5,
                                                "batch_size": 32, "seed": 0},
            "parameters": 77352, "num_features": 64, "receptive_field": 49}


def probe_result(model: dict[str, Any], accuracy: float) -> Result:
    return Result(analysis="probe", model=model, protocol={"seed": 0, "train_data": {**DATA, "split": "train"}},
                  cells={"test:n=10000:seed=0": {"accuracy": accuracy, "n": 10000, "data": DATA}}, environment=ENV,
                  wall_time_s=3.0, complete=True, expected_cells=1,
                  summary={"train_accuracy": 0.95, "weight_decay": 0.001})


def correct_record(accuracy: float, n: int) -> dict[str, Any]:
    """Per-image fields of a cell with accuracy `accuracy` on images 0..n-1: the first
    round(accuracy n) images of one fixed order are correct, so a higher accuracy is correct on a
    superset of the images of a lower one (known paired differences)."""
    import numpy as np

    correct = np.zeros(n, dtype=bool)
    correct[np.random.default_rng(0).permutation(n)[:round(accuracy * n)]] = True
    return stats.correctness_record(correct, np.arange(n))


def noise_result(model: dict[str, Any], accuracies: dict[float, float], expected: int | None = None,
                 per_image: bool = True) -> Result:
    """A noise result with accuracy `accuracies[sigma]` (fractions) per sigma, with per-image
    records (`correct_record`) unless `per_image` is False (a schema-2 style result)."""
    sigmas = sorted(accuracies)
    cells = {f"sigma={s:g}": {"sigma": s, "accuracy": a, "n": 10000, "wall_time_s": 1.0,
                              **(correct_record(a, 10000) if per_image else {})}
             for s, a in sorted(accuracies.items())}
    return Result(analysis="noise", model=model, protocol={"sigmas": sigmas, "seed": 0, "data": DATA,
                                                             "precision": "fp32"},
                  cells=cells, environment=ENV, wall_time_s=float(len(cells)),
                  complete=expected is None or expected == len(cells), expected_cells=expected or len(cells))


def write_results(folder: Path, noise: dict[str, dict[float, float] | None],
                  clean: dict[str, float] | None = None) -> Path:
    """A results folder: for each model a probe result (clean accuracy, default 0.9) and, unless
    `noise[name]` is None, a noise result with those accuracies."""
    store = ResultsStore(folder)
    for name, accuracies in noise.items():
        model = model_record(name, "co-byol" if "co" in name else "byol")
        store.save_model(model)
        store.save(probe_result(model, (clean or {}).get(name, 0.9)))
        if accuracies is not None:
            store.save(noise_result(model, accuracies))
    return folder
