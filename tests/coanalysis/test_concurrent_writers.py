"""Two processes writing one result file: no cell is lost, and no cell is computed twice."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from coanalysis.analyses import Analysis
from coanalysis.run.pipeline import run_analysis
from coanalysis.results.store import ResultsStore
from coanalysis.distributed.sharding import Shards
from tests.conftest import run_cli


@dataclass(frozen=True)
class LevelsProtocol:
    levels: tuple[float, ...] = (0.0,)

    def to_json(self) -> dict:
        return {**asdict(self), "levels": list(self.levels)}


def _analysis(log: Path) -> Analysis:
    def run_cell(ctx, protocol, key):
        with open(log, "a") as f:  # one line per computation, from whichever process did it
            f.write(f"{os.getpid()} {key}\n")
        time.sleep(0.05)
        return {"value": float(key.split("=")[1])}

    return Analysis(name="levels", title="levels", protocol_type=LevelsProtocol,
                    cells=lambda p: [f"level={v:g}" for v in p.levels], run_cell=run_cell, condition_fields=("levels",))


def _worker(out: str, log: str, levels: tuple[float, ...]) -> None:
    source = SimpleNamespace(name="m", content_hash="h" * 64, to_json=lambda: {"name": "m", "content_hash": "h" * 64})
    ctx = SimpleNamespace(encoder=SimpleNamespace(source=source), data=SimpleNamespace(describe=lambda: {"n": 1}),
                          probe_identity={})
    session = SimpleNamespace(store=ResultsStore(Path(out)), precision="fp32", env={}, overwrite=False, progress=False,
                              shards=Shards())
    run_analysis(session, ctx, _analysis(Path(log)), LevelsProtocol(levels))


def _run_two(tmp_path: Path, a: tuple[float, ...], b: tuple[float, ...]) -> tuple[dict, list[str]]:
    fork = multiprocessing.get_context("fork")
    log = tmp_path / "computed.log"
    procs = [fork.Process(target=_worker, args=(str(tmp_path / "out"), str(log), levels)) for levels in (a, b)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    stored = json.loads((tmp_path / "out" / "m" / "levels.json").read_text())
    return stored, log.read_text().split("\n")[:-1]


def test_disjoint_conditions_end_as_the_union_of_cells(tmp_path):
    a, b = tuple(i / 10 for i in range(0, 10, 2)), tuple(i / 10 for i in range(1, 10, 2))
    stored, computed = _run_two(tmp_path, a, b)
    assert set(stored["cells"]) == {f"level={v:g}" for v in a + b} and len(computed) == 10
    assert all(stored["cells"][f"level={v:g}"]["value"] == v for v in a + b)
    assert sorted(stored["protocol"]["levels"]) == sorted(a + b) and stored["complete"]


def test_identical_processes_compute_each_cell_once_between_them(tmp_path):
    levels = tuple(i / 10 for i in range(12))
    stored, computed = _run_two(tmp_path, levels, levels)
    keys = [line.split()[1] for line in computed]
    assert sorted(keys) == sorted(f"level={v:g}" for v in levels)  # each cell once, by one of the two
    assert len(stored["cells"]) == 12 and stored["complete"]


@pytest.mark.slow
def test_two_robustness_commands_with_disjoint_sigmas_keep_every_cell(tiny_runs, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "res"
    procs = [subprocess.Popen([sys.executable, "-m", "coanalysis", "robustness", "--ckpt", str(tiny_runs["byol"]),
                               "--only", "noise", "--sigmas", sigmas, "--n", "64", "--out", str(out), "--no-progress"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "GIT_PYTHON_REFRESH": "quiet"})
             for sigmas in ("0,0.1,0.2", "0.05,0.3,0.4")]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    cells = json.loads((out / "tiny-byol" / "noise.json").read_text())["cells"]
    assert set(cells) == {f"sigma={s}" for s in ("0", "0.1", "0.2", "0.05", "0.3", "0.4")}
    again = run_cli("coanalysis", "robustness", "--ckpt", str(tiny_runs["byol"]), "--only", "noise", "--sigmas",
                    "0.1,0.3", "--n", "64", "--out", str(out), "--no-progress")
    assert again.returncode == 0 and "2 of 2 cells already done, skipping them" in again.stdout
