"""`ReportData`: every stored result of one or more results folders, indexed by model and analysis.

The report is rendered from this alone; no model or dataset is loaded. Models are ordered with
the baseline first, then by name; colours follow the names (`model_colors`), so they do not
change with the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coanalysis.figures.style import hex_color, model_colors
from coanalysis.models.trainer_io import UserError
from coanalysis.report.findings import seed_groups, seeds_of
from coanalysis.results.store import Result, ResultsStore


@dataclass
class ReportData:
    models: dict[str, dict[str, Any]]  # name -> model.json (ordered: baseline first)
    results: dict[tuple[str, str], Result]  # (model, analysis) -> result
    baseline: str | None
    folders: list[str]

    @classmethod
    def from_folders(cls, folders: list[Path], baseline: str | None = None) -> "ReportData":
        models: dict[str, dict] = {}
        results: dict[tuple[str, str], Result] = {}
        origin: dict[str, tuple[str, str | None]] = {}  # model -> (folder, content hash)
        for folder in folders:
            if not Path(folder).is_dir():
                raise UserError(f"results folder {folder} does not exist; run an analysis command with "
                                f"--out {folder} first")
            store = ResultsStore(folder)
            stored_models = store.models()
            for result in store.results():
                name = result.model["name"]
                digest = result.model.get("content_hash")
                seen = origin.setdefault(name, (str(folder), digest))
                if seen[1] != digest:
                    raise UserError(f"two different checkpoints are both named {name!r} (in {seen[0]} and {folder}); "
                                    "re-run one of them with --name to tell them apart")
                models.setdefault(name, stored_models.get(name, result.model))
                results[(name, result.analysis)] = result
        if not results:
            raise UserError(f"no results found in {', '.join(map(str, folders))}; run coanalysis probe or "
                            "robustness with --out DIR first")
        if baseline is not None and baseline not in models:
            raise UserError(f"--baseline {baseline!r} is not among the models: {', '.join(sorted(models))}")
        order = sorted(models)
        if baseline is not None:
            order = [baseline] + [m for m in order if m != baseline]
        return cls({m: models[m] for m in order}, results, baseline, [str(f) for f in folders])

    @property
    def names(self) -> list[str]:
        return list(self.models)

    @property
    def colors(self) -> dict:
        """name -> RGB in [0, 1]; one colour per model for every figure."""
        return model_colors(self.names)

    @property
    def hex_colors(self) -> dict[str, str]:
        return {name: hex_color(rgb) for name, rgb in self.colors.items()}

    @property
    def groups(self) -> dict[str, list[str]]:
        """seed group label -> member model names (`findings.seed_groups`); figures draw groups of
        two or more as the mean over seeds with its ±1 sd spread."""
        return seed_groups(self.models)

    @property
    def seeds(self) -> dict[str, int]:
        """model name -> seeds in its group (checkpoints whose configs differ only in seed)."""
        return seeds_of(self.models)

    def of(self, analysis: str) -> list[Result]:
        """The results of `analysis`, one per model that has it, in model order."""
        return [self.results[(m, analysis)] for m in self.names if (m, analysis) in self.results]

    def missing(self, analysis: str) -> list[str]:
        """Models without a result of `analysis`."""
        return [m for m in self.names if (m, analysis) not in self.results]

    def reference(self) -> str:
        """The model differences are taken against: `--baseline`, else the first model."""
        return self.baseline or self.names[0]

    def label(self, name: str) -> str:
        """`name`, marked '(baseline)' when it is the reference of a multi-model report."""
        return f"{name} (baseline)" if len(self.models) > 1 and name == self.reference() else name
