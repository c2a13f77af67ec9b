"""Section 2: clean accuracy of the linear probe."""

from __future__ import annotations

from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import Section, Table, pct


def build(data: ReportData) -> Section | None:
    probes = data.of("probe")
    if not probes:
        return None
    rows = []
    for r in probes:
        for key, cell in r.cells.items():
            d = cell.get("data", {})
            rows.append([r.model["name"], pct(cell["accuracy"]), f"{d.get('dataset', '?')} {d.get('split', '?')}",
                         str(cell.get("n")), pct(r.summary.get("train_accuracy")),
                         f"{r.summary.get('weight_decay', '–')}"])
    return Section("clean", "Clean accuracy", intro="Linear probe on frozen global features (PROTOCOLS §2): "
                   "L-BFGS logistic regression, weight decay chosen on a held-out 10% of the training split.",
                   tables=[Table(["model", "probe top-1 (%)", "evaluated on", "n", "train top-1 (%)",
                                  "weight decay"], rows)])
