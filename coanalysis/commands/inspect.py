"""`coanalysis inspect`: what a checkpoint holds and how co-ssl reads it, without any data.

For each `--ckpt`: the detected format and architecture, the parameter count, the local-map
shape at an input size, the normalization, the keys that were dropped (heads, predictors, queues,
classifiers, momentum copies) and the sha256 of the file. `--json` prints the same as JSON.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "show a checkpoint's format, architecture, parameters, local-map shape, normalization, dropped keys and hash"
EXAMPLES = """examples:
  coanalysis inspect --ckpt checkpoints/demo-co-byol
  coanalysis inspect --ckpt moco_v2_800ep_pretrain.pth.tar --input-size 224
  coanalysis inspect --ckpt dino_checkpoint.pth --branch student --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coanalysis.commands.common import add_loading_args

    g = parser.add_argument_group("checkpoint")
    g.add_argument("--ckpt", action="append", required=True, metavar="PATH",
                   help="run directory or checkpoint file (repeat to inspect several)")
    add_loading_args(g)
    from coanalysis.models.trainer_io import Number

    parser.add_argument("--input-size", type=Number(int, low=8), metavar="PX",
                        help="input side for the local-map shape (default: the checkpoint's input size, else 224)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def describe(ckpt: str, options: dict, normalization: Any, input_size: int | None) -> dict[str, Any]:
    """Everything `inspect` reports about one checkpoint, JSON-ready."""
    import torch

    from coanalysis.models.formats import FORMATS
    from coanalysis.models.formats.base import group_keys
    from coanalysis.models.trainer import UserError
    from coanalysis.models.loading import load_encoder, nonfinite_tensors

    encoder = load_encoder(ckpt, normalization=normalization, **options)
    source = encoder.source
    size = input_size or source.input_size or 224
    if size < 8:
        raise UserError(f"--input-size {size} is too small; use at least 8 px")
    with torch.no_grad():
        local = encoder.forward_local(torch.zeros(1, 3, size, size))
    adapter = FORMATS.get(source.format)
    return {
        "path": source.path, "format": source.format, "format_description": adapter.description if adapter else None,
        "branch": source.branch, "branches": list(adapter.branches) if adapter else [],
        "arch": source.arch, "arch_kwargs": source.arch_kwargs, "adjustments": source.adjustments,
        "parameters": sum(p.numel() for p in encoder.parameters()), "num_features": encoder.num_features,
        "input_size": size, "local_layer": encoder.local_layer, "local_map_shape": list(local.shape[1:]),
        "receptive_field": encoder.receptive_field(), "normalization": encoder.normalization(),
        "dropped_keys": list(source.dropped),
        "dropped_summary": group_keys(list(source.dropped)) if source.dropped else "",
        "content_hash": source.content_hash, "method": source.method, "dataset": source.dataset,
        "epoch": source.epoch, "notes": list(source.notes), "nonfinite_tensors": nonfinite_tensors(encoder),
        "family": source.family, "global_readout": source.global_readout,
        **(_vit_tokens(encoder, size) if source.family == "vit" else {}),
    }


def _vit_tokens(encoder, size: int) -> dict[str, Any]:
    """A ViT's patch size, tokens and readout at input side `size`."""
    b = encoder.backbone
    return {"patch_size": b.patch, "prefix_tokens": b.num_prefix_tokens, "class_token": b.has_class_token,
            "register_tokens": b.num_reg_tokens, "patch_tokens": (size // b.patch) ** 2,
            "global_features": encoder.global_features, "position_embedding": encoder.position_embedding(size)}


def run(args: argparse.Namespace) -> None:
    from coanalysis.commands.common import loading_from_args

    per_ckpt, normalization = loading_from_args(args)
    reports = [describe(ckpt, options, normalization, args.input_size) for ckpt, options in zip(args.ckpt, per_ckpt)]
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
        return
    for r in reports:
        c, h, w = r["local_map_shape"]
        kwargs = ", ".join(f"{k}={v}" for k, v in {**r["arch_kwargs"], **r["adjustments"]}.items())
        print(f"{r['path']}")
        print(f"  format          {r['format']}" + (f" (branch {r['branch']} of {', '.join(r['branches'])})"
                                                     if r["branch"] else "") + f": {r['format_description']}")
        print(f"  architecture    {r['arch']} ({kwargs}), {r['parameters'] / 1e6:.2f} M parameters, "
              f"{r['num_features']} features")
        if r["family"] == "vit":
            print(f"  tokens          patch {r['patch_size']} px: {r['patch_tokens']} patch tokens ({h} x {w}) + "
                  f"{r['prefix_tokens']} prefix ({'1 class' if r['class_token'] else 'no class'}, "
                  f"{r['register_tokens']} register/distillation) at {r['input_size']} px")
            print(f"  position emb.   {r['position_embedding']}")
            print(f"  readout         {r['global_readout']} -> {r['global_features']} features "
                  "(--global cls|avg|cls+avg)")
            print(f"  local map       {c} x {h} x {w} ({r['local_layer']}: patch tokens after the final norm), "
                  "receptive field the whole image")
        else:
            print(f"  local map       {c} x {h} x {w} ({r['local_layer']}) at {r['input_size']} px, "
                  f"receptive field {r['receptive_field']} px")
        print(f"  normalization   mean {r['normalization']['mean']}, std {r['normalization']['std']}")
        dropped = f": {r['dropped_summary']}" if r["dropped_keys"] else ""
        print(f"  dropped         {len(r['dropped_keys'])} keys{dropped}")
        print(f"  sha256          {r['content_hash']}")
        if r["nonfinite_tensors"]:
            print(f"  weights         BROKEN: {len(r['nonfinite_tensors'])} tensors hold NaN or Inf "
                  f"({', '.join(r['nonfinite_tensors'][:5])}); every analysis refuses this checkpoint")
        else:
            print("  weights         all finite")
        for key in ("method", "dataset", "epoch"):
            if r[key] is not None:
                print(f"  {key:15s} {r[key]}")
        for note in r["notes"]:
            if not note.startswith("dropped "):
                print(f"  note            {note}")
