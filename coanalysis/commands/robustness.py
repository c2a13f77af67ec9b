"""`coanalysis robustness`: the robustness protocol of PROTOCOLS.md sections 3-7 on one or more checkpoints.

Gaussian noise, common corruptions (ImageNet-C protocol), internal corruption of the local map
(spatial and channel dropout, feature noise), PGD and crop-scale accuracy. Results go to
`<out>/<model>/<analysis>.json`, one cell at a time; re-running the same command skips the
finished cells (and retries the cells a pre-rendered set was missing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from coanalysis.commands.common import (add_data_args, add_model_args, add_run_args, assigned_models, collect,
                                       session_from_args)
from coanalysis.models.trainer_io import COUNT, NON_NEGATIVE, POSITIVE, SEED, UNIT_OPEN_LOW, Number, NumberList, writable_dir

HELP = "noise, corruption, internal-dropout, PGD and crop-scale robustness of one or more checkpoints"
EXAMPLES = """examples:
  coanalysis robustness --ckpt checkpoints/demo-byol --ckpt checkpoints/demo-co-byol --out reports/cmp
  coanalysis robustness --ckpt RUN --only noise --sigmas 0,0.1,0.2 --n 2000
  coanalysis robustness --ckpt RUN --only corruptions --corruptions noise,fog --severities 1,3,5 --corruption-workers 8
  coanalysis robustness --ckpt A --ckpt B --only corruptions --corruptions-from data/CIFAR-10-C --baseline A
  coanalysis robustness --ckpt RUN --only pgd --eps linf=0,1/255,4/255 --eps l2=0,0.5 --steps 20 --pgd-n 1000
  coanalysis robustness --ckpt RUN --only autoattack --aa-eps linf=0,4/255 --aa-version cheap --aa-n 500
  coanalysis report reports/cmp           # then render the comparison

