"""`coanalysis erf`: effective receptive fields of local vectors (PROTOCOLS.md section 9).

No dataset or probe is needed: the images are the photos shipped with scikit-image and foolbox,
the user's files or folders, or (`--images eval`) the evaluation split of `--dataset`. Results go
to `<out>/<model>/erf.json`, one (method, coordinate) cell at a time.
"""

from __future__ import annotations

import argparse

from coanalysis.commands.common import (add_data_args, add_model_args, add_run_args, assigned_models, collect,
                                       finish_section_command, session_from_args)
from coanalysis.models.trainer_io import COUNT, NON_NEGATIVE, NON_NEGATIVE_INT, SEED, UNIT

HELP = "effective receptive fields of local vectors, drawn over images, next to the analytic RF"
EXAMPLES = """examples:
  coanalysis erf --ckpt checkpoints/demo-byol --ckpt checkpoints/demo-co-byol --out reports/cmp
  coanalysis erf --ckpt RUN --images photos/ cat.jpg --coords 0,0 0.5,0.5 --methods gradient,smoothgrad
  coanalysis erf --ckpt RUN --images eval --dataset fashion-mnist --n-images 256
"""


def _coord(text: str) -> tuple[float, float]:
    from coanalysis.models.trainer import UserError

    parts = text.split(",")
    if len(parts) != 2:
        raise UserError(f"--coords: a coordinate is u,v with numbers in [0, 1] (e.g. 0.5,0.5), got {text!r}")
    u, v = (UNIT.value(t, f"--coords {text}") for t in parts)
    return u, v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coanalysis.results.derived.erf import METHODS

    add_model_args(parser)
    g = parser.add_argument_group("erf")
    g.add_argument("--images", nargs="+", default=["default"], metavar="FILES_OR_DIR",
                   help="image files or folders; 'default' = the photos shipped with scikit-image and foolbox; "
                        "'eval' = the evaluation split of --dataset (default: default)")
    g.add_argument("--coords", nargs="+", metavar="U,V", default=["0,0", "0,0.5", "0.5,0", "0.5,0.5"],
                   help="normalized map coordinates of the units, row then column (default: 0,0 0,0.5 0.5,0 0.5,0.5)")
    g.add_argument("--methods", default="gradient",
                   help=f"comma-separated attribution methods: {', '.join(METHODS)} (default: gradient)")
    g.add_argument("--n-images", type=COUNT, default=64, metavar="N", help="images averaged (default: 64)")
    g.add_argument("--layer", help="feature map whose units are analysed (default: the encoder's local layer)")
    g.add_argument("--ig-steps", type=COUNT, default=32, help="Integrated Gradients steps (default: 32)")
    g.add_argument("--smoothgrad-samples", type=COUNT, default=16, help="SmoothGrad noise samples (default: 16)")
    g.add_argument("--smoothgrad-sigma", type=NON_NEGATIVE, default=0.15,
                   help="SmoothGrad noise std in pixel units, images in [0, 1] (default: 0.15)")
    g.add_argument("--show", type=NON_NEGATIVE_INT, default=4,
                   help="images whose own ERF maps are stored for figures (default: 4)")
    g.add_argument("--erf-seed", type=SEED, default=0, help="seed of the SmoothGrad noise")
    g.add_argument("--figures", metavar="DIR", help="also write the figures as PNG and PDF into DIR")
    add_data_args(parser)
    add_run_args(parser)


def image_context(session, encoder, protocol):
    """An `EvalContext` whose data are the protocol's images (no probe: the ERF needs none)."""
    import torch

    from coanalysis.analyses.erf import erf_images
    from coanalysis.analyses.context import EvalContext
    from coanalysis.features.extraction import EvalData
    from coanalysis.models.trainer import DatasetInfo, ImageDataset

    ctx = EvalContext(encoder=encoder, probe=None, data=None, device=session.device, precision=session.precision,
                      batch_size=session.batch_size, workers=session.workers, cache=session.cache,
                      progress=session.progress)
    images = erf_images(ctx, protocol)  # kept in ctx.image_sets for the cells
    info = DatasetInfo(name="images", split="erf", num_classes=0, image_size=int(images.images.shape[-1]),
                       source=", ".join(protocol.images), notes=images.describe()["preprocessing"])
    ctx.data = EvalData.from_dataset(ImageDataset(images.images, torch.full((len(images.names),), -1), (), info))
    return ctx


def run(args: argparse.Namespace) -> None:
    from coanalysis.analyses import ANALYSES
    from coanalysis.analyses.erf import EVAL, ERFProtocol
    from coanalysis.features.local_maps import resolve_layer
    from coanalysis.run.pipeline import make_context, open_model, run_analysis
    from coanalysis.report.sections import erf

    protocol = ERFProtocol(coords=tuple(_coord(c) for c in args.coords),
                           methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
                           images=tuple(args.images), n_images=args.n_images, image_size=args.image_size,
                           layer=args.layer, ig_steps=args.ig_steps, smoothgrad_samples=args.smoothgrad_samples,
                           smoothgrad_sigma=args.smoothgrad_sigma, show=args.show, seed=args.erf_seed)
    session = session_from_args(args)
    done = []
    mine, team = assigned_models(session, args)
    for ckpt, name in mine:
        encoder = open_model(session, ckpt, name)
        resolve_layer(encoder, args.layer)
        ctx = make_context(session, encoder) if protocol.images == (EVAL,) else \
            image_context(session, encoder, protocol)
        done.append((name, run_analysis(session, ctx, ANALYSES["erf"], protocol)))
    done = collect(session, team, done)
    for name, result in done:
        cells = list(result.cells.values())
        if cells and cells[0]["images"].get("skipped_files"):
            print(f"note: skipped {len(cells[0]['images']['skipped_files'])} files that did not decode: "
                  f"{', '.join(cells[0]['images']['skipped_files'])}")
        for c in cells:
            s = c["sizes"]
            print(f"{name} {c['method']} ({c['coord'][0]:g}, {c['coord'][1]:g}): ERF 20/50/90% = "
                  + "/".join("–" if s[q]["mean"] is None else f"{s[q]['mean']:.1f}" for q in ("20", "50", "90"))
                  + f" px, analytic RF {c['analytic_rf'] if c['analytic_rf'] is not None else 'unknown'}"
                  f" (n = {c['n_images']} images at {c['input_size'][0]} px)")
    finish_section_command(session.store.root, erf.build, args.figures)
