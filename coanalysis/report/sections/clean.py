"""Section 2: clean accuracy of the two readouts, linear probe and kNN, side by side for all models."""

from __future__ import annotations

from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import Section, Table, pct


def build(data: ReportData) -> Section | None:
    probes = data.of("probe")
    if not probes:
        return None
    ks = list(dict.fromkeys(k for r in probes for cell in r.cells.values() for k in cell.get("knn", {})))
    rows, temperatures = [], set()
    for r in probes:
        for cell in r.cells.values():
            d = cell.get("data", {})
            knn = cell.get("knn", {})
            if cell.get("knn_protocol"):
                temperatures.add(cell["knn_protocol"].get("temperature"))
            rows.append([r.model["name"], r.model.get("format", "?"), pct(cell["accuracy"])]
                        + [pct(knn.get(k)) for k in ks]
                        + [f"{d.get('dataset', '?')} {d.get('split', '?')}", str(cell.get("n")),
                           pct(r.summary.get("train_accuracy")), f"{r.summary.get('weight_decay', '–')}",
                           str(r.summary.get("n_train", "–"))])
    knn_text = (f" kNN: cosine similarity to the training features, the k nearest vote with weight exp(cos / T), "
                f"T = {', '.join(f'{t:g}' for t in sorted(temperatures))} (PROTOCOLS §2).") if ks else ""
    return Section("clean", "Clean accuracy", intro="Readouts on frozen global features, fitted on the training "
                   "split: a linear probe (logistic regression, weight decay chosen on a held-out 10% of the "
                   "training features) and a weighted kNN." + knn_text,
                   tables=[Table(["model", "format", "probe top-1 (%)"] + [f"kNN {k} top-1 (%)" for k in ks]
                                 + ["evaluated on", "n", "probe train top-1 (%)", "weight decay", "n train"], rows,
                                 "Top-1 accuracy of each readout on the same evaluation images (n per row).")])
