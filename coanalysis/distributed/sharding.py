"""Analyses split over the ranks of `torchrun`: who computes what, and how the ranks meet.

`torchrun --nproc_per_node N -m coanalysis CMD ...` starts N processes; `join_shards` joins them
through the trainer's process-group set-up (nccl on GPU, gloo on CPU, one GPU per rank). The work
is split in one of two ways (`assign_models` picks):

- **cells**: every rank opens every model and each analysis deals its outstanding cells out in
  rounds, cell i of a round to rank i. A cell is computed whole on one rank, in the batches a
  single process uses, so its numbers and seeds (the PGD start of each batch, the per-image
  corruption and mask seeds) are exactly a single process's. After each round rank 0 gathers the
  cells and writes the result: it is the only writer, and a killed job resumes from the last
  finished round. The probe is fitted once, by rank 0, and sent to the others.
  **Within a cell**: the cells left over for a last, partial round (all of them when there are
  fewer cells than ranks: one large PGD or 224 px corruption cell, say) would leave ranks idle, so
  for the analyses whose cells classify images (`Analysis.splits_images`: noise, crops,
  corruptions, dropout, PGD) each of them is computed by every rank together instead
  (`split_rounds`, `Shards.together`): rank r classifies (and generates) its run of whole batches
  of the cell's images (`coanalysis.distributed.image_split`) and the per-image results are joined in order,
  so the cell is again exactly a single process's, and rank 0 writes it.
- **models**: with at least as many models as ranks, rank r takes models r, r + N, ... and runs
  them as one process would, writing their files itself (the results folder and the caches must
  then be shared by every node).

Ranks exchange their (small) payloads through the process group's key-value store rather than
through collectives, so a rank may legitimately wait for a long time (rank 0 fitting a probe,
another rank's last model) without a collective timing out. Instead each rank keeps a heartbeat
counter in the store and watches the others': when one has not beaten for `--dist-timeout` seconds
(dead or frozen) the others end with one line and exit code 2, even in the middle of a cell.
torchrun itself also stops the remaining ranks as soon as one exits with an error.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from coanalysis.models.trainer_io import UserError

if TYPE_CHECKING:  # this module stays torch-free: `coanalysis report` imports it
    from coanalysis.distributed.image_split import ImageSplit

_PREFIX = "coanalysis"
_BEAT_S = 1.0


@dataclass
class Shards:
    """This process's place among the ranks (rank 0 of 1 without torchrun) and its meeting point."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None
    timeout_s: float = 300.0
    store: Any = field(default=None, repr=False)  # the process group's key-value store (None: single process)
    _round: int = field(default=0, repr=False)
    _posted: list = field(default_factory=list, repr=False)  # keys this rank set and may still be read
    _done: bool = field(default=False, repr=False)  # set at the end: the heartbeat thread stops watching

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mine(self, items: Sequence) -> list:
        """The items this rank takes: those at positions rank, rank + world, ..."""
        return [item for i, item in enumerate(items) if i % self.world == self.rank]

    # ---- exchanging payloads

    def gather(self, payload: bytes) -> list[bytes]:
        """Every rank's `payload`, in rank order, on every rank (waits for the slowest)."""
        if self.world == 1:
            return [payload]
        n = self._next()
        self._post(self._key(n, self.rank), b"V" + payload)
        out = [self._await(self._key(n, r), r) for r in range(self.world)]
        # every rank posted round n, so each has read every earlier round: drop this rank's old keys
        for key in self._posted[:-1]:
            self.store.delete_key(key)
        del self._posted[:-1]
        return [self._unwrap(value, r) for r, value in enumerate(out)]

    def share(self, make: Callable[[], bytes]) -> bytes:
        """`make()` run on rank 0 only; its bytes on every rank. A `UserError` raised by `make`
        is raised on every rank."""
        if self.world == 1:
            return make()
        n = self._next()
        if self.is_main:
            try:
                payload = make()
            except UserError as e:
                self._post(self._key(n, 0), b"E" + str(e).encode())
                raise
            except BaseException as e:
                self._post(self._key(n, 0), b"E" + f"rank 0 failed: {type(e).__name__}: {e}".encode())
                raise
            self._post(self._key(n, 0), b"V" + payload)
            return payload
        return self._unwrap(self._await(self._key(n, 0), 0), 0)

    def deal(self, keys: Sequence[str], compute: Callable[[str], dict]) -> Iterator[dict[str, dict]]:
        """Compute `keys` over the ranks, one round at a time; yields `{key: cell}` for each round on
        every rank, in `keys` order. A `UserError` in any rank's cell is raised on every rank."""
        import json

        if self.world == 1:
            for key in keys:
                yield {key: compute(key)}
            return
        for start in range(0, len(keys), self.world):
            batch = list(keys[start:start + self.world])
            mine = batch[self.rank] if self.rank < len(batch) else None
            try:
                payload = json.dumps({"cell": compute(mine)} if mine is not None else {}).encode()
            except UserError as e:
                payload = json.dumps({"error": str(e)}).encode()
            parts = [json.loads(p) for p in self.gather(payload)]
            for part in parts:
                if "error" in part:
                    raise UserError(part["error"])
            yield {key: parts[i]["cell"] for i, key in enumerate(batch)}

    def image_split(self) -> ImageSplit:
        """This rank's share of a cell's images (the whole cell on a single process)."""
        from coanalysis.distributed.image_split import ImageSplit

        return ImageSplit(self.rank, self.world, self.gather)

    def together(self, compute: Callable[[ImageSplit], dict]) -> dict:
        """`compute(split)` run by every rank on its share of one cell's images (`split`); the cell,
        the same on every rank. A `UserError` on one rank is raised on every rank."""
        try:
            return compute(self.image_split())
        except UserError as e:  # the others wait in an exchange of the cell: they get the error there
            if self.world > 1:
                self._post(self._key(self._next(), self.rank), b"E" + str(e).encode())
            raise

    def meet(self) -> None:
        """Wait until every rank gets here (however long they take, while they are alive)."""
        self.gather(b"")

    # ---- the store

    def _next(self) -> int:
        self._round += 1
        return self._round

    def _post(self, key: str, value: bytes) -> None:
        self.store.set(key, value)
        self._posted.append(key)

    @staticmethod
    def _key(n: int, rank: int) -> str:
        return f"{_PREFIX}/round{n}/{rank}"

    @staticmethod
    def _unwrap(value: bytes, rank: int) -> bytes:
        if value[:1] == b"E":
            raise UserError(value[1:].decode())
        return value[1:]

    def _await(self, key: str, rank: int) -> bytes:
        """The value of `key`, posted by `rank` (the heartbeat thread ends this process if `rank` dies)."""
        delay = 0.001
        while True:
            try:
                if self.store.check([key]):
                    return self.store.get(key)
            except (RuntimeError, OSError) as e:  # the store went away with its host
                raise UserError(f"lost contact with the other ranks ({e}); re-run the command to resume "
                                "from the finished cells") from None
            time.sleep(delay)
            delay = min(2 * delay, 0.1)

    def _beat(self) -> None:
        """The heartbeat thread: count this rank's beats in the store, watch the others' and end this
        process (exit code 2, one line) when one has not beaten for `timeout_s`, whatever the main
        thread is doing."""
        heard = {r: (None, time.monotonic()) for r in range(self.world) if r != self.rank}
        while not self._done:
            try:
                self.store.add(f"{_PREFIX}/beat/{self.rank}", 1)
                for r, (last, at) in heard.items():
                    beat, now = self.store.add(f"{_PREFIX}/beat/{r}", 0), time.monotonic()
                    if beat != last:
                        heard[r] = (beat, now)
                    elif now - at > self.timeout_s and not self._done:
                        _abort(f"rank {r} has not been heard from for {self.timeout_s:g} s (dead or frozen); "
                               "stopping. Re-run the command to resume from the finished cells")
            except Exception as e:  # noqa: BLE001 - the store is gone: its host died, or the job is over
                if not self._done:
                    _abort(f"lost contact with the other ranks ({type(e).__name__}); re-run the command to resume "
                           "from the finished cells")
                return
            time.sleep(_BEAT_S)


