"""Last section: every protocol, n, seed, version, device and wall time behind the report.

Readable first: a table of every stored result (model, analysis, cells done, n, seeds, device,
wall time, when written), the library versions, and per analysis a table of every protocol
parameter (one column per model where they differ); then each result's full JSON, collapsed.
"""

from __future__ import annotations

import json
from typing import Any

from coanalysis.figures.style import fmt_n
from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import Details, Section, Table
from coanalysis.results.store import Result


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys: {"data": {"n": 5}} -> {"data.n": 5}; lists stay values."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def seeds_of(protocol: dict[str, Any]) -> str:
    """Every seed a protocol records, e.g. 'seed=0, data.subset_seed=0, probe.seed=0'."""
    seeds = [f"{k}={_value(v)}" for k, v in flatten(protocol).items() if "seed" in k.rsplit(".", 1)[-1]]
    return ", ".join(seeds) or "–"


def _wall(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _written(r: Result) -> str:
    return r.written.replace("T", " ").replace("+00:00", " UTC") if r.written else "not recorded"


def _runs_table(data: ReportData) -> Table:
    rows = []
    for model in data.names:
        for (m, analysis), r in data.results.items():
            if m != model:
                continue
            d = r.protocol.get("data") or r.protocol.get("train_data") or {}
            done = f"{len(r.cells)} of {r.expected_cells}" + ("" if r.complete else " (incomplete)")
            rows.append([model, analysis, done, fmt_n(d.get("n")) if d.get("n") is not None else "–",
                         f"{d.get('dataset', '–')} {d.get('split', '')}".strip(), seeds_of(r.protocol),
                         r.protocol.get("precision", "–"), r.environment.get("device", "–"), _wall(r.wall_time_s),
                         _written(r)])
    return Table(["model", "analysis", "cells", "n", "data", "seeds", "precision", "device", "wall time",
                  "written"], rows,
                 "Wall time sums the time spent on the stored cells (probe: fit and evaluation), not idle time.",
                 name="results", title="Stored results")


def _versions_table(data: ReportData) -> Table:
    seen: dict[str, dict[str, list[str]]] = {}  # library -> version -> [model/analysis]
    for (model, analysis), r in data.results.items():
        for lib, version in (r.environment.get("versions") or {}).items():
            seen.setdefault(lib, {}).setdefault(str(version), []).append(f"{model}/{analysis}")
    rows = []
    for lib, versions in seen.items():
        if len(versions) == 1:
            rows.append([lib, next(iter(versions))])
        else:
            rows.append([lib, "; ".join(f"{v} ({', '.join(w)})" for v, w in versions.items())])
    return Table(["library", "version"], rows, "Versions recorded in the results; where results differ, "
                 "each version is followed by the results that used it.", name="versions", title="Library versions")


def _protocol_table(data: ReportData, analysis: str, results: list[Result]) -> Table:
    flat = {r.model["name"]: flatten(r.protocol) for r in results}
    keys = list(dict.fromkeys(k for f in flat.values() for k in f))
    same = all(len({_value(f.get(k)) for f in flat.values()}) == 1 for k in keys)
    if same or len(flat) == 1:
        first = next(iter(flat.values()))
        return Table(["parameter", "value"], [[k, _value(first.get(k))] for k in keys],
                     f"Identical for {', '.join(flat)}." if len(flat) > 1 else f"Of {next(iter(flat))}.",
                     name=f"protocol-{analysis}", title=f"Protocol: {analysis}")
    rows = []
    for k in keys:
        values = [_value(f[k]) if k in f else "–" for f in flat.values()]
        rows.append([f"{k} *" if len(set(values)) > 1 else k] + values)
    return Table(["parameter"] + list(flat), rows, "* marks parameters that differ between the models.",
                 name=f"protocol-{analysis}", title=f"Protocol: {analysis}")


def build(data: ReportData) -> Section:
    analyses = list(dict.fromkeys(a for _, a in data.results))
    tables = [_runs_table(data), _versions_table(data)]
    tables += [_protocol_table(data, a, data.of(a)) for a in analyses]
    details = [Details(f"{model} / {analysis}: result JSON (schema {r.schema_version})",
                       json.dumps(r.to_json(), indent=2))
               for model in data.names for (m, analysis), r in data.results.items() if m == model]
    return Section("appendix", "Protocol appendix", intro="Every parameter, n, seed, library version, device and "
                   "wall time behind the numbers above, as stored in the results JSON (PROTOCOLS §11).",
                   tables=tables, details=details)
