"""Running an analysis for one model: the cells not yet stored, each saved as soon as it is done.

`run_analysis` skips the stored cells, merges what other processes wrote into the same results
file meanwhile (under its lock), and under torchrun deals the cells out over the ranks, or splits
the last ones by images (`coanalysis.distributed.sharding`), rank 0 alone writing.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time
from typing import Any

from coanalysis.analyses import Analysis
from coanalysis.analyses.context import EvalContext
from coanalysis.distributed.image_split import ImageSplit
from coanalysis.results.store import Result, normalized
from coanalysis.run.session import Session
from coanalysis.distributed.sharding import Shards, load_on_main, split_rounds
from coanalysis.models.trainer import UserError


def _identity(protocol_json: dict[str, Any], analysis: Analysis) -> dict[str, Any]:
    return {k: v for k, v in protocol_json.items() if k not in analysis.condition_fields}


def _merge_conditions(protocol: Any, stored: dict[str, Any], analysis: Analysis) -> Any:
    """`protocol` with each condition field extended by the stored values it lacks (stored first)."""
    merged = {}
    for name in analysis.condition_fields:
        new = tuple(getattr(protocol, name))
        old = tuple(stored.get(name, ()))
        merged[name] = old + tuple(v for v in new if v not in old)
    return dataclasses.replace(protocol, **merged)


def run_analysis(session: Session, ctx: EvalContext, analysis: Analysis, protocol: Any) -> Result:
    """Run the cells of `analysis` not yet stored for this model; each is saved as it finishes.

    Stored cells are never dropped: asking for other conditions (another sigma, say) adds cells to
    the stored result. A stored result made with another protocol or checkpoint is refused unless
    `session.overwrite`. Several processes may run into one results folder: each cell is computed
    under the result file's lock after re-reading the file, so a cell another process finished is
    taken from it instead of computed again, and every process's cells end up in the file. Under
    torchrun the cells are dealt out over the ranks one round at a time, the cells left over for a
    last, partial round are split over the ranks by images when the analysis allows it
    (`sharding.split_rounds`), and rank 0 alone merges and saves each round or split cell under
    the same lock.
    """
    source = ctx.encoder.source
    store = session.store
    path = store.path(source.name, analysis.name)

    def as_json(p: Any) -> dict[str, Any]:
        return normalized({**p.to_json(), "data": ctx.data.describe(), "precision": session.precision,
                           "probe": ctx.probe_identity})

    def other_what(result: Result) -> str | None:
        """None when `result` was made with this protocol and checkpoint, else what differs."""
        if result.model.get("content_hash") != source.content_hash:
            return "another checkpoint"
        if _identity(result.protocol, analysis) != _identity(as_json(protocol), analysis):
            return "another protocol"
        return None

    stored = load_on_main(session.shards, store, source.name, analysis.name)  # rank 0 reads, sends it
    if stored is not None and other_what(stored) is not None:
        if not session.overwrite:
            raise UserError(f"{path} was computed with {other_what(stored)}; "
                            "use another --out, or pass --overwrite to replace it")
        stored = None
    state = {"merged": _merge_conditions(protocol, stored.protocol, analysis) if stored is not None else protocol,
             "wall": stored.wall_time_s if stored is not None else 0.0, "replacing": session.overwrite}
    cells = dict(stored.cells) if stored is not None else {}
    wanted = analysis.cells(protocol)
    todo = [k for k in wanted if k not in cells]
    if len(wanted) > len(todo) and session.shards.is_main:  # printed even without progress: it explains a fast run
        print(f"{source.name}/{analysis.name}: {len(wanted) - len(todo)} of {len(wanted)} cells already done, "
              "skipping them", flush=True)

    def record() -> Result:
        all_keys = analysis.cells(state["merged"])
        return Result(analysis=analysis.name, model=source.to_json(), protocol=as_json(state["merged"]),
                      cells={k: cells[k] for k in all_keys if k in cells}, environment=session.env,
                      wall_time_s=round(state["wall"], 3), complete=all(k in cells for k in all_keys),
                      expected_cells=len(all_keys))

    def take_from_disk() -> None:
        """Merge in what other processes wrote since (call under the lock)."""
        current = store.load(source.name, analysis.name)
        if current is None:
            return
        what = other_what(current)
        if what is not None:
            if state["replacing"]:  # the file --overwrite replaces, until this process first writes
                return
            raise UserError(f"another process wrote {path} with {what} meanwhile; use another --out")
        state["merged"] = _merge_conditions(state["merged"], current.protocol, analysis)
        for k, c in current.cells.items():
            if k not in cells:
                cells[k] = c
                state["wall"] += c.get("wall_time_s") or 0.0

    def save() -> None:
        store.save(record())
        state["replacing"] = False

    def compute(key: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        cell = analysis.run_cell(ctx, protocol, key)
        cell["wall_time_s"] = round(time.perf_counter() - t0, 3)
        return cell

    def compute_split(key: str, split: ImageSplit) -> dict[str, Any]:
        ctx.split = split
        try:
            return compute(key)
        finally:
            ctx.split = ImageSplit()

    def store_round() -> None:
        if shards.is_main:  # the only writer
            with store.locked(source.name, analysis.name):
                take_from_disk()
                save()

    from tqdm import tqdm

    shards = session.shards
    dealt, together = split_rounds(todo, shards.world, analysis.splits_images)
    ctx.plan = _plan(dealt, together, shards)
    if together and shards.is_main:  # printed even without progress: it says how the ranks share the work
        print(f"{source.name}/{analysis.name}: {len(dealt)} cells dealt over {shards.world} ranks, {len(together)} "
              f"split over them by images", flush=True)
    with tqdm(total=len(todo), desc=f"{source.name}/{analysis.name}", disable=not session.progress,
              leave=False) as bar:
        if shards.world == 1:
            for key in todo:
                with store.locked(source.name, analysis.name):
                    take_from_disk()
                    if key not in cells:  # else another process finished it
                        cells[key] = compute(key)
                        state["wall"] += cells[key]["wall_time_s"]
                        save()
                bar.update(1)
        else:
            # rounds of one cell per rank, then the split cells: every rank on its share of the images
            rounds = itertools.chain(shards.deal(dealt, compute),
                                     ({key: shards.together(functools.partial(compute_split, key))} for key in together))
            for finished in rounds:
                for key, cell in finished.items():
                    cells[key] = cell
                    state["wall"] += cell["wall_time_s"]
                store_round()
                bar.update(len(finished))
    ctx.plan = {}
    if not todo and stored is not None and record() != stored and shards.is_main:
        with store.locked(source.name, analysis.name):
            take_from_disk()
            save()
    return record()


def _plan(dealt: list[str], together: list[str], shards: Shards) -> dict[str, tuple[str, ImageSplit] | None]:
    """`EvalContext.plan`: for each cell this process computes, the next one and its split."""
    split = shards.image_split()
    mine = [(k, ImageSplit()) for k in shards.mine(dealt)] + [(k, split) for k in together]
    return {k: mine[i + 1] if i + 1 < len(mine) else None for i, (k, _) in enumerate(mine)}


__all__ = ["run_analysis"]
