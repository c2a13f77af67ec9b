"""The redundancy, erf and bagssl command lines as a user runs them, and their bad input."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli


def test_help_lists_the_analysis_commands():
    out = run_cli("coanalysis", "--help")
    assert out.returncode == 0 and all(c in out.stdout for c in ("redundancy", "erf", "bagssl"))
    out = run_cli("coanalysis", "erf", "--help")
    assert out.returncode == 0 and "--coords" in out.stdout and "examples:" in out.stdout


def test_erf_command_needs_no_dataset_and_exports_figures(tiny_runs, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    Image.new("RGB", (48, 40), (40, 90, 200)).save(photos / "a.png")
    (photos / "broken.png").write_bytes(b"not a png")
    out = run_cli("coanalysis", "erf", "--ckpt", str(tiny_runs["co-byol"]), "--name", "co", "--images", str(photos),
                  "--coords", "0,0", "0.5,0.5", "--out", str(tmp_path / "res"), "--figures", str(tmp_path / "figs"),
                  "--no-progress")
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "res" / "co" / "probe.json").exists()  # no dataset, no probe needed
    assert "broken.png" in out.stdout and "analytic RF 49" in out.stdout
    erf = json.loads((tmp_path / "res" / "co" / "erf.json").read_text())
    assert erf["protocol"]["data"]["n"] == 1 and set(erf["cells"]) == {"gradient@0,0", "gradient@0.5,0.5"}
    assert erf["cells"]["gradient@0,0"]["images"]["skipped_files"] == [str(photos / "broken.png")]
    for name in ("erf_grid_gradient", "erf_average_gradient", "erf_sizes"):
        for fmt, magic in (("png", b"\x89PNG"), ("pdf", b"%PDF")):
            assert (tmp_path / "figs" / f"{name}.{fmt}").read_bytes().startswith(magic)


@pytest.mark.slow
def test_three_commands_write_results_figures_and_report(tiny_runs, tmp_path):
    res, figs = str(tmp_path / "res"), str(tmp_path / "figs")
    runs = ["--ckpt", str(tiny_runs["byol"]), "--ckpt", str(tiny_runs["co-byol"]), "--name", "byol", "--name", "co"]
    common = ["--out", res, "--no-progress", "--batch-size", "64", "--figures", figs]
    out = run_cli("coanalysis", "redundancy", *runs, *common, "--n-images", "64", "--pairs", "500", "--bootstrap", "50")
    assert out.returncode == 0, out.stderr
    assert "co: r = " in out.stdout and "intra-image similarity" in out.stdout
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    for k in range(3):
        Image.new("RGB", (48, 40), (40 * k, 90, 200)).save(photos / f"p{k}.png")
    (photos / "broken.png").write_bytes(b"not a png")
    out = run_cli("coanalysis", "erf", *runs, *common, "--images", str(photos), "--coords", "0,0", "0.5,0.5")
    assert out.returncode == 0, out.stderr
    assert "broken.png" in out.stdout and "analytic RF 49" in out.stdout
    out = run_cli("coanalysis", "bagssl", *runs, *common, "--n-images", "32", "--patch-sizes", "16,32")
    assert out.returncode == 0, out.stderr
    assert "32 px: cos(whole, mean of parts) = 1.000" in out.stdout
    erf = json.loads((tmp_path / "res" / "co" / "erf.json").read_text())
    assert erf["protocol"]["data"]["n"] == 3 and set(erf["cells"]) == {"gradient@0,0", "gradient@0.5,0.5"}
    assert erf["cells"]["gradient@0,0"]["images"]["skipped_files"] == [str(photos / "broken.png")]
    for name in ("redundancy_scatter", "redundancy_bars", "erf_grid_gradient", "erf_average_gradient", "bagssl"):
        for fmt, magic in (("png", b"\x89PNG"), ("pdf", b"%PDF")):
            assert (tmp_path / "figs" / f"{name}.{fmt}").read_bytes().startswith(magic)
    out = run_cli("coanalysis", "report", res)
    assert out.returncode == 0, out.stderr
    html = (tmp_path / "res" / "report.html").read_text()
    for title in ("Redundancy of local representations", "Effective receptive fields", "Whole versus bag of parts"):
        assert f"<h2>{title}</h2>" in html


@pytest.mark.parametrize("args,expected", [
    (("erf", "--coords", "2,0"), "--coords 2,0: expected a finite number from 0 to 1, got 2"),
    (("erf", "--methods", "lrp"), "unknown ERF method"),
    (("erf", "--images", "/nonexistent/photos"), "does not exist"),
    (("redundancy", "--layer", "layer9"), "unknown layer"),
    (("bagssl", "--patch-sizes", "8,x"), "argument --patch-sizes: expected an integer of at least 1, got 'x'"),
])
def test_bad_input_gets_one_line_and_exit_code_2(args, expected, tiny_runs, tmp_path):
    out = run_cli("coanalysis", args[0], "--ckpt", str(tiny_runs["byol"]), *args[1:], "--out", str(tmp_path / "r"),
                  "--no-progress")
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr and expected in lines[0], out.stderr
