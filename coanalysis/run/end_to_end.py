"""The main job: train BYOL and CO-BYOL on Fashion-MNIST, analyse both, render the comparison.

Training runs as `python -m co_ssl_train train ... --resume`, exactly what a user would type, so
an interrupted demo continues where it stopped and a finished model is never retrained; the
analyses skip their finished cells the same way. Every `ANALYSES` entry with a `demo` protocol
runs, for each model, after its linear probe. Each phase is announced with its number, the
elapsed time and its own progress bar; at the end the demo prints a summary table, the report's
takeaways, the time per phase and the report's path, and records the same in `demo.json` beside
the report.

Presets (ours):
- `cpu`: a width-16 ResNet-10 (CIFAR stem), time-boxed training (one epoch over 20 480 images),
  probe on 10 000 training images, evaluation on 2 000 test images; within 10 minutes on 2 cores.
- `gpu`: a full ResNet-18 (CIFAR stem) for 30 epochs, probe and evaluation on the full splits.
- `smoke`: a width-8 ResNet-10 trained for 2 steps, small subsets; checks the whole pipeline in
  about a minute (the analyses use their `cpu` protocols).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coanalysis.models.trainer import UserError, load_dataset, write_json_atomic
from coanalysis.models.trainer_io import writable_dir


@dataclass(frozen=True)
class Preset:
    train_flags: tuple[str, ...]
    n: int | None  # evaluation subset
    n_train: int | None  # probe training subset
    batch_size: int  # inference batch
    description: str
    analysis_preset: str  # the preset name passed to each analysis's `demo`


PRESETS = {
    "cpu": Preset(("--arch", "resnet10", "--width", "16", "--proj-hidden", "512", "--proj-dim", "128",
                   "--batch-size", "256", "--subset", "20480", "--epochs", "1", "--warmup-epochs", "0.05",
                   "--lr", "1.0"),
                  n=2000, n_train=10000, batch_size=500, analysis_preset="cpu",
                  description="ResNet-10 width 16, one epoch over 20 480 images (80 steps of 256) per model"),
    "gpu": Preset(("--arch", "resnet18", "--batch-size", "512", "--epochs", "30", "--warmup-epochs", "2",
                   "--lr", "1.0"),
                  n=None, n_train=None, batch_size=1024, analysis_preset="gpu",
                  description="ResNet-18, 30 epochs per model, full test split"),
    "smoke": Preset(("--arch", "resnet10", "--width", "8", "--proj-hidden", "32", "--proj-dim", "16",
                     "--batch-size", "32", "--epochs", "1", "--max-steps", "2", "--warmup-epochs", "0"),
                    n=256, n_train=512, batch_size=128, analysis_preset="cpu",
                    description="ResNet-10 width 8, 2 training steps per model (a pipeline check, not a result)"),
}
METHODS = ("byol", "co-byol")
BASELINE = "byol"


@dataclass
class Progress:
    """Numbered phases with elapsed time, and how long each took."""

    total: int
    start: float = field(default_factory=time.perf_counter)
    done: int = 0
    times: list[tuple[str, float]] = field(default_factory=list)
    _current: tuple[str, float] | None = None

    def phase(self, text: str) -> None:
        self.finish()
        self.done += 1
        elapsed = int(time.perf_counter() - self.start)
        print(f"\n[{self.done}/{self.total}] {text}  (elapsed {elapsed // 60}:{elapsed % 60:02d})", flush=True)
        self._current = (text, time.perf_counter())

    def finish(self) -> None:
        if self._current is not None:
            self.times.append((self._current[0], time.perf_counter() - self._current[1]))
            self._current = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def ensure_data(data_root: str | None, download: bool) -> None:
    """Fail early, with the ways to get Fashion-MNIST, when it is not available."""
    load_dataset("fashion-mnist", "test", root=data_root, download=download)


def train_model(method: str, run_name: str, preset: Preset, checkpoints: Path, data_root: str | None,
                download: bool, device: str, progress: bool = True) -> Path:
    cmd = [sys.executable, "-m", "co_ssl_train", "train", "--method", method, "--dataset", "fashion-mnist",
           "--run-name", run_name, "--out", str(checkpoints), "--resume", "--device", device, *preset.train_flags]
    if data_root:
        cmd += ["--data-root", data_root]
    if download:
        cmd += ["--download"]
    if not progress:
        cmd += ["--no-progress"]
    print("$ " + " ".join(cmd[1:]).replace("-m co_ssl_train", "co-ssl-train", 1), flush=True)
    code = subprocess.call(cmd)
    if code != 0:
        raise UserError(f"training {method} failed (exit code {code}); see the message above")
    return checkpoints / run_name


def mean_cell_accuracy(cells: dict[str, dict[str, Any]]) -> float | None:
    """Mean of the cells' accuracies (fractions), or None when the cells hold no accuracy."""
    values = [c["accuracy"] for c in cells.values() if isinstance(c.get("accuracy"), (int, float))]
    return sum(values) / len(values) if values else None