Every cell is saved as soon as it is done: interrupt at any time and re-run the same command to
continue. Corrupted images are generated on --corruption-workers processes (default: all cores) and
cached as uint8 under --corruption-cache, so a second checkpoint on the same data pays only its forward
passes. --workers is the DataLoader workers of folder datasets only, as in every command.
"""
ROBUSTNESS = ("noise", "corruptions", "dropout", "pgd", "crops")
OPTIONAL = ("autoattack", "shift")  # run only when named in --only


FRACTION = Number(float, low=0, high=1, high_open=True)  # dropout fractions, in [0, 1)
SEVERITY = Number(int, low=1, high=5)


def _floats(text: str, what: str, item: Number = NON_NEGATIVE) -> tuple:
    """Comma-separated numbers, each checked by `item` (finite; fractions such as 1/255 allowed)."""
    return NumberList(item).value(text, what)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    g = parser.add_argument_group("analyses")
    g.add_argument("--only", default=",".join(ROBUSTNESS),
                   help=f"comma-separated analyses: {', '.join(ROBUSTNESS + OPTIONAL)} "
                        "(default: all but autoattack and shift)")
    g.add_argument("--baseline", metavar="NAME",
                   help="model (a --name) the corruption errors are relative to (default: the first; "
                        "on ImageNet AlexNet's published errors are shown too)")
    g = parser.add_argument_group("noise (PROTOCOLS 3)")
    g.add_argument("--sigmas", type=NumberList(NON_NEGATIVE),
                   help="noise levels (default: 0,0.025,0.05,0.1,0.2,0.3,0.5)")
    g = parser.add_argument_group("common corruptions (PROTOCOLS 4)")
    g.add_argument("--corruptions", help="comma-separated names or groups (standard, extra, all, noise, blur, weather, "
                                         "digital; default: all 15 + 4)")
    g.add_argument("--severities", type=NumberList(SEVERITY),
                   help="comma-separated severities in 1..5 (default: all)")
    g.add_argument("--corruptions-from", metavar="DIR",
                   help="a pre-rendered set instead of generating: ImageNet-C / Tiny-ImageNet-C folders or "
                        "CIFAR-10-C / CIFAR-100-C .npy files")
    g.add_argument("--corruption-n", type=COUNT, metavar="N",
                   help="corrupt a seeded subset of N of the evaluation images (default: all of them)")
    g.add_argument("--corruption-seed", type=SEED, default=0, help="seed of the per-image corruptions (default: 0)")
    g.add_argument("--corruption-workers", type=COUNT, metavar="N",
                   help="processes that generate or decode corrupted images (default: all cores; 1: none, in this "
                        "process); the images do not depend on it")
    g.add_argument("--corruption-cache", metavar="DIR",
                   help="uint8 cache of corrupted images (default: <co-ssl cache>/corruptions; ImageNet's 5 000-image "
                        "75-cell sweep at 224 px takes about 56 GB)")
    g = parser.add_argument_group("internal corruption of the local map (PROTOCOLS 5)")
    g.add_argument("--spatial-ps", help="fractions of positions dropped, and 1-1/hw for a single kept position "
                                        "(default: 0,0.25,0.5,0.75,0.9,1-1/hw)")
    g.add_argument("--channel-ps", type=NumberList(FRACTION),
                   help="fractions of channels zeroed (default: 0,0.25,0.5,0.75,0.9)")
    g.add_argument("--noise-alphas", type=NumberList(NON_NEGATIVE),
                   help="feature noise in units of each channel's std (default: 0,0.25,0.5,1,2)")
    g.add_argument("--masks", type=COUNT, default=5, help="random masks per condition (default: 5)")
    g = parser.add_argument_group("PGD (PROTOCOLS 6)")
    g.add_argument("--eps", action="append", metavar="NORM=LIST",
                   help="budgets of one norm, e.g. linf=0,1/255,4/255 or l2=0,0.25 (repeat for both; default: "
                        "linf=0,0.25/255,0.5/255,1/255,2/255,4/255 and l2=0,0.1,0.25,0.5)")
    g.add_argument("--steps", type=COUNT, default=20, help="PGD steps (default: 20)")
    g.add_argument("--step-size", type=POSITIVE, default=0.1, help="step size relative to epsilon (default: 0.1)")
    g.add_argument("--abs-step-size", type=POSITIVE, help="absolute step size (overrides --step-size)")
    g.add_argument("--restarts", type=COUNT, default=1, help="random restarts; an image is broken if any succeeds")
    g.add_argument("--no-random-start", action="store_true", help="start PGD at the clean image")
    g.add_argument("--pgd-n", type=COUNT, metavar="N", help="attack a seeded subset of N evaluation images (default: all)")
    g = parser.add_argument_group("AutoAttack (--only autoattack)")
    g.add_argument("--aa-eps", action="append", metavar="NORM=LIST",
                   help="budgets of one norm as for --eps (default: linf=0,1/255,4/255 and l2=0.5)")
    g.add_argument("--aa-version", default="standard", choices=("standard", "cheap"),
                   help="standard: APGD-CE, APGD-T, FAB-T, Square; cheap: APGD-CE and APGD-T only (default: standard)")
    g.add_argument("--aa-n", type=COUNT, default=1000, metavar="N",
                   help="attack a seeded subset of N evaluation images (default: 1000)")
    g = parser.add_argument_group("distribution shift (--only shift)")
    g.add_argument("--shift-from", metavar="DIR", help="folder holding imagenet-r/, imagenet-a/, imagenet-sketch/, "
                                                       "imagenet-v2/, imagenet-3dcc/ (pre-rendered; ImageNet probe)")
    g.add_argument("--shift-sets", metavar="NAMES", help="comma-separated sets (default: those under --shift-from)")
    g.add_argument("--shift-n", type=COUNT, metavar="N", help="a seeded subset of N images per cell (default: all)")
    g = parser.add_argument_group("crop scale (PROTOCOLS 7)")
    g.add_argument("--scales", type=NumberList(UNIT_OPEN_LOW), help="crop area fractions (default: 1,0.5,0.25,0.1)")
    add_data_args(parser)
    add_run_args(parser)


def _budgets(entries: list[str] | None, flag: str) -> dict[str, tuple[float, ...]]:
    """`NORM=LIST` options (--eps, --aa-eps) -> {norm: budgets}."""
    from coanalysis.models.trainer import UserError

    budgets: dict[str, tuple[float, ...]] = {}
    for entry in entries or []:
        norm, _, values = entry.partition("=")
        norm = norm.strip().lower()
        if norm not in ("linf", "l2") or not values:
            raise UserError(f"{flag} {entry!r}: write NORM=LIST with NORM linf or l2, e.g. {flag} linf=0,1/255")
        budgets[norm] = _floats(values, f"{flag} {norm}")
    return budgets


def _autoattack_protocol(args: argparse.Namespace):
    from coanalysis.analyses.autoattack import AutoAttackProtocol

    budgets, base = _budgets(args.aa_eps, "--aa-eps"), AutoAttackProtocol()
    return AutoAttackProtocol(linf_eps=budgets.get("linf", () if budgets else base.linf_eps),
                              l2_eps=budgets.get("l2", () if budgets else base.l2_eps), version=args.aa_version,
                              n=args.aa_n)


def _shift_protocol(args: argparse.Namespace, needed: bool):
    from coanalysis.analyses.shift import ShiftProtocol
    from coanalysis.data.shift_sets import SETS, get_set
    from coanalysis.models.trainer import UserError

    if not needed:
        return None
    if not args.shift_from:
        raise UserError("--only shift needs --shift-from DIR (a folder holding imagenet-r/, imagenet-a/, ...)")
    root = Path(args.shift_from).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"--shift-from {root} is not a folder")
    names = [get_set(s.strip()).name for s in args.shift_sets.split(",") if s.strip()] if args.shift_sets \
        else [name for name in SETS if (root / name).is_dir()]
    if not names:
        raise UserError(f"no distribution-shift set under {root}; expected folders named {', '.join(SETS)}")
    return ShiftProtocol(root=str(root), sets=tuple(dict.fromkeys(names)), n=args.shift_n, seed=args.seed)


def _pgd_protocol(args: argparse.Namespace):
    from coanalysis.analyses.pgd import PGDProtocol

    budgets = _budgets(args.eps, "--eps")
    base = PGDProtocol()
    return PGDProtocol(linf_eps=budgets.get("linf", () if budgets else base.linf_eps),
                       l2_eps=budgets.get("l2", () if budgets else base.l2_eps), steps=args.steps,
                       rel_stepsize=args.step_size, abs_stepsize=args.abs_step_size,
                       random_start=not args.no_random_start, restarts=args.restarts, n=args.pgd_n)


def protocols(args: argparse.Namespace, only: tuple[str, ...] = ()) -> dict:
    """The protocol of each analysis from the command-line options (bad values raise UserError)."""
    from coanalysis.analyses.corruptions import CorruptionProtocol
    from coanalysis.analyses.crops import CropProtocol
    from coanalysis.analyses.dropout import SINGLE, DropoutProtocol
    from coanalysis.analyses.noise import NoiseProtocol
    from coanalysis.results.corruption_names import check_names
    from coanalysis.data.corruption.sources import detect_layout
    from coanalysis.models.trainer import UserError

    corruption = CorruptionProtocol(seed=args.corruption_seed, n=args.corruption_n)
    if args.corruptions is not None:
        corruption = _replace(corruption, corruptions=check_names([c.strip() for c in args.corruptions.split(",")]))
    if args.severities is not None:
        corruption = _replace(corruption, severities=args.severities)
    if args.corruptions_from is not None:
        root = Path(args.corruptions_from).expanduser().resolve()
        corruption = _replace(corruption, source=detect_layout(root), root=str(root))
    spatial = DropoutProtocol().spatial_ps
    if args.spatial_ps is not None:
        parts = [p.strip() for p in args.spatial_ps.split(",")]
        if not all(parts):
            raise UserError(f"--spatial-ps: expected comma-separated fractions in [0, 1) or {SINGLE}, "
                            f"got {args.spatial_ps!r}")
        spatial = tuple(dict.fromkeys(SINGLE if p == SINGLE else FRACTION.value(p, "--spatial-ps") for p in parts))
    dropout = DropoutProtocol(
        spatial_ps=spatial, masks=args.masks,
        channel_ps=args.channel_ps if args.channel_ps is not None else DropoutProtocol().channel_ps,
        noise_alphas=args.noise_alphas if args.noise_alphas is not None else DropoutProtocol().noise_alphas)
    scales = args.scales if args.scales is not None else CropProtocol().scales
    return {"noise": NoiseProtocol(sigmas=args.sigmas) if args.sigmas is not None else NoiseProtocol(),
            "corruptions": corruption, "dropout": dropout, "pgd": _pgd_protocol(args),
            "crops": CropProtocol(scales=scales), "autoattack": _autoattack_protocol(args),
            "shift": _shift_protocol(args, "shift" in only)}


def _replace(protocol, **changes):
    import dataclasses

    return dataclasses.replace(protocol, **changes)


def _retry_missing(session, name: str) -> None:
    """Drop stored cells a pre-rendered set was missing, so this run tries them again."""
    with session.store.locked(name, "corruptions"):
        stored = session.store.load(name, "corruptions")
        if stored is None or not any(c.get("missing") for c in stored.cells.values()):
            return
        kept = {k: c for k, c in stored.cells.items() if not c.get("missing")}
        session.store.save(_replace(stored, cells=kept, complete=False))


def _line(result) -> str:
    """One summary line of a result's cells."""
    parts = []
    for key, cell in result.cells.items():
        if cell.get("accuracy") is None:
            parts.append(f"{key}: missing")
        elif "std" in cell and cell.get("masks", 1) > 1:
            parts.append(f"{key}: {100 * cell['accuracy']:.1f}±{100 * cell['std']:.1f}%")
        else:
            parts.append(f"{key}: {100 * cell['accuracy']:.1f}%")
    return ", ".join(parts)


