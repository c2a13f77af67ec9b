"""The report is rendered from results JSON alone and holds the sections whose results exist."""

from __future__ import annotations

import base64
import re
import shutil

import pytest

from coanalysis.analyses import ANALYSES
from coanalysis.analyses.noise import NoiseProtocol
from coanalysis.loading import UserError
from coanalysis.pipeline import Session, make_context, open_model, run_analysis
from coanalysis.report import render_report


@pytest.fixture(scope="module")
def results_folder(tiny_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    session = Session(out=out, progress=False)
    for name, run in tiny_runs.items():
        ctx = make_context(session, open_model(session, str(run), name))
        run_analysis(session, ctx, ANALYSES["noise"], NoiseProtocol(sigmas=(0.0, 0.1, 0.5)))
    return out


def test_report_from_json_alone(results_folder, tiny_runs, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(results_folder, folder)
    html = render_report([folder], tmp_path / "report.html", baseline="byol").read_text()
    for title in ("Models", "Clean accuracy", "Gaussian noise", "Protocol appendix"):
        assert f"<h2>{title}</h2>" in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 1 and base64.b64decode(images[0]).startswith(b"\x89PNG")
    assert "co-byol keeps" in html and "than byol at σ =" in html  # computed takeaway
    assert "http://" not in html and "https://" not in html  # self-contained


def test_report_without_noise_results_skips_the_section(results_folder, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(results_folder, folder)
    for path in folder.glob("*/noise.json"):
        path.unlink()
    html = render_report([folder], tmp_path / "r.html").read_text()
    assert "<h2>Clean accuracy</h2>" in html and "<h2>Gaussian noise</h2>" not in html


def test_empty_folder_and_unknown_baseline(results_folder, tmp_path):
    with pytest.raises(UserError, match="no results"):
        render_report([tmp_path], tmp_path / "r.html")
    with pytest.raises(UserError, match="--baseline"):
        render_report([results_folder], tmp_path / "r.html", baseline="nobody")