def summary_table(clean: dict[str, float], results: dict[str, dict[str, Any]],
                  intervals: dict[str, tuple[float, float] | None] | None = None,
                  seeds: dict[str, int] | None = None) -> list[str]:
    """Terminal lines: per model, probe top-1 (with its 95% image-bootstrap interval when given)
    and each analysis's mean top-1 over its conditions; then how many seeds each model rests on."""
    analyses = [a for a in dict.fromkeys(a for per in results.values() for a in per)
                if any(mean_cell_accuracy(results[m][a].cells) is not None for m in results if a in results[m])]
    width = max([len(m) for m in clean] + [5])
    intervals = intervals or {}
    lines = [f"{'model':{width}s}  {'clean [95% CI]':>20s}" + "".join(f"  {a:>11s}" for a in analyses)]
    for model, acc in clean.items():
        iv = intervals.get(model)
        text = f"{100 * acc:.1f}%" + (f" [{100 * iv[0]:.1f}, {100 * iv[1]:.1f}]" if iv else "")
        row = f"{model:{width}s}  {text:>20s}"
        for a in analyses:
            r = results[model].get(a)
            mean = mean_cell_accuracy(r.cells) if r is not None else None
            row += f"  {'–':>11s}" if mean is None else f"  {100 * mean:10.1f}%"
        lines.append(row)
    if analyses:
        counts = {a: len(per[a].cells) for per in reversed(list(results.values())) for a in per}
        lines.append("clean: linear-probe top-1 [95% image-bootstrap interval]; then each analysis's mean top-1 over "
                     "its conditions ("
                     + ", ".join(f"{a}: {counts[a]}" for a in analyses) + ")")
        if "redundancy" in analyses:
            lines.append("redundancy: the probe's top-1 when it is given one local vector (centre, random) instead "
                         "of the global one; its correlations are in the takeaways")
    if seeds is not None:
        counts = sorted(set(seeds.values()))
        lines.append("seeds per model: " + ", ".join(f"{m} {seeds.get(m, 1)}" for m in clean)
                     + ("; one seed: training noise not measured" if counts == [1] else ""))
    return lines


def _probe_interval(result: Any) -> tuple[float, float] | None:
    """The stored 95% interval of a probe result's accuracy (None before result schema 3)."""
    cell = next(iter(result.cells.values()), {}) if result is not None else {}
    return tuple(cell["interval"]) if cell.get("interval") else None