def _corruption_summary(results: dict, baseline: str) -> list[str]:
    from coanalysis.results.derived.corruptions import ALEXNET, summarize

    lines = []
    reference = results.get(baseline)
    for name, result in results.items():
        s = summarize(result.cells, reference.cells if reference is not None else None, baseline)
        text = f"{name} corruptions: clean {100 * (s['clean_accuracy'] or 0):.1f}%"
        if s["mean_accuracy"] is not None:
            text += f", mean {100 * s['mean_accuracy']:.1f}% over {s['standard_cells']} standard cells"
        if s.get("mce") is not None:
            text += f", mCE {100 * s['mce']:.1f}% relative to {baseline} ({s['mce_corruptions']} corruptions)"
        if s.get("mce_alexnet") is not None:
            text += f", mCE {100 * s['mce_alexnet']:.1f}% relative to {ALEXNET}"
        if s["missing"]:
            text += f"; missing in the pre-rendered set: {', '.join(s['missing'])}"
        if s["undecodable"]:
            text += f"; {s['undecodable']} undecodable files skipped (named in the results)"
        lines.append(text)
    return lines


def run(args: argparse.Namespace) -> None:
    from coanalysis.analyses import ANALYSES
    from coanalysis.data.corruption.pool import available_cores
    from coanalysis.data.corruption.settings import CorruptionSettings
    from coanalysis.models.trainer import UserError
    from coanalysis.run.pipeline import make_context, model_names, open_model, run_analysis
    from coanalysis.distributed.sharding import joined

    only = list(dict.fromkeys(a.strip() for a in args.only.split(",") if a.strip()))
    unknown = [a for a in only if a not in ROBUSTNESS + OPTIONAL]
    if unknown or not only:
        raise UserError(f"unknown analysis {', '.join(unknown) or '(none)'} in --only; choose from: "
                        f"{', '.join(ROBUSTNESS + OPTIONAL)}")
    chosen = protocols(args, tuple(only))
    names = model_names(args.ckpt, args.name)
    baseline = args.baseline or names[0]
    if baseline not in names:
        raise UserError(f"--baseline {baseline!r} is not among the models: {', '.join(names)}")
    if args.corruption_cache:
        writable_dir(args.corruption_cache, "--corruption-cache")
    session = session_from_args(args)
    cache_dir = Path(args.corruption_cache).expanduser() if args.corruption_cache else None
    corruption = CorruptionSettings(workers=args.corruption_workers or available_cores(), cache_dir=cache_dir)
    summary = []
    mine, team = assigned_models(session, args)
    for ckpt, name in mine:
        encoder = open_model(session, ckpt, name)
        ctx = make_context(session, encoder, corruption=corruption)
        for analysis in only:
            if analysis == "corruptions" and session.shards.is_main:
                _retry_missing(session, name)
            result = run_analysis(session, ctx, ANALYSES[analysis], chosen[analysis])
            summary.append((name, analysis, result))
        ctx.clear_caches()  # images, local maps and corruption providers of this model
    summary = collect(session, team, summary)
    if not joined().is_main:
        return
    corruption_results = {name: result for name, analysis, result in summary if analysis == "corruptions"}
    for name, analysis, result in summary:
        n = max((c.get("n", 0) for c in result.cells.values()), default=0)
        print(f"{name} {analysis} (n = {n}): {_line(result)}")
    for line in _corruption_summary(corruption_results, baseline):
        print(line)
    print(f"results in {session.store.root}; render them with: coanalysis report {session.store.root}")
