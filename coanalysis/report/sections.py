"""Report sections: each turns `ReportData` into a titled block of figures, tables and takeaways,
or None when its results do not exist. `SECTIONS` lists them in report order.

Every takeaway sentence is computed from the stored numbers, with its n and seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from coanalysis.figures.noise import noise_curve, noise_figure
from coanalysis.report.data import ReportData


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class FigureBlock:
    name: str  # file stem when exported
    figure: object  # matplotlib Figure
    caption: str
    takeaways: list[str] = field(default_factory=list)


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    figures: list[FigureBlock] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    code: str = ""  # preformatted text (protocol appendix)


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _fmt_kwargs(kwargs: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in (kwargs or {}).items())


def models_section(data: ReportData) -> Section:
    rows = []
    for name, m in data.models.items():
        config = m.get("config") or {}
        params = m.get("parameters")
        rows.append([name, m.get("format", "?"), f"{m.get('arch', '?')} ({_fmt_kwargs(m.get('arch_kwargs', {}))})",
                     f"{params / 1e6:.2f} M" if params else "–", m.get("method") or "–",
                     str(m.get("epoch")) if m.get("epoch") is not None else "–",
                     str(config.get("dataset", m.get("dataset") or "–")), (m.get("content_hash") or "")[:12]])
    return Section("models", "Models", tables=[Table(
        ["model", "format", "architecture", "parameters", "method", "epochs", "trained on", "sha256"], rows,
        "Checkpoint identity; the full training config of each model is in the protocol appendix.")])


def clean_section(data: ReportData) -> Section | None:
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


def _diff_takeaway(data: ReportData, curves: dict[str, tuple[list[float], list[float]]], what: str, unit: str,
                   n: int, seeds: str) -> list[str]:
    """Largest accuracy difference of each model against the reference over the non-zero conditions."""
    ref = data.reference()
    if ref not in curves or len(curves) < 2:
        lines = []
        for name, (xs, ys) in curves.items():
            lines.append(f"{name}: accuracy goes from {ys[0]:.1f}% at {what} = {xs[0]:g} to {ys[-1]:.1f}% at "
                         f"{what} = {xs[-1]:g}{unit} (n = {n}, {seeds}).")
        return lines
    lines = []
    rx, ry = curves[ref]
    ref_at = dict(zip(rx, ry))
    for name, (xs, ys) in curves.items():
        if name == ref:
            continue
        diffs = [(y - ref_at[x], x) for x, y in zip(xs, ys) if x in ref_at and x != 0]
        if not diffs:
            continue
        d, x = max(diffs, key=lambda t: abs(t[0]))
        word = "more" if d >= 0 else "less"
        lines.append(f"{name} keeps {abs(d):.1f} points {word} accuracy than {ref} at {what} = {x:g}{unit} "
                     f"(n = {n}, {seeds}).")
    return lines


def noise_section(data: ReportData) -> Section | None:
    results = data.of("noise")
    if not results:
        return None
    curves = {r.model["name"]: noise_curve(r) for r in results}
    n = results[0].protocol["data"]["n"]
    seeds = f"noise seed {results[0].protocol['seed']}"
    sigmas = results[0].protocol["sigmas"]
    table = Table(["model"] + [f"σ={s:g}" for s in sigmas],
                  [[name] + [f"{y:.1f}" for y in ys] for name, (_, ys) in curves.items()],
                  "Probe top-1 (%) under additive Gaussian noise, clipped to [0, 1].")
    return Section("noise", "Gaussian noise", intro="Additive Gaussian noise in pixel space (PROTOCOLS §3); "
                   "σ = 0 is the clean accuracy.",
                   figures=[FigureBlock("noise", noise_figure(results, data.colors),
                                        "Accuracy against noise level.",
                                        _diff_takeaway(data, curves, "σ", "", n, seeds))],
                   tables=[table])


def appendix_section(data: ReportData) -> Section:
    blocks = []
    for (model, analysis), r in sorted(data.results.items()):
        blocks.append(f"## {model} / {analysis}  ({'complete' if r.complete else 'INCOMPLETE'}: "
                      f"{len(r.cells)} of {r.expected_cells} cells, wall time {r.wall_time_s:.1f} s)\n"
                      f"device: {r.environment.get('device')}\n"
                      f"versions: {json.dumps(r.environment.get('versions'))}\n"
                      f"protocol: {json.dumps(r.protocol, indent=2)}")
    for name, m in data.models.items():
        blocks.append(f"## {name}: checkpoint\n{json.dumps(m, indent=2)}")
    return Section("appendix", "Protocol appendix", intro="Every parameter, n, seed, library version, device and "
                   "wall time behind the numbers above, as stored in the results JSON.", code="\n\n".join(blocks))


SECTIONS: list[Callable[[ReportData], Section | None]] = [
    models_section,
    clean_section,
    noise_section,
    appendix_section,
]
