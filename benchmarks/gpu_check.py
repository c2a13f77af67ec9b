"""One command on a fresh GPU machine: every benchmark's GPU variant and a shortened GPU demo, one table.

    python -m benchmarks.gpu_check                      # on the GPU machine, from the repository root
    python -m benchmarks.gpu_check --wheels .whl        # install missing packages from wheels first (no network)
    python -m benchmarks.gpu_check --download-wheels .whl   # beforehand, on a machine with network
    python -m benchmarks.gpu_check --dry-run            # the same steps at tiny sizes on the CPU

Steps, each a subprocess with its own time limit inside an 8-minute budget: `train_throughput` (and
its ViT rows), `feature_throughput` (ResNet-50 and ViT-S/16), `analysis_throughput`,
`robustness_throughput` (all rows, with the 1-vs-N-GPU scaling row) at their full sizes, then
`coanalysis demo --preset gpu` shortened to `DEMO_STEPS` training steps per model and `DEMO_N`
evaluation images. Each benchmark writes
`benchmarks/results/<name>-<gpu>.json` (`<gpu>` from the device name, e.g. `nvidia-h200`); the table
of every target with its value and pass/fail goes to the screen and to
`benchmarks/results/gpu_check-<gpu>.json`. A step that fails or runs out of time fails its targets
and the check goes on. Exit code 0 when every target passed, 1 otherwise (in a dry run: 0 when every
step ran; CPU numbers say nothing about the GPU targets).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BUDGET_S = 480
WHEELS = ("foolbox", "eagerpy", "captum", "imagecorruptions-imaug", "timm")
DEMO_STEPS, DEMO_N = 150, 2000


@dataclass(frozen=True)
class Step:
    name: str
    args: tuple[str, ...]  # after `python`
    budget_s: float  # share of the total budget
    dry_args: tuple[str, ...]  # tiny CPU sizes for --dry-run


@dataclass(frozen=True)
class Target:
    step: str
    label: str
    path: str  # dotted path into the step's JSON
    op: str  # ">=" or "<="
    threshold: float


CPU = ("--device", "cpu")
STEPS = (
    Step("train_throughput", ("benchmarks/train_throughput.py",), 60,
         ("--arch", "resnet10", "--width", "8", "--batch-size", "32", "--proj-hidden", "64", "--proj-dim", "32",
          "--steps", "2", "--warmup", "1", "--repeats", "1", "--dataset-size", "128", *CPU)),
    # the ViT rows (issue 15): DINO / CO-DINO (the recipes' local grid) on ViT-S/16 224 px and ViT-tiny/4 32 px
    Step("train_throughput_vit", ("benchmarks/train_throughput.py", "--vit-only", "--vit-batch-size", "128,256",
                                  "--vit-steps", "10", "--vit-warmup", "3", "--repeats", "2"), 45,
         ("--vit-batch-size", "2,4", "--vit-steps", "1", "--vit-warmup", "1", "--vit-dataset-size", "8", "--repeats",
          "1", *CPU)),
    Step("feature_throughput", ("benchmarks/feature_throughput.py",), 30,
         ("--arch", "resnet18", "--image-size", "32", "--n", "64", "--batch-size", "32", "--repeats", "1", *CPU)),
    Step("feature_throughput_vit", ("benchmarks/feature_throughput.py", "--arch", "vit_small"), 30,
         ("--image-size", "32", "--n", "8", "--batch-size", "4", "--repeats", "1", *CPU)),
    Step("analysis_throughput", ("benchmarks/analysis_throughput.py",), 60,
         ("--quick", "--erf-arch", "resnet18", "--erf-size", "32", "--erf-images", "4", "--erf-batch", "4",
          "--red-images", "64", "--red-pairs", "500", *CPU)),
    Step("robustness_throughput", ("benchmarks/robustness_throughput.py",), 135,
         ("--quick", "--n", "16", "--gen-images", "4", "--pgd-batch", "16", "--steps", "2", "--per-image", "1", *CPU)),
    Step("demo", ("-m", "benchmarks.gpu_check", "--demo"), 120, ("--dry-run",)),
)
TARGETS = (
    Target("train_throughput", "BYOL full step / bare compute", "methods.byol.full_over_bare", ">=", 0.85),
    Target("train_throughput", "CO-BYOL / BYOL images/s", "co_over_plain.co-byol_over_byol", ">=", 0.9),
    Target("train_throughput", "CO-BYOL 50k-image epoch, s", "methods.co-byol.epoch_50k_s", "<=", 8.0),
    *(Target("train_throughput_vit", f"{label} {m.upper()} full step / bare compute",
             f"vit_rows.{row}.methods.{m.lower()}.full_over_bare", ">=", 0.85)
      for label, row in (("ViT-S/16", "vit_small_16_224px"), ("ViT-tiny/4", "vit_tiny_4_32px"))
      for m in ("dino", "co-dino")),
    Target("train_throughput_vit", "ViT-S/16 CO-DINO / DINO (imagenet100 recipe: 7x7 grid, 24 positions)",
           "vit_rows.vit_small_16_224px.co_dino_over_dino", ">=", 0.9),
    Target("train_throughput_vit", "ViT-tiny/4 CO-DINO / DINO (cifar10 recipe: 4x4 grid, 8 positions)",
           "vit_rows.vit_tiny_4_32px.co_dino_over_dino", ">=", 0.9),
    Target("feature_throughput", "extraction / bare forward", "ratio_extraction_over_bare", ">=", 0.9),
    Target("feature_throughput_vit", "ViT-S/16 extraction / bare timm forward", "ratio_extraction_over_bare", ">=",
           0.9),
    Target("analysis_throughput", "ERF / 4 forward+backward", "erf.ratio", "<=", 1.2),
    Target("analysis_throughput", "redundancy statistics / extraction", "redundancy.ratio", "<=", 0.10),
    Target("robustness_throughput", "corruptions 2 / 1 workers", "a_generation.speedup_2_vs_1_pool", ">=", 1.7),
    Target("robustness_throughput", "warm sweep / pure forward", "b_sweep.ratio_warm_sweep_over_pure_forward", "<=",
           1.2),
    Target("robustness_throughput", "PGD / steps x forward+backward",
           "c_pgd.ratio_pgd_over_steps_x_forward_backward", "<=", 1.3),
    Target("robustness_throughput", "ImageNet-C estimate, s", "d_imagenet_estimate.total_s_overlapped", "<=", 900),
    Target("robustness_throughput", "warm sweep N ranks / 1 rank", "e_scaling.speedup", ">=", 0.0),  # see _threshold
    Target("demo", "shortened GPU demo completed", "completed", ">=", 1),
    Target("gpu_check", "whole check, s", "wall_time_s", "<=", BUDGET_S),
)


def device_slug() -> str:
    import torch

    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def missing_packages() -> list[str]:
    out = []
    for name in WHEELS:
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out.append(name)
    return out


def install_wheels(folder: Path) -> list[str]:
    """Install the packages of `WHEELS` this machine lacks from the wheels in `folder` (no network)."""
    missing = missing_packages()
    if missing:
        cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(folder), *missing]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"gpu_check: could not install {', '.join(missing)} from {folder}:\n{done.stderr[-1500:]}\n"
                     f"prepare the folder with: python -m benchmarks.gpu_check --download-wheels {folder}")
    return missing


def download_wheels(folder: Path, also: list[str]) -> None:
    """`pip download` the wheels of `WHEELS` (and `also`) into `folder`, without their dependencies
    (torch and the scientific stack are expected on the GPU machine)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(folder),
           *WHEELS, *also]
    subprocess.run(cmd, check=True)
    print(f"wheels in {folder}: {', '.join(sorted(p.name for p in folder.glob('*.whl')))}")


