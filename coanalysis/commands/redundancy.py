"""`coanalysis redundancy`: how redundant the local representations are (PROTOCOLS.md section 8).

Results go to `<out>/<model>/redundancy.json`, one cell at a time; re-running skips finished cells.
"""

from __future__ import annotations

import argparse

from coanalysis.commands.common import (add_data_args, add_model_args, add_run_args, assigned_models, collect,
                                       finish_section_command, session_from_args)
from coanalysis.models.trainer_io import COUNT, SEED

HELP = "local-global similarity correlation, intra-image similarity and single-vector probe accuracy"
EXAMPLES = """examples:
  coanalysis redundancy --ckpt checkpoints/demo-byol --ckpt checkpoints/demo-co-byol --out reports/cmp
  coanalysis redundancy --ckpt RUN --layer layer3 --positions aligned --n-images 10000 --pairs 100000
  coanalysis report reports/cmp           # then render the comparison
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    g = parser.add_argument_group("redundancy")
    g.add_argument("--n-images", type=COUNT, default=1000, metavar="N",
                   help="images the statistics use, a seeded subset of the evaluation data (default: 1000)")
    g.add_argument("--pairs", type=COUNT, default=10000, metavar="P", help="random image pairs (default: 10000)")
    g.add_argument("--positions", default="random", choices=("random", "aligned"),
                   help="local vectors compared in a pair: random positions in each image, or the same position "
                        "(default: random)")
    g.add_argument("--samples-per-pair", type=COUNT, default=16, metavar="S",
                   help="position pairs averaged into each local similarity l_ij (default: 16)")
    g.add_argument("--layer", help="feature map to analyse, e.g. layer3 (default: the encoder's local layer; the "
                                   "single-vector probe needs that layer)")
    g.add_argument("--bootstrap", type=COUNT, default=1000, help="bootstrap resamples of the 95%% CIs (default: 1000)")
    g.add_argument("--redundancy-seed", type=SEED, default=0, help="seed of the pairs, positions and bootstrap")
    g.add_argument("--figures", metavar="DIR", help="also write the figures as PNG and PDF into DIR")
    add_data_args(parser)
    add_run_args(parser)


def run(args: argparse.Namespace) -> None:
    from coanalysis.analyses import ANALYSES
    from coanalysis.analyses.redundancy import RedundancyProtocol
    from coanalysis.features.local_maps import resolve_layer
    from coanalysis.run.pipeline import make_context, open_model, run_analysis

    protocol = RedundancyProtocol(n_images=args.n_images, n_pairs=args.pairs, positions=args.positions,
                                  samples_per_pair=args.samples_per_pair, layer=args.layer, bootstrap=args.bootstrap,
                                  seed=args.redundancy_seed)
    session = session_from_args(args)
    done = []
    mine, team = assigned_models(session, args)
    for ckpt, name in mine:
        encoder = open_model(session, ckpt, name)
        resolve_layer(encoder, args.layer)
        ctx = make_context(session, encoder)
        done.append((name, run_analysis(session, ctx, ANALYSES["redundancy"], protocol)))
    done = collect(session, team, done)
    for name, result in done:
        pairs, sim = result.cells["pairs"], result.cells["similarity"]
        ci = pairs["ci95"]
        intra = sim["intra_image"]["mean"] if sim.get("intra_image") else None
        centre, random = result.cells["part=centre"], result.cells["part=random"]
        parts = "" if centre.get("accuracy") is None else (
            f", probe on G {100 * centre['global_accuracy']:.1f}%, centre vector {100 * centre['accuracy']:.1f}%, "
            f"random vector {100 * random['accuracy']:.1f}%")
        print(f"{name}: r = {pairs['pearson_r']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
              + (f", intra-image similarity {intra:.3f}" if intra is not None else "")
              + f", local-to-global {sim['local_to_global']['mean']:.3f}{parts} "
              f"(n = {pairs['n_images']} images, {pairs['n_pairs']} pairs)")
    from coanalysis.report.sections import redundancy

    finish_section_command(session.store.root, redundancy.build, args.figures)
