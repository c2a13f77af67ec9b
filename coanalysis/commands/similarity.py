"""`coanalysis similarity`: CKA between models and between the layers of one model, RankMe, and the
effective rank of the local vectors against that of the global ones.

Every model sees the same images (a seeded subset of the evaluation split). Results go to
`<out>/<model>/similarity.json`: a `rank` cell (RankMe of the global features, of the local vectors
of the last map, their ratio) and one `cka:<other>` cell per model (itself included: layer against
layer) with the linear and the unbiased minibatch CKA of every pair of layers.
"""

from __future__ import annotations

import argparse

from coanalysis.commands.common import (add_data_args, add_model_args, add_run_args, finish_section_command,
                                       session_from_args)
from coanalysis.models.trainer_io import COUNT, SEED, Number

HELP = "CKA between models and layers (heatmaps), RankMe and local-vs-global effective rank"
EXAMPLES = """examples:
  coanalysis similarity --ckpt checkpoints/demo-byol --ckpt checkpoints/demo-co-byol --out reports/cmp
  coanalysis similarity --ckpt zoo:dino-r50 --ckpt zoo:mocov2-r50-800ep --dataset imagenet --n-images 5000
  coanalysis similarity --ckpt RUN --layers layer3,layer4 --cka-batch 512
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    g = parser.add_argument_group("similarity")
    g.add_argument("--n-images", type=Number(int, low=4), default=1000, metavar="N",
                   help="images every model sees, a seeded subset of the evaluation split (default: 1000)")
    g.add_argument("--layers", metavar="L,...", help="stages compared (default: every stage of each model)")
    g.add_argument("--cka-batch", type=Number(int, low=4), default=256, metavar="B",
                   help="minibatch of the unbiased CKA estimator, more than 3 (default: 256)")
    g.add_argument("--local-rows", type=COUNT, default=20000, metavar="R",
                   help="local vectors (of all positions) the local effective rank uses (default: 20000)")
    g.add_argument("--similarity-seed", type=SEED, default=0, help="seed of the local-vector subsample (default: 0)")
    g.add_argument("--figures", metavar="DIR", help="also write the figures as PNG and PDF into DIR")
    add_data_args(parser)
    add_run_args(parser)


def protocol_json(args: argparse.Namespace) -> dict:
    return {"n_images": args.n_images, "layers": args.layers, "cka_batch": args.cka_batch,
            "local_rows": args.local_rows, "seed": args.similarity_seed,
            "features": "each layer's local map averaged over positions (N, C)",
            "cka": "linear CKA (Kornblith et al. 2019) on all N; unbiased minibatch CKA (Nguyen et al. 2021, "
                   "pytorch-cka's HSIC) over batches of cka_batch",
            "rankme": "exp(entropy of normalized singular values + 1e-7) (Garrido et al. 2023)",
            "local_rank": "RankMe of local_rows local vectors of the last map, drawn without replacement"}


def _check(args: argparse.Namespace) -> None:
    from coanalysis.models.trainer_io import UserError

    for flag, value, least in (("--n-images", args.n_images, 4), ("--cka-batch", args.cka_batch, 4),
                               ("--local-rows", args.local_rows, 1)):
        if value < least:
            raise UserError(f"{flag} must be at least {least}, got {value}")


def run(args: argparse.Namespace) -> None:
    import time

    from coanalysis.features.local_maps import resolve_layer, subset
    from coanalysis.run.pipeline import eval_data, model_names, open_model
    from coanalysis.results.store import Result
    from coanalysis.analyses.similarity import cka_matrices, layer_features, rankme, sample_local_vectors
    from coanalysis.models.trainer_io import UserError

    _check(args)
    session = session_from_args(args)
    shards = session.shards  # under torchrun every rank extracts its share of each model's images
    split = shards.image_split()
    wanted = [s.strip() for s in args.layers.split(",") if s.strip()] if args.layers else None
    models, seen = {}, None
    for ckpt, name in zip(args.ckpt, model_names(args.ckpt, args.name)):
        t0 = time.perf_counter()
        encoder = open_model(session, ckpt, name)
        layers = [resolve_layer(encoder, layer) for layer in wanted] if wanted else list(encoder.backbone.channels)
        data = subset(eval_data(session, encoder), args.n_images)
        which = {k: data.describe()[k] for k in ("dataset", "split", "n", "subset_seed")}
        if seen is not None and which != seen:
            raise UserError(f"{name} is evaluated on other images ({which}) than the first model ({seen}); "
                            "pass --dataset so every model sees the same images")
        seen = which
        pooled, last, positions = layer_features(encoder, data, layers, device=session.device,
                                                 batch_size=session.batch_size, precision=session.precision,
                                                 workers=session.workers, split=split)
        local = sample_local_vectors(last.float(), args.local_rows, args.similarity_seed, split)
        g, l_rank = rankme(pooled[layers[-1]]), rankme(local)
        rank = {"rankme_global": g, "rankme_local": l_rank, "local_over_global": l_rank / g if g else None,
                "n": len(positions), "local_rows": len(local), "layer": layers[-1],
                "dims": pooled[layers[-1]].shape[1]}
        models[name] = (encoder.source, layers, pooled, rank, data, time.perf_counter() - t0)
        encoder.cpu()
    proto = protocol_json(args)
    if not shards.is_main:  # rank 0 holds every feature: it alone computes CKA and writes
        return
    for name, (source, layers, pooled, rank, data, seconds) in models.items():
        t0 = time.perf_counter()
        cells = {"rank": rank}
        for other, (o_source, o_layers, o_pooled, *_rest) in models.items():
            cells[f"cka:{other}"] = {"other": other, "other_hash": o_source.content_hash, "layers": layers,
                                     "other_layers": o_layers, "n": rank["n"], "batch": args.cka_batch,
                                     **cka_matrices(pooled, o_pooled, args.cka_batch)}
        result = Result(analysis="similarity", model=source.to_json(), protocol={**proto, "data": data.describe()},
                        cells=cells, environment=session.env, wall_time_s=round(seconds + time.perf_counter() - t0, 3),
                        complete=True, expected_cells=len(cells))
        session.store.save(result)
        print(f"{name}: RankMe {rank['rankme_global']:.1f} of {rank['dims']} dims (global, n = {rank['n']}), "
              f"{rank['rankme_local']:.1f} (local, {rank['local_rows']} vectors)"
              + "".join(f"; CKA vs {o} {cells[f'cka:{o}']['unbiased'][-1][-1]:.3f}" for o in models if o != name))
    from coanalysis.report.sections import similarity

    finish_section_command(session.store.root, similarity.build, args.figures)
