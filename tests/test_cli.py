"""Both command lines as a user runs them: help, the thin path end to end, and bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import run_cli

TINY_FLAGS = ["--dataset", "synthetic", "--arch", "resnet10", "--width", "8", "--proj-hidden", "32",
              "--proj-dim", "16", "--batch-size", "32", "--epochs", "1", "--max-steps", "2", "--no-progress"]


@pytest.mark.parametrize("prog,commands", [("co_ssl_train", ["train", "methods", "archs", "datasets"]),
                                           ("coanalysis", ["demo", "probe", "robustness", "report"])])
def test_help_lists_commands_and_examples(prog, commands):
    out = run_cli(prog, "--help")
    assert out.returncode == 0
    assert all(c in out.stdout for c in commands) and "examples:" in out.stdout


def test_train_help_lists_options():
    out = run_cli("co_ssl_train", "train", "--help")
    assert out.returncode == 0
    for flag in ("--method", "--local-weight", "--min-scale", "--resume", "--dataset", "--arch"):
        assert flag in out.stdout


def test_thin_path_train_probe_robustness_report(tmp_path):
    for method in ("byol", "co-byol"):
        out = run_cli("co_ssl_train", "--method", method, *TINY_FLAGS, "--out", str(tmp_path / "ck"))
        assert out.returncode == 0, out.stderr
    runs = [str(tmp_path / "ck" / f"{m}-resnet10-synthetic") for m in ("byol", "co-byol")]
    out = run_cli("coanalysis", "probe", "--ckpt", runs[0], "--out", str(tmp_path / "res"), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "probe top-1" in out.stdout
    out = run_cli("coanalysis", "robustness", "--ckpt", runs[0], "--ckpt", runs[1], "--name", "byol", "--name", "co",
                  "--only", "noise", "--sigmas", "0,0.2", "--out", str(tmp_path / "res"), "--no-progress")
    assert out.returncode == 0, out.stderr
    noise = json.loads((tmp_path / "res" / "co" / "noise.json").read_text())
    assert set(noise["cells"]) == {"sigma=0", "sigma=0.2"} and noise["protocol"]["data"]["dataset"] == "synthetic"
    out = run_cli("coanalysis", "report", str(tmp_path / "res"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "res" / "report.html").is_file()


def _bad(tmp_path, tiny_runs):
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_runs["byol"], truncated)
    (truncated / "encoder.safetensors").write_bytes((truncated / "encoder.safetensors").read_bytes()[:64])
    (tmp_path / "foreign.pth").write_bytes(b"PK\x03\x04 not a checkpoint")
    (tmp_path / "empty_root").mkdir()
    run = str(tiny_runs["byol"])
    out = ("--out", str(tmp_path / "res"), "--no-progress")
    return {
        "missing ckpt": (("coanalysis", "probe", "--ckpt", str(tmp_path / "nope"), *out), "does not exist"),
        "foreign file": (("coanalysis", "probe", "--ckpt", str(tmp_path / "foreign.pth"), *out),
                         "not a co-ssl checkpoint"),
        "truncated": (("coanalysis", "robustness", "--ckpt", str(truncated), *out), "truncated"),
        "unknown dataset": (("coanalysis", "probe", "--ckpt", run, "--dataset", "mnist-9", *out), "unknown dataset"),
        "empty data root": (("coanalysis", "probe", "--ckpt", run, "--dataset", "fashion-mnist", "--data-root",
                             str(tmp_path / "empty_root"), *out), "not found"),
        "train unknown dataset": (("co_ssl_train", "--dataset", "mnist-9"), "unknown dataset"),
        "train empty root": (("co_ssl_train", "--dataset", "cifar10", "--data-root", str(tmp_path / "empty_root")),
                             "not found"),
        "train unknown method": (("co_ssl_train", "--method", "swav2"), "unknown method"),
        "report of nothing": (("coanalysis", "report", str(tmp_path / "empty_root")), "no results"),
    }


@pytest.mark.parametrize("case", ["missing ckpt", "foreign file", "truncated", "unknown dataset", "empty data root",
                                  "train unknown dataset", "train empty root", "train unknown method",
                                  "report of nothing"])
def test_bad_input_gets_one_line_and_exit_code_2(case, tmp_path, tiny_runs):
    args, expected = _bad(tmp_path, tiny_runs)[case]
    out = run_cli(*args, cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert expected in lines[0]


def test_debug_shows_the_traceback(tmp_path):
    out = run_cli("coanalysis", "probe", "--debug", "--ckpt", str(tmp_path / "nope"))
    assert out.returncode == 2 and "Traceback" in out.stderr
