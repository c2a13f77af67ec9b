"""`coanalysis zoo`: the published self-supervised checkpoints `--ckpt zoo:NAME` accepts.

Lists the table of `coanalysis.models.zoo_table` (works offline) with what the cache holds; `--download
NAME` fetches one file ahead of time (as `--ckpt zoo:NAME` would on first use).
"""

from __future__ import annotations

import argparse

HELP = "list the published SSL checkpoints that --ckpt zoo:NAME downloads, or download one"
EXAMPLES = """examples:
  coanalysis zoo                                  # the table, and which files are in the cache
  coanalysis zoo --family dino --json
  coanalysis zoo --download dino-r50              # into $CO_SSL_CACHE/zoo, resumable, SHA-256 checked
  coanalysis probe --ckpt zoo:mocov2-r50-800ep --dataset imagenet --data-root data/imagenet

Without network, download the URL elsewhere and put the file where the error message says;
it is verified like a download. Digests nobody published are recorded on first download.
Column 'loads': the family (resnet, vit) and, where declared, the format the file is read as.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--family", metavar="NAME", help="only this method family (case-insensitive substring)")
    parser.add_argument("--download", action="append", metavar="NAME", help="download a checkpoint (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def rows(family: str | None = None) -> list[dict]:
    """Each entry as JSON with its cache state (`cached`, and the recorded sha256 and size)."""
    from coanalysis.models.zoo import recorded, zoo_dir
    from coanalysis.models.zoo_table import ZOO

    folder = zoo_dir()
    out = []
    for entry in ZOO.values():
        if family and family.lower() not in entry.family.lower():
            continue
        row = entry.to_json()
        known = recorded(entry, folder) or {}
        row["sha256"] = row["sha256"] or known.get("sha256")
        row["size_bytes"] = row["size_bytes"] or known.get("size_bytes")
        row["cached"] = str(folder / entry.filename) if (folder / entry.filename).exists() else None
        out.append(row)
    return out


def _size(n: int | None) -> str:
    return f"{n / 1e6:,.0f} MB" if n else "on download"


def run(args: argparse.Namespace) -> None:
    import json

    from coanalysis.models.trainer_io import UserError
    from coanalysis.models.zoo import fetch, get_entry, zoo_dir

    if args.download:
        for name in args.download:
            path = fetch(get_entry(name), zoo_dir(), progress=not args.no_progress)
            print(f"zoo:{name} -> {path}")
        return
    table = rows(args.family)
    if not table:
        raise UserError(f"no zoo checkpoint of family {args.family!r}; run 'coanalysis zoo' for the families")
    if args.json:
        print(json.dumps(table, indent=2))
        return
    print(f"{'name':<24} {'family':<15} {'arch':<26} {'data':<12} {'ep':>5} {'M par':>6} {'size':>11} "
          f"{'loads':<6} sha256")
    for r in table:
        digest = (r["sha256"] or "")[:12] or (f"{r['sha256_prefix']}…" if r["sha256_prefix"] else "on download")
        print(f"{r['name']:<24} {r['family']:<15} {r['arch']:<26} {r['data']:<12} {r['epochs'] or '–':>5} "
              f"{r['params_m']:>6g} {_size(r['size_bytes']):>11} {r['loads_with']:<6} {digest}"
              + (f"  ({r['format']})" if r["format"] else "")
              + ("  [cached]" if r["cached"] else ""))
    print(f"{len(table)} checkpoints; cache {zoo_dir()}; use one with --ckpt zoo:NAME; URLs with --json")
