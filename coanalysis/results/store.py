"""Results: the frozen `Result` record and the folder that stores them, one cell at a time.

A results folder holds `<model>/model.json` (where the model came from) and
`<model>/<analysis>.json`, one `Result` per (model, analysis). A result is a set of cells, one
per condition (a sigma, a corruption and severity, ...); each finished cell is written at once,
atomically, so an interrupted run loses at most the cell in progress and a re-run skips what is
done. Figures and the report are rebuilt from these files alone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from coanalysis.models.trainer_io import UserError, write_json_atomic

# Result schema history; each step has an upgrade function in `_UPGRADES`.
#   1: the first release.
#   2: adds `written`, the UTC time at which the record was made (None when upgraded from 1).
#   3: accuracy cells carry per-image correctness (`correct`, packed bits), the images' digest
#      (`images`) and a bootstrap `interval` (coanalysis.results.stats); redundancy stores `r_null`.
SCHEMA_VERSION = 3
MODEL_FILE = "model.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class MalformedResult(UserError):
    """A results file that parses as JSON but is not a co-ssl result record (wrong structure)."""


# the type each field of a stored record must have (after upgrading)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "analysis": (str,), "model": (dict,), "protocol": (dict,), "cells": (dict,), "environment": (dict,),
    "wall_time_s": (int, float), "complete": (bool,), "expected_cells": (int,), "summary": (dict,),
    "written": (str, type(None)), "schema_version": (int,)}


def check_structure(data: dict[str, Any], source: str) -> None:
    """Refuse (MalformedResult) a record whose fields are missing, unknown or of the wrong type."""
    unknown = sorted(set(data) - set(_FIELD_TYPES))
    if unknown:
        raise MalformedResult(f"{source} has fields a co-ssl result does not: {', '.join(unknown)}")
    for name, types in _FIELD_TYPES.items():
        if name not in data:
            if name in ("summary", "written"):
                continue
            raise MalformedResult(f"{source} lacks the field {name!r} of a co-ssl result")
        value = data[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise MalformedResult(f"{source}: field {name!r} is a JSON {type(value).__name__}, "
                                  f"expected {' or '.join(t.__name__ for t in types)}")
    if not isinstance(data["model"].get("name"), str):
        raise MalformedResult(f"{source}: the model record has no name")
    bad = [k for k, cell in data["cells"].items() if not isinstance(cell, dict)]
    if bad:
        raise MalformedResult(f"{source}: cell {bad[0]!r} is not a JSON object")


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def normalized(obj: Any) -> Any:
    """`obj` as it reads back from JSON (tuples become lists), for comparing protocols."""
    return json.loads(json.dumps(obj))


@dataclass(frozen=True)
class Result:
    """One analysis of one model: its protocol, its cells and where it ran."""

    analysis: str
    model: dict[str, Any]  # ModelSource.to_json()
    protocol: dict[str, Any]  # analysis parameters, data (dataset, split, n, seeds), probe
    cells: dict[str, dict[str, Any]]  # condition key -> measurements (+ wall_time_s)
    environment: dict[str, Any]  # versions, device
    wall_time_s: float
    complete: bool
    expected_cells: int
    summary: dict[str, Any] = field(default_factory=dict)  # derived numbers (e.g. clean accuracy)
    # when this record was made (UTC, ISO 8601); not part of equality, so re-saving an unchanged
    # result is not mistaken for a change
    written: str | None = field(default_factory=utc_now, compare=False)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "result") -> "Result":
        data = upgrade_result(dict(data) if isinstance(data, dict) else data, source)
        check_structure(data, source)
        return cls(**data)


def _upgrade_1_to_2(data: dict[str, Any]) -> str:
    data["written"] = None
    return "no record time (schema 1 did not store one)"


def _upgrade_2_to_3(data: dict[str, Any]) -> str:
    return "no per-image correctness (schema 2 did not store it): no intervals or paired differences"


# version v -> function that turns a v record into a v + 1 record in place and says what it patched
_UPGRADES: dict[int, Callable[[dict[str, Any]], str]] = {1: _upgrade_1_to_2, 2: _upgrade_2_to_3}


def upgrade_result(data: dict[str, Any], source: str,
                   log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Bring an older result record up to `SCHEMA_VERSION`, logging what was patched; refuse
    records without a schema version and records newer than this co-ssl."""
    if not isinstance(data, dict):
        raise MalformedResult(f"{source} holds a JSON {type(data).__name__}, not a co-ssl result record")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UserError(f"{source} has no valid schema_version ({version!r}); it is not a co-ssl result, "
                        "or it predates result schema 1: re-run the analysis that wrote it")
    if version > SCHEMA_VERSION:
        raise UserError(f"{source} has result schema {version}, newer than this co-ssl reads ({SCHEMA_VERSION}); "
                        "upgrade co-ssl")
    patched = []
    while version < SCHEMA_VERSION:
        patched.append(f"{version} -> {version + 1}: {_UPGRADES[version](data)}")
        version += 1
    data["schema_version"] = SCHEMA_VERSION
    if patched and log is not None:
        log(f"note: {source}: upgraded result schema {'; '.join(patched)}")
    return data