def _abort(message: str) -> None:
    print(f"coanalysis: error: {message}", file=sys.stderr, flush=True)
    os._exit(2)  # from the heartbeat thread: the main thread may be inside a long computation


_JOINED: Shards | None = None


def join_shards(device: str, timeout_s: float) -> Shards:
    """This process's `Shards`: joins the torchrun job on the first call (a single process
    without torchrun). `device` is `--device`: each rank takes GPU LOCAL_RANK with nccl, or gloo on CPU."""
    global _JOINED
    if _JOINED is not None:
        return _JOINED
    from coanalysis.models.trainer import init_distributed, launched_by_torchrun

    if not timeout_s > 0:
        raise UserError(f"--dist-timeout must be positive, got {timeout_s}")
    if not launched_by_torchrun():
        _JOINED = Shards(timeout_s=timeout_s)
        return _JOINED
    import torch.distributed as dist

    ctx = init_distributed(device, timeout_s)
    store = dist.distributed_c10d._get_default_store()
    _JOINED = Shards(rank=ctx.rank, world=ctx.world_size, local_rank=ctx.local_rank, backend=ctx.backend,
                     timeout_s=timeout_s, store=store)
    threading.Thread(target=_JOINED._beat, name="coanalysis-heartbeat", daemon=True).start()
    return _JOINED


