"""Section 1: the models compared, from their model.json records."""

from __future__ import annotations

from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import Section, Table, fmt_kwargs


def build(data: ReportData) -> Section:
    rows = []
    for name, m in data.models.items():
        config = m.get("config") or {}
        params = m.get("parameters")
        rows.append([name, m.get("format", "?"), f"{m.get('arch', '?')} ({fmt_kwargs(m.get('arch_kwargs', {}))})",
                     f"{params / 1e6:.2f} M" if params else "–", m.get("method") or "–",
                     str(m.get("epoch")) if m.get("epoch") is not None else "–",
                     str(config.get("dataset", m.get("dataset") or "–")), (m.get("content_hash") or "")[:12]])
    return Section("models", "Models", tables=[Table(
        ["model", "format", "architecture", "parameters", "method", "epochs", "trained on", "sha256"], rows,
        "Checkpoint identity; the full training config of each model is in the protocol appendix.")])
