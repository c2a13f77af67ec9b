"""Hostile input to both command lines: every case must end with exit code 2, one line on stderr,
no traceback, and nothing written that a later run would trust.

The option cases are generated from the parsers themselves (every numeric option of every command,
and every numeric field of the training config), so an option added later is covered without
editing this file; the other cases need files (a checkpoint with NaN weights, a folder of files
that do not decode, outputs that cannot be written, ...). Everything runs in this process: the
CLIs' `main` is called directly and its output captured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import typing
from pathlib import Path

import pytest

from co_ssl_train.options import Number, NumberList

# ---- cases generated from the parsers ------------------------------------------------------------


def _bad_values(kind) -> list[str]:
    """Values `kind` (a Number or NumberList) must refuse: not finite, a zero division, out of range."""
    item = kind.item if isinstance(kind, NumberList) else kind
    values = ["nan", "1.5" if item.kind is int else "inf"]
    if item.kind is float:
        values += ["-inf", "1/0"]
    if item.low is not None:
        values.append(str(item.low if item.low_open else (item.low - 1 if item.kind is int else item.low - 0.5)))
    if item.high is not None:
        values.append(str(item.high + 1))
    if isinstance(kind, NumberList):
        values += ["", f"{values[-1]},"]
    return values


def _coanalysis_option_cases() -> list[tuple[str, list[str]]]:
    from coanalysis.cli import build_parser

    cases = []
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, parser in sub.choices.items():
        base = [command] + (["report-folder"] if command == "report" else []) + \
            (["--ckpt", "model"] if any("--ckpt" in a.option_strings for a in parser._actions) else [])
        for action in parser._actions:
            if isinstance(action.type, (Number, NumberList)) and action.option_strings:
                flag = action.option_strings[0]
                cases += [(f"coanalysis {command} {flag} {v!r}", [*base, f"{flag}={v}"])
                          for v in _bad_values(action.type)]
    return cases


def _train_option_cases() -> list[tuple[str, list[str]]]:
    from co_ssl_train.config import RANGES, TrainConfig
    from co_ssl_train.config_args import _base_type, option_type

    hints = typing.get_type_hints(TrainConfig)
    cases = []
    for f in dataclasses.fields(TrainConfig):
        tp = _base_type(hints[f.name])
        if tp in (int, float):
            flag = "--" + f.name.replace("_", "-")
            values = _bad_values(option_type(f.name, tp))
            cases += [(f"co-ssl-train {flag} {v!r}", ["train", f"{flag}={v}", "--dataset", "synthetic"])
                      for v in values]
            assert f.name in RANGES or tp is float, f"{flag}: an integer option without a range in RANGES"
    return cases


OPTION_CASES = {name: ("coanalysis", argv) for name, argv in _coanalysis_option_cases()}
OPTION_CASES.update({name: ("co-ssl-train", argv) for name, argv in _train_option_cases()})


# ---- cases that need files -----------------------------------------------------------------------

FILE_CASES: dict[str, tuple[str, list[str], str]] = {
    # option values parsed after argparse
    "eps nan": ("coanalysis", ["robustness", "--ckpt", "{run}", "--eps", "linf=nan"], "--eps linf"),
    "eps 1/0": ("coanalysis", ["robustness", "--ckpt", "{run}", "--eps", "linf=1/0"], "divides by zero"),
    "eps inf": ("coanalysis", ["robustness", "--ckpt", "{run}", "--eps", "l2=0,inf"], "finite"),
    "eps negative": ("coanalysis", ["robustness", "--ckpt", "{run}", "--eps", "l2=-1"], ">= 0"),
    "eps empty list": ("coanalysis", ["robustness", "--ckpt", "{run}", "--eps", "linf="], "NORM=LIST"),
    "eps empty entry": ("coanalysis", ["robustness", "--ckpt", "{run}", "--eps", "linf=0,,1/255"], "empty entry"),
    "eps norm": ("coanalysis", ["robustness", "--ckpt", "{run}", "--eps", "l1=0.1"], "NORM=LIST"),
    "spatial nan": ("coanalysis", ["robustness", "--ckpt", "{run}", "--spatial-ps", "nan"], "--spatial-ps"),
    "spatial 1": ("coanalysis", ["robustness", "--ckpt", "{run}", "--spatial-ps", "0,1"], "--spatial-ps"),
    "spatial empty": ("coanalysis", ["robustness", "--ckpt", "{run}", "--spatial-ps", ""], "--spatial-ps"),
    "no corruption": ("coanalysis", ["robustness", "--ckpt", "{run}", "--corruptions", ""], "corruption"),
    "only nothing": ("coanalysis", ["robustness", "--ckpt", "{run}", "--only", ""], "unknown analysis"),
    "coords outside": ("coanalysis", ["erf", "--ckpt", "{run}", "--coords", "2,2"], "--coords 2,2"),
    "coords nan": ("coanalysis", ["erf", "--ckpt", "{run}", "--coords", "nan,0"], "--coords nan,0"),
    "coords one number": ("coanalysis", ["erf", "--ckpt", "{run}", "--coords", "0.5"], "u,v"),
    "coords 1/0": ("coanalysis", ["erf", "--ckpt", "{run}", "--coords", "1/0,0"], "divides by zero"),
    "coords negative": ("coanalysis", ["erf", "--ckpt", "{run}", "--coords=-0.1,0"], "from 0 to 1"),
    "erf method": ("coanalysis", ["erf", "--ckpt", "{run}", "--methods", ""], "unknown ERF method"),
    "mean nan": ("coanalysis", ["probe", "--ckpt", "{run}", "--mean", "0,0,nan", "--std", "1,1,1"], "--mean"),
    "mean two": ("coanalysis", ["probe", "--ckpt", "{run}", "--mean", "0,0", "--std", "1,1,1"], "three"),
    "std zero": ("coanalysis", ["probe", "--ckpt", "{run}", "--mean", "0,0,0", "--std", "1,0,1"], "--std"),
    "std inf": ("coanalysis", ["probe", "--ckpt", "{run}", "--mean", "0,0,0", "--std", "1,1,inf"], "--std"),
    "mean alone": ("coanalysis", ["probe", "--ckpt", "{run}", "--mean", "0,0,0"], "go together"),
    # outputs that cannot be created or written
    "out in /proc": ("coanalysis", ["probe", "--ckpt", "{run}", "--out", "/proc/co-ssl-test"], "cannot be written"),
    "out is a file": ("coanalysis", ["probe", "--ckpt", "{run}", "--out", "{file}"], "is not a folder"),
    "out under a file": ("coanalysis", ["robustness", "--ckpt", "{run}", "--out", "{file}/res"], "cannot be written"),
    "figures in /proc": ("coanalysis", ["erf", "--ckpt", "{run}", "--figures", "/proc/co-ssl-test"], "--figures"),
    "cache in /proc": ("coanalysis", ["probe", "--ckpt", "{run}", "--cache-dir", "/proc/co-ssl-test"], "--cache-dir"),
    "corruption cache a file": ("coanalysis", ["robustness", "--ckpt", "{run}", "--corruption-cache", "{file}"],
                                "--corruption-cache"),
    "report out in /proc": ("coanalysis", ["report", "{results}", "--out", "/proc/co-ssl-test/r.html"],
                            "cannot be written"),
    "report out a folder": ("coanalysis", ["report", "{results}", "--out", "{dir}"], "is a folder"),
    "report of a file": ("coanalysis", ["report", "{file}"], "is a file"),
    "report of nothing": ("coanalysis", ["report", "{dir}"], "no results"),
    "demo checkpoints in /proc": ("coanalysis", ["demo", "--checkpoints", "/proc/co-ssl-test"], "--checkpoints"),
    "demo reports a file": ("coanalysis", ["demo", "--reports", "{file}"], "--reports"),
    "train out in /proc": ("co-ssl-train", ["--dataset", "synthetic", "--out", "/proc/co-ssl-test"],
                           "cannot be written"),
    "train out a file": ("co-ssl-train", ["--dataset", "synthetic", "--out", "{file}"], "is not a folder"),
    "train run name a file": ("co-ssl-train", ["--dataset", "synthetic", "--out", "{dir_with_file}",
                                               "--run-name", "taken"], "is not a folder"),
    "train resume without state": ("co-ssl-train", ["--dataset", "synthetic", "--out", "{stateless_parent}",
                                                    "--run-name", "stateless", "--resume"], "without its resume state"),
    "train run name dots": ("co-ssl-train", ["--dataset", "synthetic", "--out", "{tmp}/ck", "--run-name", ".."],
                            "not a valid folder name"),
    # weights and checkpoints
    "nan weights probe": ("coanalysis", ["probe", "--ckpt", "{nan}"], "NaN or Inf"),
    "nan weights erf": ("coanalysis", ["erf", "--ckpt", "{nan}"], "NaN or Inf"),
    "nan weights noise": ("coanalysis", ["robustness", "--ckpt", "{nan}", "--only", "noise"], "NaN or Inf"),
    "nan weights redundancy": ("coanalysis", ["redundancy", "--ckpt", "{nan}"], "NaN or Inf"),
    "nan weights bagssl": ("coanalysis", ["bagssl", "--ckpt", "{nan}"], "NaN or Inf"),
    "ckpt empty folder": ("coanalysis", ["probe", "--ckpt", "{dir}"], "{dir}"),
    "ckpt unreadable meta": ("coanalysis", ["inspect", "--ckpt", "{bad_meta}"], "not valid JSON"),
    "ckpt a folder of junk": ("coanalysis", ["inspect", "--ckpt", "{undecodable}"], "{undecodable}"),
    "name with slash": ("coanalysis", ["probe", "--ckpt", "{run}", "--name", "a/b"], "model name"),
    "baseline unknown": ("coanalysis", ["robustness", "--ckpt", "{run}", "--baseline", "nobody"], "--baseline"),
    # data
    "eval folder undecodable": ("coanalysis", ["probe", "--ckpt", "{run}", "--dataset", "imagefolder",
                                               "--data-root", "{undecodable}"], "decoded"),
    "erf images undecodable": ("coanalysis", ["erf", "--ckpt", "{run}", "--images", "{undecodable}/train/a"],
                               "could be decoded"),
    "train folder undecodable": ("co-ssl-train", ["--dataset", "imagefolder", "--data-root", "{undecodable}",
                                                  "--batch-size", "4", "--arch", "resnet10", "--width", "8",
                                                  "--proj-hidden", "16", "--proj-dim", "8", "--image-size", "16",
                                                  "--workers", "0", "--out", "{tmp}/ck"], "did not decode"),
}


@pytest.fixture(scope="session")
def hostile(tiny_runs, tmp_path_factory) -> dict[str, str]:
    """The files the file cases name, made once."""
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("hostile")
    nan = root / "nan-run"
    shutil.copytree(tiny_runs["byol"], nan)
    tensors = load_file(nan / "encoder.safetensors")
    first = next(k for k, t in tensors.items() if t.is_floating_point())
    tensors[first] = tensors[first].clone()
    tensors[first].view(-1)[0] = float("nan")
    from safetensors import safe_open

    with safe_open(nan / "encoder.safetensors", "pt") as f:
        header = f.metadata()
    save_file(tensors, nan / "encoder.safetensors", metadata=header)
    bad_meta = root / "bad-meta"
    shutil.copytree(tiny_runs["byol"], bad_meta)
    (bad_meta / "meta.json").write_bytes(b"\xff\xfe{ not json")
    (root / "a-file").write_text("not a folder")
    stateless = root / "runs" / "stateless"
    shutil.copytree(tiny_runs["byol"], stateless)
    (stateless / "state.pt").unlink()
    (root / "empty").mkdir()
    (root / "with-file").mkdir()
    (root / "with-file" / "taken").write_text("a file where the run folder would go")
    for split in ("train", "val"):
        for cls in ("a", "b"):
            folder = root / "undecodable" / split / cls
            folder.mkdir(parents=True)
            for i in range(4):
                (folder / f"{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    results = root / "results" / "m"
    results.mkdir(parents=True)
    (results / "noise.json").write_text(json.dumps({"cells": []}))
    return {"run": str(tiny_runs["byol"]), "nan": str(nan), "bad_meta": str(bad_meta), "file": str(root / "a-file"),
            "dir": str(root / "empty"), "dir_with_file": str(root / "with-file"),
            "undecodable": str(root / "undecodable"), "results": str(root / "results"),
            "stateless_parent": str(root / "runs")}


def _run(prog: str, argv: list[str], capsys) -> tuple[int | str, str, str]:
    from co_ssl_train.cli import main as train_main
    from coanalysis.cli import main as analysis_main

    main = train_main if prog == "co-ssl-train" else analysis_main
    try:
        main(argv)
        code: int | str = 0
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_refused(code, out: str, err: str, written: list[Path], expected: str = "") -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, out, err)
    assert "Traceback" not in err + out and len(lines) == 1, err
    assert expected in lines[0], lines[0]
    assert not [line for line in out.splitlines() if line.strip() and not line.startswith("note:")], out
    trusted = [p for p in written if p.is_file() and p.name != "model.json" and not p.name.endswith(".lock")]
    assert not trusted, trusted


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_bad_option_value_is_refused_before_any_work(case, tmp_path, monkeypatch, capsys):
    prog, argv = OPTION_CASES[case]
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(prog, argv, capsys)
    _assert_refused(code, out, err, list(tmp_path.rglob("*")), "argument --")


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_input_is_one_line_and_exit_code_2(case, hostile, tmp_path, monkeypatch, capsys):
    prog, argv, expected = FILE_CASES[case]
    places = {**hostile, "tmp": str(tmp_path)}
    argv = [a.format(**places) for a in argv]
    if prog == "coanalysis" and argv[0] not in ("report", "demo", "inspect"):
        argv += ["--no-progress"] + ([] if "--out" in argv else ["--out", str(tmp_path / "res")])
    if prog == "co-ssl-train":
        argv += ["--no-progress"]
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(prog, argv, capsys)
    _assert_refused(code, out, err, list(tmp_path.rglob("*")), expected.format(**places))


def test_the_suite_covers_at_least_the_cases_the_readme_states():
    import re

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    stated = int(re.search(r"(\d+) hostile inputs", readme).group(1))
    assert len(OPTION_CASES) + len(FILE_CASES) >= stated >= 100


def test_every_numeric_option_is_checked_by_the_options_module():
    """No option of either CLI takes a bare int or float (those accept nan, inf and 0 counts)."""
    from co_ssl_train.cli import build_parser as train_parser
    from coanalysis.cli import build_parser as analysis_parser

    def actions(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from actions(sub)
            else:
                yield action

    bare = [a.option_strings for p in (train_parser(), analysis_parser()) for a in actions(p) if a.type in (int, float)]
    assert not bare, bare


# ---- what the refusals above rest on ---------------------------------------------------------------


def test_inspect_reports_nan_weights_and_clean_ones(hostile, capsys):
    from coanalysis.cli import main

    main(["inspect", "--ckpt", hostile["nan"]])
    assert "weights         BROKEN: 1 tensors hold NaN or Inf (backbone." in capsys.readouterr().out
    main(["inspect", "--ckpt", hostile["run"], "--json"])
    assert json.loads(capsys.readouterr().out)["nonfinite_tensors"] == []


def test_wrong_structure_results_are_recomputed_and_skipped_by_report(hostile, tmp_path, capsys):
    """A results file that parses but is not a result: analyses move it aside and recompute it
    (with a note), `report` skips it (with a note); the cells-done line shows without progress."""
    from coanalysis.cli import main

    args = ["robustness", "--ckpt", hostile["run"], "--only", "noise", "--sigmas", "0,0.2", "--n", "32",
            "--out", str(tmp_path), "--no-progress"]
    main(args)
    path = tmp_path / "tiny-byol" / "noise.json"
    good = json.loads(path.read_text())
    main(args)
    assert "tiny-byol/noise: 2 of 2 cells already done, skipping them" in capsys.readouterr().out
    for broken in ({**good, "cells": list(good["cells"].values())}, [good], {**good, "complete": "yes"},
                   {**good, "cells": {"sigma=0": 0.5}}, {**good, "model": None}):
        path.write_text(json.dumps(broken))
        main(["report", str(tmp_path), "--no-export", "--no-progress"])
        assert f"note: skipping damaged {path}" in capsys.readouterr().out
        main(args)
        out = capsys.readouterr().out
        assert f"note: {path} was damaged" in out and "moved to noise.json.damaged and recomputing" in out
        again = json.loads(path.read_text())["cells"]
        assert {k: c["accuracy"] for k, c in again.items()} == {k: c["accuracy"] for k, c in good["cells"].items()}


def test_a_diverged_run_names_a_checkpoint_only_when_there_is_one(tmp_path, monkeypatch):
    import torch

    from co_ssl_train import train as train_module
    from co_ssl_train.config import TrainConfig
    from co_ssl_train.errors import UserError
    from tests.conftest import TINY

    monkeypatch.setattr(train_module, "training_step", lambda *a, **k: (torch.tensor(float("nan")), {}))
    with pytest.raises(UserError, match=r"the loss became nan at step 2; .* \(no checkpoint was written yet\)"):
        train_module.train(TrainConfig(method="byol", out=str(tmp_path), run_name="diverged", **TINY))
    assert not (tmp_path / "diverged" / "meta.json").exists()


def test_resume_of_a_run_that_never_ran_says_it_starts_fresh(tmp_path, capsys):
    from co_ssl_train.config import TrainConfig
    from co_ssl_train.train import train
    from tests.conftest import TINY

    run = train(TrainConfig(method="byol", out=str(tmp_path), run_name="new", resume=True, **{**TINY, "max_steps": 1}))
    assert f"--resume: {run} holds no run to continue; starting fresh" in capsys.readouterr().out
    assert (run / "meta.json").is_file()


def test_an_interrupted_run_names_a_checkpoint_only_when_there_is_one(tmp_path, monkeypatch, capsys):
    from co_ssl_train import train as train_module
    from co_ssl_train.cli import main

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "training_step", interrupt)
    with pytest.raises(SystemExit) as exc:
        main(["--method", "byol", "--dataset", "synthetic", "--arch", "resnet10", "--width", "8", "--proj-hidden", "32",
              "--proj-dim", "16", "--batch-size", "32", "--out", str(tmp_path), "--run-name", "cut", "--no-progress"])
    err = capsys.readouterr().err
    assert exc.value.code == 130 and f"interrupted; no checkpoint of {tmp_path / 'cut'} was written yet" in err


def test_report_leaves_out_a_section_whose_values_have_the_wrong_type(tmp_path, capsys):
    from coanalysis.cli import main
    from tests.resultfiles import write_results

    folder = write_results(tmp_path / "res", {"byol": {0.0: 0.9, 0.1: 0.6}})
    path = folder / "byol" / "noise.json"
    data = json.loads(path.read_text())
    data["cells"]["sigma=0.1"]["accuracy"] = "high"
    path.write_text(json.dumps(data))
    main(["report", str(folder), "--no-export", "--no-progress"])
    out = capsys.readouterr().out
    assert "note: report section 'noise' skipped: its results hold unexpected values" in out
    assert "report written to" in out and "noise" not in out.split("sections: ")[1]
