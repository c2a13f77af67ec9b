"""The main job: train BYOL and CO-BYOL on Fashion-MNIST, analyse both, render the comparison.

Training runs as `python -m co_ssl_train train ... --resume`, exactly what a user would type, so
an interrupted demo continues where it stopped and a finished model is never retrained; the
analyses skip their finished cells the same way.

Presets (ours):
- `cpu`: a width-16 ResNet-10 (CIFAR stem), time-boxed training, probe on 10 000 training
  images, evaluation on 2 000 test images; about 5 minutes on 2 cores.
- `gpu`: a full ResNet-18 (CIFAR stem) for 30 epochs, probe and evaluation on the full splits.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from coanalysis.loading import UserError, load_dataset


@dataclass(frozen=True)
class Preset:
    train_flags: tuple[str, ...]
    n: int | None  # evaluation subset
    n_train: int | None  # probe training subset
    batch_size: int  # inference batch
    description: str


PRESETS = {
    "cpu": Preset(("--arch", "resnet10", "--width", "16", "--proj-hidden", "512", "--proj-dim", "128",
                   "--batch-size", "256", "--subset", "28160", "--epochs", "1", "--warmup-epochs", "0.05",
                   "--lr", "1.0"),
                  n=2000, n_train=10000, batch_size=500,
                  description="ResNet-10 width 16, one epoch over 28 160 images (110 steps of 256) per model"),
    "gpu": Preset(("--arch", "resnet18", "--batch-size", "512", "--epochs", "30", "--warmup-epochs", "2",
                   "--lr", "1.0"),
                  n=None, n_train=None, batch_size=1024,
                  description="ResNet-18, 30 epochs per model, full test split"),
}
METHODS = ("byol", "co-byol")


def _phase(i: int, total: int, text: str) -> None:
    print(f"\n[{i}/{total}] {text}", flush=True)


def ensure_data(data_root: str | None, download: bool) -> None:
    """Fail early, with the ways to get Fashion-MNIST, when it is not available."""
    load_dataset("fashion-mnist", "test", root=data_root, download=download)


def train_model(method: str, run_name: str, preset: Preset, checkpoints: Path, data_root: str | None,
                download: bool, device: str) -> Path:
    cmd = [sys.executable, "-m", "co_ssl_train", "train", "--method", method, "--dataset", "fashion-mnist",
           "--run-name", run_name, "--out", str(checkpoints), "--resume", "--device", device, *preset.train_flags]
    if data_root:
        cmd += ["--data-root", data_root]
    if download:
        cmd += ["--download"]
    print("$ " + " ".join(cmd[1:]).replace("-m co_ssl_train", "co-ssl-train", 1), flush=True)
    code = subprocess.call(cmd)
    if code != 0:
        raise UserError(f"training {method} failed (exit code {code}); see the message above")
    return checkpoints / run_name


def run_demo(name: str = "demo", preset_name: str = "cpu", *, data_root: str | None = None, download: bool = False,
             checkpoints: Path = Path("checkpoints"), reports: Path = Path("reports"), device: str = "auto") -> Path:
    """Train, analyse and report; returns the report's path."""
    import torch

    from coanalysis.analyses import ANALYSES
    from coanalysis.analyses.noise import NoiseProtocol
    from coanalysis.pipeline import Session, make_context, open_model, run_analysis
    from coanalysis.report import render_report

    if preset_name not in PRESETS:
        raise UserError(f"unknown preset {preset_name!r}; choose one of: {', '.join(PRESETS)}")
    if preset_name == "gpu" and not torch.cuda.is_available():
        raise UserError("--preset gpu needs CUDA, which is not available here; use --preset cpu")
    preset = PRESETS[preset_name]
    start = time.perf_counter()
    print(f"co-ssl demo '{name}', preset {preset_name}: {preset.description}")
    ensure_data(data_root, download)
    total = len(METHODS) + 2
    runs = {}
    for i, method in enumerate(METHODS, 1):
        _phase(i, total, f"training {method}")
        runs[method] = train_model(method, f"{name}-{method}", preset, checkpoints, data_root, download, device)

    analyses = [a for a in ANALYSES.values() if a.demo is not None]
    _phase(len(METHODS) + 1, total, f"analysing: linear probe, {', '.join(a.name for a in analyses)}")
    results = reports / name / "results"
    session = Session(out=results, dataset="fashion-mnist", data_root=data_root, n=preset.n, n_train=preset.n_train,
                      device_name=device, batch_size=preset.batch_size)
    summary = {}
    for method, run_dir in runs.items():
        encoder = open_model(session, str(run_dir), method)
        ctx = make_context(session, encoder)
        done = {a.name: run_analysis(session, ctx, a, a.demo(preset_name)) for a in analyses}
        summary[method] = (ctx.clean_accuracy, done["noise"])

    _phase(total, total, "rendering the report")
    report = render_report([results], reports / name / "report.html", baseline="byol",
                           title="co-ssl demo: BYOL vs CO-BYOL on Fashion-MNIST")
    wall = time.perf_counter() - start
    sigmas = NoiseProtocol().sigmas
    print(f"\n{'model':10s} {'clean':>7s} " + " ".join(f"{'σ=' + format(s, 'g'):>7s}" for s in sigmas))
    for method, (clean, noise) in summary.items():
        accs = [noise.cells[f"sigma={s:g}"]["accuracy"] for s in sigmas]
        print(f"{method:10s} {100 * clean:6.1f}% " + " ".join(f"{100 * a:6.1f}%" for a in accs))
    n = next(iter(summary.values()))[1].protocol["data"]["n"]
    print(f"(probe top-1 on n = {n} Fashion-MNIST test images, noise seed 0; demo wall time {wall / 60:.1f} min)")
    print(f"\nreport: {report.resolve()}")
    return report