def joined() -> Shards:
    """The `Shards` this process joined (a single process when it joined none)."""
    return _JOINED if _JOINED is not None else Shards()


def leave_shards() -> None:
    """The end of a command: wait for every rank (rank 0 hosts the store without torchrun's agent),
    then leave the process group."""
    global _JOINED
    if _JOINED is None or _JOINED.world == 1:
        _JOINED = None
        return
    joined, _JOINED = _JOINED, None
    joined.meet()
    joined._done = True
    from coanalysis.models.trainer import shutdown_distributed

    shutdown_distributed()


def split_rounds(keys: Sequence[str], world: int, splittable: bool) -> tuple[list[str], list[str]]:
    """(the cells dealt out whole in rounds of `world`, the cells every rank computes together):
    the cells left over for a last, partial round, when the analysis can split a cell's images."""
    if world == 1 or not splittable:
        return list(keys), []
    whole = len(keys) - len(keys) % world
    return list(keys[:whole]), list(keys[whole:])


def assign_models(shards: Shards, models: Iterable) -> tuple[list, Shards]:
    """(the models this rank runs, the `Shards` their cells are split over): with at least as many
    models as ranks each rank takes its own models and runs them alone; else every rank takes every
    model and the cells are split."""
    models = list(models)
    if shards.world > 1 and len(models) >= shards.world:
        return shards.mine(models), Shards(timeout_s=shards.timeout_s)
    return models, shards


def load_on_main(shards: Shards, store, model: str, analysis: str):
    """`store.load(model, analysis)`, read by rank 0 (the writer: it alone notes or moves aside a
    damaged file) and sent to the other ranks."""
    if shards.world == 1:
        return store.load(model, analysis)
    import json

    from coanalysis.results.store import Result

    def read() -> bytes:
        stored = store.load(model, analysis)
        return json.dumps(stored.to_json() if stored is not None else None).encode()

    data = json.loads(shards.share(read))
    return Result.from_json(data, str(store.path(model, analysis))) if data is not None else None


__all__ = ["Shards", "assign_models", "join_shards", "joined", "leave_shards", "load_on_main", "split_rounds"]