def _value(data: dict, path: str):
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _threshold(target: Target, data: dict) -> float:
    if target.path == "e_scaling.speedup":
        return float(_value(data, "e_scaling.target_speedup") or 0.0)
    return target.threshold


def evaluate(results: dict[str, dict], outcomes: dict[str, str]) -> list[dict]:
    """One row per target: value, threshold, and pass / fail / the step's failure."""
    rows = []
    for t in TARGETS:
        data = results.get(t.step, {})
        value, threshold = _value(data, t.path), _threshold(t, data)
        if outcomes.get(t.step) == "skipped":
            status = "skipped"
        elif value is None:
            status = f"FAIL ({outcomes.get(t.step, 'no result')})"
        elif t.path == "e_scaling.speedup" and data["e_scaling"]["ranks"] == 1:
            status = "n/a (one GPU)"
        else:
            ok = value >= threshold if t.op == ">=" else value <= threshold
            status = "pass" if ok else "FAIL"
        rows.append({"step": t.step, "target": t.label, "value": value, "op": t.op, "threshold": threshold,
                     "status": status})
    return rows


def print_table(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    print(f"{'step':22s} {'target':38s} {'value':>10s}   {'target':>10s}  status")
    for r in rows:
        value = r["value"]
        value = "–" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)
        print(f"{r['step']:22s} {r['target']:38s} {value:>10s}   {r['op']} {r['threshold']:<7g}  {r['status']}")


