"""Section 2: clean accuracy of the two readouts, linear probe and kNN, side by side for all
models, with 95% image-bootstrap intervals, paired differences against the reference, and the
seed groups (checkpoints whose configs differ only in seed) with mean ± sd over seeds."""

from __future__ import annotations

from coanalysis.results import stats
from coanalysis.report.data import ReportData
from coanalysis.report.findings import group_difference, seed_groups
from coanalysis.report.sections.base import Section, Table, pct, pct_ci


def _cell(result) -> dict:
    return next(iter(result.cells.values()), {}) if result is not None else {}


def _knn_cell(cell: dict, k: str) -> dict | None:
    if k not in cell.get("knn", {}):
        return None
    return {"accuracy": cell["knn"][k], **(cell.get("knn_correct") or {}).get(k, {})}


VIT_READOUTS = {"cls": "class token", "avg": "mean of patch tokens", "cls+avg": "class token + mean of patch tokens"}


def _readout(result) -> str:
    """What the probe read: a BagSSL bag, a ViT's readout token(s) (PROTOCOLS section 13), or a CNN's
    global average of the local map."""
    readout = result.model.get("readout") or {}
    if readout.get("kind") == "bag-of-patches":
        return f"bag of {readout['patch_size']} px patches, stride {readout['stride']}"
    if result.model.get("family") == "vit":
        kind = result.model.get("global_readout")
        return VIT_READOUTS.get(kind, f"ViT readout {kind}")
    return "global average"


def _findings(data: ReportData, probes) -> list[str]:
    ref = data.reference()
    by = {r.model["name"]: _cell(r) for r in probes}
    lines = []
    for name, cell in by.items():
        if name == ref or ref not in by:
            continue
        other = by[ref]
        a, b = stats.cell_correctness(cell), stats.cell_correctness(other)
        if a is not None and b is not None and stats.same_images(cell, other):
            d, lo, hi = stats.paired_difference(a, b)
            interval = (lo, hi)
        else:
            d, interval = cell["accuracy"] - other["accuracy"], None
        lines.append(stats.finding(name, ref, d, interval, what="clean images", n=cell.get("n"),
                                   seeds=min(data.seeds.get(name, 1), data.seeds.get(ref, 1)),
                                   quantity="linear-probe top-1"))
    return lines


def _groups_table(data: ReportData, probes) -> tuple[Table | None, list[str]]:
    groups = seed_groups(data.models)
    accuracy = {r.model["name"]: _cell(r).get("accuracy") for r in probes}
    rows, lines = [], []
    summaries = {}
    for group, members in groups.items():
        values = [accuracy[m] for m in members if accuracy.get(m) is not None]
        if not values:
            continue
        summaries[group] = values
        rows.append([group, ", ".join(members), str(len(values)), stats.t_interval(values).text()])
    ref_group = next((g for g, members in groups.items() if data.reference() in members), None)
    for group, values in summaries.items():
        if group == ref_group or ref_group not in summaries or len(values) < 2 or len(summaries[ref_group]) < 2:
            continue
        d, interval = group_difference(values, summaries[ref_group])
        lines.append(stats.finding(group, ref_group, d, interval, what="clean images (mean over seeds, t-interval)",
                                   n=None, seeds=min(len(values), len(summaries[ref_group])),
                                   quantity="linear-probe top-1"))
    caption = ("Checkpoints whose recorded training configs differ only in seed form one group (or share a --group "
               "name). Probe top-1 (%): mean ± sd over seeds [95% t-interval of the mean] — the training noise the "
               "image bootstrap does not measure; a group of one seed has no interval.")
    return Table(["group", "checkpoints", "seeds", "probe top-1 (%)"], rows, caption, name="seed-groups",
                 title="Seed groups"), lines


def build(data: ReportData) -> Section | None:
    probes = data.of("probe")
    if not probes:
        return None
    ks = list(dict.fromkeys(k for r in probes for cell in r.cells.values() for k in cell.get("knn", {})))
    rows, temperatures = [], set()
    for r in probes:
        for cell in r.cells.values():
            d = cell.get("data", {})
            if cell.get("knn_protocol"):
                temperatures.add(cell["knn_protocol"].get("temperature"))
            rows.append([r.model["name"], r.model.get("format", "?"), _readout(r), pct_ci(cell)]
                        + [pct_ci(_knn_cell(cell, k)) for k in ks]
                        + [f"{d.get('dataset', '?')} {d.get('split', '?')}", str(cell.get("n")),
                           str(data.seeds.get(r.model["name"], 1)),
                           pct(r.summary.get("train_accuracy")), f"{r.summary.get('weight_decay', '–')}",
                           str(r.summary.get("n_train", "–"))])
    classes = next((c.get("num_classes") for r in data.of("corruptions") for c in r.cells.values()
                    if c.get("num_classes")), None)
    chance = f" Chance level: {100 / classes:.1f}% (1 / {classes} classes; PROTOCOLS §12)." if classes else ""
    knn_text = (f" kNN: cosine similarity to the training features, the k nearest vote with weight exp(cos / T), "
                f"T = {', '.join(f'{t:g}' for t in sorted(temperatures))} (PROTOCOLS §2).") if ks else ""
    groups, group_lines = _groups_table(data, probes)
    findings = _findings(data, probes) + group_lines
    return Section("clean", "Clean accuracy", intro="Readouts on frozen global features, fitted on the training "
                   "split: a linear probe (logistic regression, weight decay chosen on a held-out 10% of the "
                   "training features) and a weighted kNN." + knn_text + chance,
                   tables=[Table(["model", "format", "readout", "probe top-1 (%)"] + [f"kNN {k} top-1 (%)" for k in ks]
                                 + ["evaluated on", "n", "seeds in group", "probe train top-1 (%)", "weight decay",
                                    "n train"],
                                 rows, "Top-1 accuracy of each readout on the same evaluation images (n per row); in "
                                 "brackets the 95% image-bootstrap interval (1 000 resamples). Seeds in group: how many "
                                 "checkpoints form this one's seed group (the table below); each row is one "
                                 "checkpoint, trained with one seed."),
                          groups],
                   takeaways=findings)
