"""`coanalysis report` renders from results JSON alone with torch importable but never imported.

The results folders are real inputs: a probe and noise result written by `tests.resultfiles`,
hand-made corruption, dropout, PGD and crop results (`tests.coanalysis.test_robustness_report`),
and an ERF result computed by the ERF analysis on a tiny run, so the render side's derived numbers
(mCE against the baseline) and codecs (ERF maps and images) are all exercised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from coanalysis.analyses import ANALYSES
from coanalysis.analyses.erf import ERFProtocol
from coanalysis.run.pipeline import Session, open_model, run_analysis
from tests.coanalysis.test_robustness_report import corruption_cells, dropout_cells, write
from tests.resultfiles import write_results

ROOT = Path(__file__).resolve().parents[2]

RENDER = """
import json, sys
from coanalysis.cli import main
try:
    main(sys.argv[1:])
finally:
    print(json.dumps({"torch": "torch" in sys.modules,
                      "analyses": sorted(m for m in sys.modules if m.startswith("coanalysis.analyses")),
                      "trainer": "coanalysis.models.trainer" in sys.modules}))
"""


def test_report_renders_without_importing_torch(tiny_runs, tmp_path):
    from coanalysis.commands.erf import image_context

    robustness = tmp_path / "robustness"
    write(robustness, "byol", 0.08, corruption_cells(0.9, (0.6, 0.4), (0.5, 0.5)), dropout_cells([0.9, 0.7]),
          (0.9, 0.3), (0.9, 0.5))
    write(robustness, "co", 0.2, corruption_cells(0.9, (0.7, 0.5), (0.6, 0.6)), dropout_cells([0.9, 0.8]),
          (0.9, 0.45), (0.9, 0.6))
    probes = write_results(tmp_path / "probes", {"base": {0.0: 0.9, 0.1: 0.6}, "co-x": {0.0: 0.9, 0.1: 0.7}})
    session = Session(out=tmp_path / "erf", progress=False, batch_size=16)
    encoder = open_model(session, str(tiny_runs["byol"]), "tiny")
    protocol = ERFProtocol(n_images=4, coords=((0.5, 0.5),), show=2)
    run_analysis(session, image_context(session, encoder, protocol), ANALYSES["erf"], protocol)

    out = tmp_path / "report" / "report.html"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", RENDER, "report", str(robustness), str(probes), str(tmp_path / "erf"),
                           "--out", str(out), "--baseline", "byol", "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported == {"torch": False, "analyses": [], "trainer": False}
    html = out.read_text()
    assert "mCE" in html and "Common corruptions" in html  # derived numbers, from coanalysis.results.derived
    assert "receptive field" in html.lower() and html.count("data:image/png;base64,") >= 5  # ERF maps decoded
