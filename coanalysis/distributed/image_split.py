"""One cell's images split over the torchrun ranks, in runs of whole batches.

A cell that the ranks compute together (`coanalysis.distributed.sharding`: the cells left over for the last,
partial round) gives rank r the rows `rows(n, batch_size)` of its n images: a contiguous run of
whole batches starting on a batch boundary, so every image goes through the same batch, with the
same per-batch seeds, as in one process. Each rank classifies its rows and `join` puts the parts
back together in image order on every rank, so every rank holds the cell one process would have
computed (the same per-image bits, hence the same intervals) and rank 0 writes it. The default
`ImageSplit()` is the whole cell on one process: `rows` is every row and `join` returns its input.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch


def batch_rows(n: int, batch_size: int, rank: int, world: int) -> tuple[int, int]:
    """Rows [start, end) of rank `rank` among `world` of `n` rows: whole batches of `batch_size`,
    as evenly spread as they go, in rank order."""
    batches = -(-n // batch_size)
    first, last = rank * batches // world, (rank + 1) * batches // world
    return min(first * batch_size, n), min(last * batch_size, n)


def _to_bytes(part: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, part.detach().cpu().numpy(), allow_pickle=False)
    return buffer.getvalue()


def _from_bytes(blob: bytes) -> torch.Tensor:
    return torch.from_numpy(np.load(io.BytesIO(blob), allow_pickle=False))


@dataclass(frozen=True)
class ImageSplit:
    """This process's share of a cell's images; `exchange` is `Shards.gather` (every rank's bytes,
    in rank order, on every rank) when the cell is split, None when it is whole."""

    rank: int = 0
    world: int = 1
    exchange: Callable[[bytes], list[bytes]] | None = None

    @property
    def whole(self) -> bool:
        return self.world == 1 or self.exchange is None

    def rows(self, n: int, batch_size: int) -> tuple[int, int]:
        """This process's rows [start, end) of `n` (all of them when whole)."""
        return (0, n) if self.whole else batch_rows(n, batch_size, self.rank, self.world)

    def join(self, part: torch.Tensor) -> torch.Tensor:
        """Every process's `part` (its rows, on the CPU) concatenated along dim 0 in rank order."""
        if self.whole:
            return part.cpu()
        return torch.cat([_from_bytes(blob) for blob in self.exchange(_to_bytes(part))])

    def largest(self, value: float) -> float:
        """The largest of every process's `value`."""
        if self.whole:
            return value
        return max(float(_from_bytes(blob)) for blob in self.exchange(_to_bytes(torch.tensor(value,
                                                                                             dtype=torch.float64))))


__all__ = ["ImageSplit", "batch_rows"]