def run_demo(name: str = "demo", preset_name: str = "cpu", *, data_root: str | None = None, download: bool = False,
             checkpoints: Path = Path("checkpoints"), reports: Path = Path("reports"), device: str = "auto",
             progress: bool = True) -> Path:
    """Train, analyse and report; returns the report's path. Missing data is said before any
    folder is made; `checkpoints` and `reports` are made (or refused in one line) next."""
    import torch

    from coanalysis.analyses import ANALYSES
    from coanalysis.run.pipeline import Session, make_context, open_model, run_analysis
    from coanalysis.report.data import ReportData
    from coanalysis.report.render import render

    if preset_name not in PRESETS:
        raise UserError(f"unknown preset {preset_name!r}; choose one of: {', '.join(PRESETS)}")
    if preset_name == "gpu" and not torch.cuda.is_available():
        raise UserError("--preset gpu needs CUDA, which is not available here; use --preset cpu")
    preset = PRESETS[preset_name]
    analyses = [a for a in ANALYSES.values() if a.demo is not None]
    clock = Progress(total=len(METHODS) * (2 + len(analyses)) + 1)
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()
    ensure_data(data_root, download)
    checkpoints, reports = writable_dir(str(checkpoints), "--checkpoints"), writable_dir(str(reports), "--reports")
    folder = reports / name
    results = folder / "results"
    resumed = any((checkpoints / f"{name}-{m}").exists() for m in METHODS) or results.exists()
    print(f"co-ssl demo '{name}', preset {preset_name}: {preset.description}")
    print(f"analyses: linear probe, {', '.join(a.name for a in analyses) or 'none'}; report: {folder / 'report.html'}")

    # ---- training: one co-ssl-train run per method, resumed if it exists ---------------------------
    runs = {}
    for method in METHODS:
        clock.phase(f"training {method}")
        runs[method] = train_model(method, f"{name}-{method}", preset, checkpoints, data_root, download, device,
                                   progress)

    # ---- analyses: probe, then every analysis with a demo protocol, cell by cell -------------------
    session = Session(out=results, dataset="fashion-mnist", data_root=data_root, n=preset.n, n_train=preset.n_train,
                      device_name=device, batch_size=preset.batch_size, progress=progress)
    clean: dict[str, float] = {}
    n_eval = 0
    done: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for method, run_dir in runs.items():
        clock.phase(f"{method}: linear probe")
        ctx = make_context(session, open_model(session, str(run_dir), method))
        clean[method], done[method], n_eval = ctx.clean_accuracy, {}, len(ctx.data)
        for analysis in analyses:
            clock.phase(f"{method}: {analysis.title}")
            try:
                done[method][analysis.name] = run_analysis(session, ctx, analysis,
                                                           analysis.demo(preset.analysis_preset))
            except UserError as e:
                skipped.append(f"{method}/{analysis.name}: {e}")
                print(f"skipped {method}/{analysis.name}: {e}", flush=True)

    # ---- report ---------------------------------------------------------------------------------------
    clock.phase("rendering the report")
    before_report = clock.elapsed
    note = (f"Made by coanalysis demo (preset {preset_name}: {preset.description}) on {date}, "
            f"device {session.env['device']}; training and analyses took {before_report / 60:.1f} min"
            + (" in this invocation, which resumed earlier work." if resumed else "."))
    data = ReportData.from_folders([results], BASELINE)
    rendered = render(data, folder / "report.html", title="co-ssl demo: BYOL vs CO-BYOL on Fashion-MNIST",
                      note=note, progress=progress)
    clock.finish()
    wall = clock.elapsed

    intervals = {m: _probe_interval(data.results.get((m, "probe"))) for m in clean}
    print("\n" + "\n".join(summary_table(clean, done, intervals, data.seeds)))
    print(f"(Fashion-MNIST test images: n = {n_eval}; device {session.env['device']})")
    if rendered.takeaways:
        print("\ntakeaways (computed from the results):")
        for section, line in rendered.takeaways:
            print(f"  {section}: {line}")
    if skipped:
        print(f"\n{len(skipped)} analyses skipped:")
        for line in skipped:
            print(f"  {line}")
    print("\ntime per phase: " + ", ".join(f"{text} {seconds:.0f} s" for text, seconds in clock.times))
    print(f"demo wall time {wall / 60:.1f} min" + (" (resumed: finished work was reused)" if resumed else ""))
    write_json_atomic(folder / "demo.json", {
        "date": date, "preset": preset_name, "description": preset.description, "device": session.env["device"],
        "versions": session.env["versions"], "wall_time_s": round(wall, 1), "resumed": resumed,
        # timings depend on what else runs: record the machine's load (1, 5, 15 min) around the demo
        "cpus": os.cpu_count(), "load_average_start": [round(x, 2) for x in load_before],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "phases": [{"phase": text, "seconds": round(s, 1)} for text, s in clock.times],
        "clean_accuracy": clean, "skipped": skipped, "report": str(rendered.path),
        "takeaways": [line for _, line in rendered.takeaways]})
    print(f"\nreport: {rendered.path.resolve()}")
    return rendered.path
