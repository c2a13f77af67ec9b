"""The corruption provider's one-cell look-ahead: a prefetched cell is the one `get` returns, an
error in the background is raised where the cell is asked for, and a look-ahead nobody asks for
never changes what another cell gets."""

from __future__ import annotations

import threading

import pytest
import torch

from coanalysis.data.corruption.outcome import Corrupted, Missing
from coanalysis.data.corruption.provider import CorruptionProvider
from coanalysis.models.trainer import UserError


class CountingSource:
    """Cell (c, s) is one image filled with s; "broken" raises; records the thread of each call."""

    def __init__(self):
        self.calls: list[tuple[str, int, str]] = []
        self.prepared = 0

    def prepare(self) -> None:
        self.prepared += 1

    def identity(self, corruption: str, severity: int) -> dict:
        return {"kind": "test", "corruption": corruption, "severity": severity}

    def produce(self, corruption: str, severity: int) -> Corrupted | Missing:
        self.calls.append((corruption, severity, threading.current_thread().name))
        if corruption == "broken":
            raise UserError("this cell cannot be made")
        if corruption == "absent":
            return Missing("not in the set")
        return Corrupted(torch.full((1, 3, 2, 2), severity, dtype=torch.uint8), torch.tensor([severity]))


def test_prefetched_cell_is_made_in_the_background_once():
    source = CountingSource()
    provider = CorruptionProvider(source, None, use_cache=False)
    provider.prefetch("fog", 3)
    got = provider.get("fog", 3)
    assert int(got.images[0, 0, 0, 0]) == 3 and source.prepared == 1
    assert len(source.calls) == 1 and source.calls[0][2].startswith("corruption look-ahead")
    assert int(provider.get("fog", 3).labels[0]) == 3 and len(source.calls) == 2  # not kept: made again


def test_an_error_in_the_look_ahead_is_raised_by_get():
    provider = CorruptionProvider(CountingSource(), None, use_cache=False)
    provider.prefetch("broken", 1)
    with pytest.raises(UserError, match="cannot be made"):
        provider.get("broken", 1)
    provider.prefetch("absent", 2)
    assert isinstance(provider.get("absent", 2), Missing)


def test_an_unasked_look_ahead_does_not_change_other_cells(tmp_path):
    source = CountingSource()
    provider = CorruptionProvider(source, tmp_path / "cache")
    provider.prefetch("fog", 1)
    assert int(provider.get("snow", 2).images[0, 0, 0, 0]) == 2
    provider.prefetch("snow", 4)  # replaces the fog look-ahead, which still finishes and is cached
    assert int(provider.get("snow", 4).labels[0]) == 4
    assert int(provider.get("fog", 1).images[0, 0, 0, 0]) == 1
    provider.close()
    assert sorted((c, s) for c, s, _ in source.calls) == [("fog", 1), ("snow", 2), ("snow", 4)]