def check_model_name(name: str) -> str:
    if not _NAME.match(name):
        raise UserError(f"model name {name!r} must be letters, digits, '.', '_', '+' or '-' (used as a folder name)")
    return name


class ResultsStore:
    """The results folder `root`.

    Several processes may write one folder at once: `locked(model, analysis)` holds an advisory
    file lock (`<model>/.<analysis>.json.lock`) while a writer reads, merges and writes that
    result, so no process overwrites a cell another has finished.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"--out {self.root} exists and is not a folder")
        self._locks: dict[Path, Any] = {}

    @contextlib.contextmanager
    def locked(self, model: str, analysis: str) -> Iterator[None]:
        """Hold the lock of one result file (re-entrant within this store); says so when it waits."""
        from filelock import FileLock, Timeout

        path = self.path(model, analysis)
        if path not in self._locks:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._locks[path] = FileLock(str(path.parent / f".{path.name}.lock"))
        lock = self._locks[path]
        try:
            lock.acquire(timeout=0.1)
        except Timeout:
            print(f"waiting for another process that is writing {path}", flush=True)
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def path(self, model: str, analysis: str) -> Path:
        return self.root / check_model_name(model) / f"{analysis}.json"

    def load(self, model: str, analysis: str) -> Result | None:
        path = self.path(model, analysis)
        if not path.is_file():
            return None
        try:
            return Result.from_json(json.loads(path.read_text()), str(path))
        except (json.JSONDecodeError, UnicodeDecodeError, MalformedResult) as e:
            broken = path.with_suffix(".json.damaged")
            path.replace(broken)
            why = e if isinstance(e, MalformedResult) else "not valid JSON"
            print(f"note: {path} was damaged ({why}); moved to {broken.name} and recomputing")
            return None

    def save(self, result: Result) -> None:
        write_json_atomic(self.path(result.model["name"], result.analysis), result.to_json())

    def save_model(self, model: dict[str, Any]) -> None:
        write_json_atomic(self.root / check_model_name(model["name"]) / MODEL_FILE, model)

    def models(self) -> dict[str, dict[str, Any]]:
        out = {}
        for path in sorted(self.root.glob(f"*/{MODEL_FILE}")):
            try:
                model = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(model, dict):
                out[path.parent.name] = model
        return out

    def results(self) -> list[Result]:
        """Every readable result in the folder (damaged files are skipped with a note)."""
        out = []
        for path in sorted(self.root.glob("*/*.json")):
            if path.name == MODEL_FILE or not path.is_file():
                continue
            try:
                out.append(Result.from_json(json.loads(path.read_text()), str(path)))
            except (json.JSONDecodeError, UnicodeDecodeError):
                print(f"note: skipping damaged {path} (not valid JSON)")
            except MalformedResult as e:
                print(f"note: skipping damaged {path}: {e}")
        return out
