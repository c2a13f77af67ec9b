"""`coanalysis bagssl`: is the whole-image representation the mean of its patch representations
(PROTOCOLS.md section 10)? Results go to `<out>/<model>/bagssl.json`, one patch size at a time."""

from __future__ import annotations

import argparse

from coanalysis.commands.common import (add_data_args, add_model_args, add_run_args, assigned_models, collect,
                                       finish_section_command, session_from_args)
from coanalysis.models.trainer_io import COUNT, SEED, NumberList

HELP = "whole-vs-parts cosine and bag-of-patches probe accuracy against patch size"
EXAMPLES = """examples:
  coanalysis bagssl --ckpt checkpoints/demo-byol --ckpt checkpoints/demo-co-byol --out reports/cmp
  coanalysis bagssl --ckpt RUN --patch-sizes 8,16 --sampling random --patches 32 --feed native
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    g = parser.add_argument_group("bagssl")
    g.add_argument("--patch-sizes", type=NumberList(COUNT), metavar="PX,PX,...",
                   help="patch sides in pixels (default: 8,16,24,32 below 128 px input, 32,64,96 from 128 px)")
    g.add_argument("--sampling", choices=("grid", "stride", "random"),
                   help="grid: ceil(H/s) evenly spaced patches per side (tiling when s divides H); stride: the "
                        "BagSSL trainer's grid at stride s/2; random: --patches random positions per image "
                        "(default: stride for a BagSSL run, whose readout it matches, else grid)")
    g.add_argument("--patches", type=COUNT, default=16, metavar="K", help="patches per image with --sampling random")
    g.add_argument("--feed", choices=("resize", "native"),
                   help="resize each patch to the input size, or feed it at its own size (default: native for a "
                        "BagSSL run, as its trainer reads it, else resize)")
    g.add_argument("--n-images", type=COUNT, default=1000, metavar="N",
                   help="images used, a seeded subset of the evaluation data (default: 1000)")
    g.add_argument("--bagssl-seed", type=SEED, default=0, help="seed of the random patches and the bootstrap")
    g.add_argument("--figures", metavar="DIR", help="also write the figure as PNG and PDF into DIR")
    add_data_args(parser)
    add_run_args(parser)


def run(args: argparse.Namespace) -> None:
    from coanalysis.analyses import ANALYSES
    from coanalysis.analyses.bagssl import BagSSLProtocol, readout_protocol
    from coanalysis.run.pipeline import make_context, open_model, run_analysis
    from coanalysis.report.sections import bagssl

    sizes = args.patch_sizes or None
    BagSSLProtocol(patch_sizes=sizes or (8,), sampling=args.sampling or "grid", patches_per_image=args.patches,
                   feed=args.feed or "resize", n_images=args.n_images)  # bad options fail before any model is loaded
    session = session_from_args(args)
    done = []
    mine, team = assigned_models(session, args)
    for ckpt, name in mine:
        ctx = make_context(session, open_model(session, ckpt, name))
        protocol = readout_protocol(ctx.encoder.source.readout, ctx.data.info.image_size, patch_sizes=sizes,
                                    sampling=args.sampling, patches_per_image=args.patches, feed=args.feed,
                                    n_images=args.n_images, seed=args.bagssl_seed)
        done.append((name, run_analysis(session, ctx, ANALYSES["bagssl"], protocol)))
    done = collect(session, team, done)
    for name, result in done:
        for cell in sorted(result.cells.values(), key=lambda c: c["patch_size"]):
            acc = "" if cell.get("bag_accuracy") is None else (
                f", bag probe {100 * cell['bag_accuracy']:.1f}% vs whole {100 * cell['global_accuracy']:.1f}%")
            print(f"{name} {cell['patch_size']:>3d} px: cos(whole, mean of parts) = "
                  f"{cell['cos_whole_bag']['mean']:.3f}{acc} (n = {cell['n']}, {cell['patches_per_image']} patches)")
    finish_section_command(session.store.root, bagssl.build, args.figures)
