"""Analyses on `torchrun --nproc_per_node 2` (gloo, CPU) against one process: the same results files,
timings aside; a dead or frozen rank stops the other within --dist-timeout; a job killed with -9
resumes from its finished cells; the cells left over for a last, partial round are split over the
ranks by images and still give one process's numbers. Both sides run with one thread, so their
kernels match."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import torch

from coanalysis.distributed.image_split import ImageSplit
from coanalysis.distributed.sharding import Shards, assign_models, split_rounds
from tests.conftest import free_port

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "GIT_PYTHON_REFRESH": "quiet"}
COMMON = ["--eval-n", "64", "--batch-size", "16", "--device", "cpu", "--no-progress"]


def _coanalysis(args: list[str], *, ranks: int, cache: Path | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess:
    launcher = TORCHRUN if ranks > 1 else [sys.executable]
    env = {**ENV, "CO_SSL_CACHE": str(cache)} if cache is not None else ENV
    done = subprocess.run([*launcher, "-m", "coanalysis", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _strip_timings(obj):
    if isinstance(obj, dict):
        return {k: _strip_timings(v) for k, v in obj.items()
                if k not in ("wall_time_s", "written") and not k.endswith("_seconds")}
    if isinstance(obj, list):
        return [_strip_timings(v) for v in obj]
    return obj


def _results(out: Path) -> dict[str, object]:
    """Every results file of `out`, timings removed; the probe weights as bytes."""
    files = {str(p.relative_to(out)): _strip_timings(json.loads(p.read_text())) for p in sorted(out.glob("*/*.json"))}
    files.update({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("*/probe.safetensors"))})
    return files


def _same_as_one_process(tmp_path: Path, args: list[str]) -> tuple[dict[str, object], str]:
    """(the two-rank results, its output); each side with its own caches, so that the ranks extract
    their features and corrupt their cells."""
    one, two = tmp_path / "one", tmp_path / "two"
    _coanalysis([*args, "--out", str(one)], ranks=1, cache=tmp_path / "cache-one")
    done = _coanalysis([*args, "--out", str(two)], ranks=2, cache=tmp_path / "cache-two")
    expected, got = _results(one), _results(two)
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert got[name] == expected[name], name
    return got, done.stdout


def test_shards_deal_round_robin_and_models_go_to_ranks_when_there_are_enough():
    assert Shards(rank=1, world=3).mine(list("abcdefg")) == ["b", "e"]
    team = Shards(rank=1, world=2)
    mine, cells = assign_models(team, ["a", "b", "c"])
    assert mine == ["b"] and cells.world == 1  # a model per rank, run alone
    mine, cells = assign_models(team, ["a"])
    assert mine == ["a"] and cells is team  # one model: its cells are split
    assert list(Shards().deal(["x", "y"], lambda k: {"k": k})) == [{"x": {"k": "x"}}, {"y": {"k": "y"}}]


def test_the_cells_of_a_last_partial_round_are_split_by_images_when_the_analysis_allows():
    keys = ["a", "b", "c", "d", "e"]
    assert split_rounds(keys, 2, True) == (["a", "b", "c", "d"], ["e"])
    assert split_rounds(keys, 8, True) == ([], keys)  # fewer cells than ranks: every cell split
    assert split_rounds(keys, 5, True) == (keys, [])
    assert split_rounds(keys, 2, False) == (keys, [])
    assert split_rounds(keys, 1, True) == (keys, [])


def test_an_image_split_joins_the_ranks_parts_in_rank_order():
    from coanalysis.distributed.image_split import _to_bytes

    posted = {}  # what rank 1 sent, as the exchange returns it to rank 0
    split = ImageSplit(rank=0, world=2, exchange=lambda mine: [mine, posted["rank 1"]])
    assert split.rows(100, 16) == (0, 48) and ImageSplit(rank=1, world=2, exchange=print).rows(100, 16) == (48, 100)
    posted["rank 1"] = _to_bytes(torch.tensor([True, False, True]))
    assert split.join(torch.tensor([False, False])).tolist() == [False, False, True, False, True]
    posted["rank 1"] = _to_bytes(torch.tensor(0.5, dtype=torch.float64))
    assert split.largest(0.25) == 0.5
    part = torch.tensor([1, 2])
    assert ImageSplit().join(part) is part and ImageSplit().rows(7, 2) == (0, 7)  # whole: everything, unchanged


def test_feature_shards_are_whole_batches_covering_the_subset_in_order():
    from coanalysis.distributed.image_split import batch_rows

    for n, batch, world in ((100, 16, 2), (100, 16, 3), (5, 16, 2), (64, 16, 4), (1000, 256, 8)):
        rows = [batch_rows(n, batch, r, world) for r in range(world)]
        assert rows[0][0] == 0 and rows[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(rows, rows[1:]))  # contiguous, in rank order
        assert all(start % batch == 0 for start, _ in rows)  # every shard starts on a batch boundary


def test_cells_dealt_and_a_cell_split_by_images_on_two_ranks_equal_one_process(tiny_runs, tmp_path):
    """Noise: a round of two cells dealt whole, the third split over both ranks by images (64 images
    in batches of 16: two batches each); PGD: its one cell (and the convergence re-run at 2x the
    steps) split, each batch keeping its seeded random start; crops: its one cell split. Corruptions
    and dropout: the slow test."""
    got, out = _same_as_one_process(tmp_path, [
        "robustness", "--ckpt", str(tiny_runs["byol"]), "--name", "byol", "--only", "noise,pgd,crops",
        "--sigmas", "0,0.2,0.4", "--eps", "linf=4/255", "--steps", "2", "--scales", "0.5", *COMMON])
    assert len(got["byol/noise.json"]["cells"]) == 3 and got["byol/pgd.json"]["complete"]
    assert got["byol/pgd.json"]["cells"]["linf eps=4/255"]["convergence"]["steps"] == 4
    for analysis, dealt in (("noise", 2), ("pgd", 0), ("crops", 0)):
        assert f"byol/{analysis}: {dealt} cells dealt over 2 ranks, 1 split over them by images" in out


@pytest.mark.slow
def test_corruptions_and_dropout_on_two_ranks_equal_one_process(tiny_runs, tmp_path):
    """Seven cells each: three rounds dealt, the last cell split (gaussian_noise/4: each rank generates and
    classifies its half of the 32 images)."""
    _, out = _same_as_one_process(tmp_path, [
        "robustness", "--ckpt", str(tiny_runs["co-byol"]), "--name", "co", "--only", "corruptions,dropout",
        "--corruptions", "fog,contrast,gaussian_noise", "--severities", "1,4", "--corruption-n", "32", "--workers", "1",
        "--masks", "2", "--spatial-ps", "0,0.5,1-1/hw",
        "--channel-ps", "0,0.5", "--noise-alphas", "0,1", *COMMON])
    assert "co/corruptions: 6 cells dealt over 2 ranks, 1 split" in out and "co/dropout: 6 cells dealt" in out


@pytest.mark.slow
def test_redundancy_and_erf_on_two_ranks_equal_one_process(tiny_runs, tmp_path):
    ckpt = ["--ckpt", str(tiny_runs["co-byol"]), "--name", "co"]
    _same_as_one_process(tmp_path / "redundancy", ["redundancy", *ckpt, "--n-images", "48", "--pairs", "300",
                                                   "--bootstrap", "50", *COMMON])
    _same_as_one_process(tmp_path / "erf", ["erf", *ckpt, "--images", "eval", "--dataset", "synthetic", "--n-images",
                                            "6", "--methods", "gradient,smoothgrad", "--smoothgrad-samples", "2",
                                            *COMMON])


@pytest.mark.slow
def test_similarity_on_two_ranks_equals_one_process(tiny_runs, tmp_path):
    """Each rank extracts half of the 60 images (batches of 16: 32 and 28) of both models; rank 0 joins
    the pooled features and the drawn local vectors and computes CKA and RankMe as one process does."""
    _same_as_one_process(tmp_path, [
        "similarity", "--ckpt", str(tiny_runs["byol"]), "--ckpt", str(tiny_runs["co-byol"]), "--name", "byol",
        "--name", "co", "--n-images", "60", "--cka-batch", "16", "--local-rows", "300", *COMMON])


@pytest.mark.slow
def test_two_models_go_one_to_each_rank_and_equal_one_process(tiny_runs, tmp_path):
    got, _ = _same_as_one_process(tmp_path, [
        "robustness", "--ckpt", str(tiny_runs["byol"]), "--ckpt", str(tiny_runs["co-byol"]), "--name", "byol",
        "--name", "co", "--only", "noise,crops", "--sigmas", "0,0.3", "--scales", "1,0.5", *COMMON])
    assert {"byol/noise.json", "co/noise.json", "byol/crops.json", "co/crops.json"} <= set(got)


PGD_MANY = ["--only", "pgd", "--eps", "linf=0,1/255,2/255,3/255,4/255,5/255,6/255,8/255", "--steps", "12"]


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["dead", "frozen"])
def test_a_dead_or_frozen_rank_stops_the_other_within_the_timeout(tiny_runs, tmp_path, how):
    port, procs = free_port(), []
    out = tmp_path / "res"
    for rank in range(2):
        env = {**ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": "2",
               "LOCAL_RANK": str(rank)}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "coanalysis", "robustness", "--ckpt", str(tiny_runs["byol"]), "--name", "byol",
             *PGD_MANY, *COMMON,
             "--dist-timeout", "8", "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True))
    result = out / "byol" / "pgd.json"
    deadline = time.time() + 180
    while not result.exists() and time.time() < deadline and procs[0].poll() is None:
        time.sleep(0.1)
    try:
        assert result.exists(), procs[0].stderr.read() if procs[0].poll() is not None else "no cell in 180 s"
        procs[1].send_signal(how)
        stopped = time.time()
        code = procs[0].wait(timeout=60)
        waited = time.time() - stopped
        message = procs[0].stderr.read()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert code == 2 and waited < 8 + 10, (code, waited)
    assert "rank 1 has not been heard from for 8 s" in message and "Re-run the command" in message


@pytest.mark.slow
def test_a_job_killed_with_sigkill_resumes_from_its_finished_cells(tiny_runs, tmp_path):
    args = ["robustness", "--ckpt", str(tiny_runs["byol"]), "--name", "byol", *PGD_MANY, *COMMON]
    job = subprocess.Popen([*TORCHRUN, "-m", "coanalysis", *args, "--out", str(tmp_path / "two")], env=ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    result = tmp_path / "two" / "byol" / "pgd.json"
    deadline = time.time() + 180
    try:
        while time.time() < deadline and job.poll() is None:
            if result.exists() and len(json.loads(result.read_text())["cells"]) >= 2:
                break
            time.sleep(0.05)
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # torchrun and both ranks
        job.wait()
    partial = json.loads(result.read_text())
    assert 2 <= len(partial["cells"]) < 8 and not partial["complete"]
    again = _coanalysis([*[a for a in args if a != "--no-progress"], "--out", str(tmp_path / "two")], ranks=2)
    assert f"{len(partial['cells'])} of 8 cells already done" in again.stdout
    _coanalysis([*args, "--out", str(tmp_path / "one")], ranks=1)
    assert _results(tmp_path / "two") == _results(tmp_path / "one")
