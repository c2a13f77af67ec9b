"""A corruption source behind the uint8 disk cache, with one cell of look-ahead.

`get(c, s)` returns the images of one cell (from the cache when present); `prefetch(c, s)` starts
producing the next cell on a one-thread executor (its generation runs in the worker processes)
while the current cell is classified. Cache entries are keyed by the source's identity of the
cell, so a second checkpoint on the same data pays only its forward passes. `rows` (start, end)
asks the generated source for those rows of the cell alone (a torchrun rank's share of a split
cell): they are produced, and cached, as a shard entry of their own, or sliced from the whole
cell's entry when that is cached.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from coanalysis.data.corruption.outcome import Corrupted, Missing
from coanalysis.data.corruption.sources import Source
from coanalysis.features.extraction import FeatureCache


class CorruptionProvider:
    """`source`'s cells, cached as uint8 under `cache_dir` when `use_cache`, one cell produced ahead."""

    def __init__(self, source: Source, cache_dir: Path | None, use_cache: bool = True):
        self.source = source
        self.cache = FeatureCache(cache_dir) if use_cache else None
        self._ahead: tuple[tuple[str, int], Future] | None = None
        self._executor: ThreadPoolExecutor | None = None

    def _cached(self, ident: dict) -> Corrupted | None:
        hit = self.cache.get(ident)
        if hit is None or not {"images", "labels", "notes"} <= set(hit):
            return None
        return Corrupted(hit["images"], hit["labels"], json.loads(bytes(hit["notes"].tolist()).decode()))

    def _load_or_produce(self, corruption: str, severity: int,
                         rows: tuple[int, int] | None = None) -> Corrupted | Missing:
        if self.cache is not None and rows is not None:  # the whole cell cached: its rows
            whole = self._cached(self.source.identity(corruption, severity))
            if whole is not None:
                start, end = rows
                return Corrupted(whole.images[start:end], whole.labels[start:end], whole.notes)
        ident = None if self.cache is None else self.source.identity(corruption, severity) if rows is None \
            else self.source.identity(corruption, severity, rows)
        if ident is not None:
            hit = self._cached(ident)
            if hit is not None:
                return hit
        got = self.source.produce(corruption, severity, rows) if rows is not None \
            else self.source.produce(corruption, severity)
        if ident is not None and isinstance(got, Corrupted):
            notes = torch.tensor(list(json.dumps(got.notes, sort_keys=True).encode()), dtype=torch.uint8)
            self.cache.put(ident, {"images": got.images, "labels": got.labels, "notes": notes})
        return got

    def get(self, corruption: str, severity: int, rows: tuple[int, int] | None = None) -> Corrupted | Missing:
        """The cell's images (its `rows` only, when given: generated source only): the look-ahead's
        when it was this cell (its error is raised here), else made now."""
        if self._ahead is not None and self._ahead[0] == (corruption, severity, rows):
            _, future = self._ahead
            self._ahead = None
            return future.result()
        return self._load_or_produce(corruption, severity, rows)

    def prefetch(self, corruption: str, severity: int, rows: tuple[int, int] | None = None) -> None:
        """Start producing (corruption, severity) (its `rows`) in the background; one cell ahead at most."""
        if self._ahead is not None and self._ahead[0] == (corruption, severity, rows):
            return
        self.source.prepare()  # shared inputs (the evaluation images, the worker pool) are built here
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="corruption look-ahead")
        if self._ahead is not None:  # a look-ahead nobody asked for: let it finish, drop its result
            self._ahead[1].cancel()
        self._ahead = ((corruption, severity, rows),
                       self._executor.submit(self._load_or_produce, corruption, severity, rows))

    def close(self) -> None:
        """Drop the look-ahead without waiting for it (an interrupted run does not need it)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._ahead = None
