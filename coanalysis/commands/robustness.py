"""`coanalysis robustness`: the robustness protocol of PROTOCOLS.md on one or more checkpoints.

Results go to `<out>/<model>/<analysis>.json`, one cell at a time; re-running the same command
skips the finished cells.
"""

from __future__ import annotations

import argparse

from coanalysis.commands.common import add_data_args, add_model_args, add_run_args, session_from_args

HELP = "noise robustness (more analyses to come) of one or more checkpoints"
EXAMPLES = """examples:
  coanalysis robustness --ckpt checkpoints/demo-byol --ckpt checkpoints/demo-co-byol --out reports/cmp
  coanalysis robustness --ckpt RUN --only noise --sigmas 0,0.1,0.2 --n 2000
  coanalysis report reports/cmp           # then render the comparison
"""
ROBUSTNESS = ("noise",)


def _floats(text: str) -> tuple[float, ...]:
    from coanalysis.loading import UserError

    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise UserError("expected at least one number")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    g = parser.add_argument_group("analyses")
    g.add_argument("--only", default=",".join(ROBUSTNESS), help=f"comma-separated analyses: {', '.join(ROBUSTNESS)}")
    g.add_argument("--sigmas", help="noise levels (default: 0,0.025,0.05,0.1,0.2,0.3,0.5)")
    add_data_args(parser)
    add_run_args(parser)


def run(args: argparse.Namespace) -> None:
    from coanalysis.analyses import ANALYSES
    from coanalysis.analyses.noise import NoiseProtocol
    from coanalysis.loading import UserError
    from coanalysis.pipeline import make_context, model_names, open_model, run_analysis

    only = [a.strip() for a in args.only.split(",") if a.strip()]
    unknown = [a for a in only if a not in ROBUSTNESS]
    if unknown or not only:
        raise UserError(f"unknown analysis {', '.join(unknown) or '(none)'} in --only; choose from: {', '.join(ROBUSTNESS)}")
    protocols = {"noise": NoiseProtocol(sigmas=_floats(args.sigmas)) if args.sigmas else NoiseProtocol()}
    if any(s < 0 for s in protocols["noise"].sigmas):
        raise UserError("--sigmas must be >= 0")
    session = session_from_args(args)
    names = model_names(args.ckpt, args.name)
    summary = []
    for ckpt, name in zip(args.ckpt, names):
        encoder = open_model(session, ckpt, name)
        ctx = make_context(session, encoder)
        for analysis in only:
            result = run_analysis(session, ctx, ANALYSES[analysis], protocols[analysis])
            summary.append((name, analysis, result))
    for name, analysis, result in summary:
        cells = ", ".join(f"{k}: {100 * c['accuracy']:.1f}%" for k, c in result.cells.items())
        print(f"{name} {analysis} (n = {result.protocol['data']['n']}): {cells}")
    print(f"results in {session.store.root}; render them with: coanalysis report {session.store.root}")
