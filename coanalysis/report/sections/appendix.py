"""Last section: every protocol, n, seed, version, device and wall time behind the report."""

from __future__ import annotations

import json

from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import Section


def build(data: ReportData) -> Section:
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
