"""`ReportData`: every stored result of one or more results folders, indexed by model and analysis.

The report is rendered from this alone; no model or dataset is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coanalysis.figures import model_colors
from coanalysis.loading import UserError
from coanalysis.results import Result, ResultsStore


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
        for folder in folders:
            if not Path(folder).is_dir():
                raise UserError(f"results folder {folder} does not exist; run an analysis command with --out {folder} first")
            store = ResultsStore(folder)
            for result in store.results():
                name = result.model["name"]
                models.setdefault(name, store.models().get(name, result.model))
                results[(name, result.analysis)] = result
        if not results:
            raise UserError(f"no results found in {', '.join(map(str, folders))}; run coanalysis probe or "
                            "robustness with --out DIR first")
        if baseline is not None and baseline not in models:
            raise UserError(f"--baseline {baseline!r} is not among the models: {', '.join(models)}")
        order = sorted(models)
        if baseline is not None:
            order = [baseline] + [m for m in order if m != baseline]
        return cls({m: models[m] for m in order}, results, baseline, [str(f) for f in folders])

    @property
    def names(self) -> list[str]:
        return list(self.models)

    @property
    def colors(self) -> dict:
        return model_colors(self.names)

    def of(self, analysis: str) -> list[Result]:
        """The results of `analysis`, one per model that has it, in model order."""
        return [self.results[(m, analysis)] for m in self.names if (m, analysis) in self.results]

    def reference(self) -> str:
        """The model differences are taken against: `--baseline`, else the first model."""
        return self.baseline or self.names[0]