def run_steps(dry: bool, results_dir: Path, slug: str, budget_s: float, only: list[str] | None,
              data_root: str | None = None) -> dict:
    started = time.perf_counter()
    env = {**os.environ, "GIT_PYTHON_REFRESH": "quiet",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    results, outcomes, times = {}, {}, {}
    for step in STEPS:
        if only and step.name not in only:
            outcomes[step.name] = "skipped"
            continue
        out = results_dir / f"{step.name}-{slug}.json"
        left = budget_s - (time.perf_counter() - started)
        # a step may overrun its share by a quarter while the total lasts; a dry run has no budget (any CPU)
        limit = 900.0 if dry else max(10.0, min(left, 1.25 * step.budget_s * budget_s / BUDGET_S))
        cmd = [sys.executable, *step.args, *(step.dry_args if dry else ()), "--out", str(out)]
        if step.name == "demo" and data_root:
            cmd += ["--data-root", data_root]
        print(f"[{time.perf_counter() - started:5.0f} s] {step.name} (limit {limit:.0f} s) ...", flush=True)
        t0 = time.perf_counter()
        try:
            done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=limit)
            outcomes[step.name] = "ok" if done.returncode == 0 else f"exit {done.returncode}"
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
        except subprocess.TimeoutExpired:
            outcomes[step.name] = f"timed out after {limit:.0f} s"
        times[step.name] = round(time.perf_counter() - t0, 1)
        if outcomes[step.name] == "ok" and out.is_file():
            results[step.name] = json.loads(out.read_text())
    wall = time.perf_counter() - started
    results["gpu_check"] = {"wall_time_s": wall}
    rows = evaluate(results, outcomes)
    return {"benchmark": "gpu_check", "device": slug, "dry_run": dry, "budget_s": budget_s, "wall_time_s": wall,
            "step_seconds": times, "outcomes": outcomes, "rows": rows}


def run_demo(dry: bool, out: Path, data_root: str | None) -> None:
    """The GPU demo with `DEMO_STEPS` training steps per model and `DEMO_N` evaluation images (the
    smoke preset on the CPU in a dry run); writes `{"completed": 1, ...}` to `out`."""
    import dataclasses

    from coanalysis.run import end_to_end as demo
    from coanalysis.models.trainer import write_json_atomic

    work = Path(tempfile.mkdtemp(prefix="co-ssl-gpu-check-"))
    if dry:
        name, device = "smoke", "cpu"
    else:
        gpu = demo.PRESETS["gpu"]
        demo.PRESETS["gpu-check"] = dataclasses.replace(
            gpu, train_flags=(*gpu.train_flags, "--max-steps", str(DEMO_STEPS)), n=DEMO_N, n_train=5 * DEMO_N,
            description=f"{gpu.description}, shortened by gpu_check to {DEMO_STEPS} steps and n = {DEMO_N}")
        name, device = "gpu-check", "cuda"
    t0 = time.perf_counter()
    demo.run_demo("check", name, data_root=data_root, checkpoints=work / "checkpoints", reports=work / "reports",
                  device=device, progress=False)
    write_json_atomic(out, {"benchmark": "demo", "preset": name, "completed": 1,
                            "wall_time_s": time.perf_counter() - t0,
                            "report": str(work / "reports" / "check" / "report.html")})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: checks the steps and the table")
    p.add_argument("--wheels", metavar="DIR", help="install missing packages from the wheels in DIR first")
    p.add_argument("--download-wheels", metavar="DIR", help="download the wheels into DIR and stop (needs network)")
    p.add_argument("--also", nargs="*", default=[], help="more packages for --download-wheels")
    p.add_argument("--results", metavar="DIR", help="where the JSON files go (default: benchmarks/results)")
    p.add_argument("--budget", type=float, default=BUDGET_S, help=f"seconds for everything (default: {BUDGET_S})")
    p.add_argument("--only", help="comma-separated steps (default: all)")
    p.add_argument("--data-root", metavar="DIR", help="folder holding FashionMNIST/raw/*-ubyte.gz for the demo "
                                                       "(default: Debian's dataset-fashion-mnist package)")
    p.add_argument("--demo", action="store_true", help=argparse.SUPPRESS)  # the demo step, run as a subprocess
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.download_wheels:
        download_wheels(Path(args.download_wheels), args.also)
        return 0
    if args.demo:
        run_demo(args.dry_run, Path(args.out), args.data_root)
        return 0
    installed = install_wheels(Path(args.wheels)) if args.wheels else []
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here; run it on the GPU machine, or pass --dry-run for the CPU check")
    slug = "dry-run" if args.dry_run else device_slug()
    results_dir = Path(args.results) if args.results else RESULTS
    results_dir.mkdir(parents=True, exist_ok=True)
    report = run_steps(args.dry_run, results_dir, slug, args.budget, args.only.split(",") if args.only else None,
                       args.data_root)
    report["installed_from_wheels"] = installed
    from coanalysis.models.trainer import write_json_atomic

    write_json_atomic(results_dir / f"gpu_check-{slug}.json", report)
    print_table(report["rows"], f"gpu_check on {slug}: {report['wall_time_s']:.0f} s (budget {args.budget:.0f} s)")
    if args.dry_run:  # CPU numbers say nothing about the GPU targets: the dry run checks that every step ran
        return 0 if all(o in ("ok", "skipped") for o in report["outcomes"].values()) else 1
    return 0 if all(r["status"] == "pass" or r["status"].startswith("n/a") for r in report["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
