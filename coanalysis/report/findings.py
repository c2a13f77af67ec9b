"""Findings of the report (PROTOCOLS.md section 11): paired differences with their intervals,
and seed groups.

- `seed_groups(models)`: checkpoints whose recorded training configs differ only in `seed` form
  one group (paths and run names do not count); a `group` in model.json (`--group NAME`) wins.
- `paired_findings`: for each model against the reference, the condition with the largest
  difference, stated by `coanalysis.results.stats.finding` with its paired image-bootstrap interval, n
  and the number of seeds; where two cells were not measured on the same images (or predate
  per-image records) the sentence says it has no interval and ranks nothing.
- `group_findings`: for groups of two or more seeds, the difference of group means with the
  t-interval over seeds (Welch's standard error, the smaller group's degrees of freedom).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, Mapping, Sequence

from coanalysis.results import stats

# config keys that say where and how a run was executed, not what was trained
RUN_KEYS = ("seed", "out", "run_name", "resume", "device", "progress", "data_root", "download", "workers",
            "dist_timeout", "compile")


def group_key(model: dict[str, Any]) -> str | None:
    """What a checkpoint shares with its other seeds: its explicit group, or its config without the
    run keys; None when it records neither (a third-party file without --group)."""
    if model.get("group"):
        return "group:" + str(model["group"])
    config = model.get("config")
    if not isinstance(config, dict):
        return None
    return json.dumps({k: v for k, v in config.items() if k not in RUN_KEYS}, sort_keys=True, default=str)


def _common_name(names: Sequence[str]) -> str:
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    prefix = re.sub(r"[-_.]*(s|seed)?\d*[-_.]*$", "", prefix)
    return prefix or names[0]


def seed_groups(models: Mapping[str, dict[str, Any]]) -> dict[str, list[str]]:
    """group name -> member model names (in model order); every model is in exactly one group."""
    by_key: dict[str, list[str]] = {}
    for name, model in models.items():
        key = group_key(model)
        by_key.setdefault(key if key is not None else f"model:{name}", []).append(name)
    out = {}
    for key, names in by_key.items():
        if key.startswith("group:"):
            label = key[len("group:"):]
        else:
            label = names[0] if len(names) == 1 else _common_name(names)
        out[label if label not in out else f"{label} ({names[0]})"] = names
    return out


def seeds_of(models: Mapping[str, dict[str, Any]]) -> dict[str, int]:
    """model name -> how many seeds its group holds."""
    return {name: len(members) for members in seed_groups(models).values() for name in members}


def paired_findings(cells: Mapping[str, Mapping[float, dict[str, Any]]], reference: str, seeds: Mapping[str, int], *,
                    what: str, unit: str = "", skip: Sequence[float] = (0,), quantity: str = "accuracy",
                    note: str = "", x_label: Callable[[float], str] = lambda x: f"{x:g}") -> list[str]:
    """One finding per model against `reference`, from `cells[model][x]` (stored cells with
    `accuracy`, `n` and, from result schema 3, per-image `correct` and `images`)."""
    if reference not in cells or len(cells) < 2:
        return [_range(name, per, what, unit, seeds.get(name, 1), x_label, quantity, note)
                for name, per in cells.items() if per]
    lines = []
    ref = cells[reference]
    for name, per in cells.items():
        if name == reference:
            continue
        options = []
        for x, cell in per.items():
            other = ref.get(x)
            if x in skip or other is None or cell.get("accuracy") is None or other.get("accuracy") is None:
                continue
            a, b = stats.cell_correctness(cell), stats.cell_correctness(other)
            if a is not None and b is not None and stats.same_images(cell, other):
                d, lo, hi = stats.paired_difference(a, b)
                options.append((lo > 0 or hi < 0, abs(d), x, d, (lo, hi), cell.get("n")))
            else:
                options.append((False, abs(cell["accuracy"] - other["accuracy"]), x,
                                cell["accuracy"] - other["accuracy"], None, cell.get("n")))
        if not options:
            continue
        _, _, x, d, interval, n = max(options, key=lambda o: (o[0], o[1], -o[2]))
        lines.append(stats.finding(name, reference, d, interval, what=f"{what} = {x_label(x)}{unit}", n=n,
                                   seeds=min(seeds.get(name, 1), seeds.get(reference, 1)), quantity=quantity,
                                   note=note))
    return lines


def _range(name: str, per: Mapping[float, dict[str, Any]], what: str, unit: str, seeds: int,
           x_label: Callable[[float], str], quantity: str, note: str) -> str:
    xs = sorted(per)

    def at(x: float) -> str:
        cell = per[x]
        iv = cell.get("interval")
        ci = f" [{100 * iv[0]:.1f}, {100 * iv[1]:.1f}]" if iv else ""
        return f"{100 * cell['accuracy']:.1f}%{ci} at {what} = {x_label(x)}{unit}"

    n = per[xs[0]].get("n")
    return (f"{name}: {quantity} goes from {at(xs[0])} to {at(xs[-1])} (95% image-bootstrap intervals, "
            f"n = {stats.fmt_n(n)}, {stats.seeds_text(seeds)}" + (f", {note}" if note else "") + ").")


def group_difference(values: Sequence[float], reference: Sequence[float]) -> tuple[float, tuple[float, float] | None]:
    """(difference of the means, its 95% t-interval over seeds, None unless both have 2+ seeds)."""
    a, b = stats.t_interval(values), stats.t_interval(reference)
    d = a.mean - b.mean
    if a.seeds < 2 or b.seeds < 2:
        return d, None
    se = math.sqrt(a.sd ** 2 / a.seeds + b.sd ** 2 / b.seeds)
    q = stats.t_quantile(min(a.seeds, b.seeds) - 1)
    return d, (d - q * se, d + q * se)
