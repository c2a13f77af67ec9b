"""Results: the frozen `Result` record and the folder that stores them, one cell at a time.

A results folder holds `<model>/model.json` (where the model came from) and
`<model>/<analysis>.json`, one `Result` per (model, analysis). A result is a set of cells, one
per condition (a sigma, a corruption and severity, ...); each finished cell is written at once,
atomically, so an interrupted run loses at most the cell in progress and a re-run skips what is
done. Figures and the report are rebuilt from these files alone.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from coanalysis.trainer_io import UserError, write_json_atomic

# Result schema history; each step has an upgrade function in `_UPGRADES`.
#   1: the first release.
#   2: adds `written`, the UTC time at which the record was made (None when upgraded from 1).
SCHEMA_VERSION = 2
MODEL_FILE = "model.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


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
        try:
            return cls(**data)
        except TypeError as e:
            raise UserError(f"{source} is not a co-ssl result ({e})") from None


def _upgrade_1_to_2(data: dict[str, Any]) -> str:
    data["written"] = None
    return "no record time (schema 1 did not store one)"


# version v -> function that turns a v record into a v + 1 record in place and says what it patched
_UPGRADES: dict[int, Callable[[dict[str, Any]], str]] = {1: _upgrade_1_to_2}


def upgrade_result(data: dict[str, Any], source: str,
                   log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Bring an older result record up to `SCHEMA_VERSION`, logging what was patched; refuse
    records without a schema version and records newer than this co-ssl."""
    if not isinstance(data, dict):
        raise UserError(f"{source} holds a JSON {type(data).__name__}, not a co-ssl result record")
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
    """The results folder `root`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"--out {self.root} exists and is not a folder")

    def path(self, model: str, analysis: str) -> Path:
        return self.root / check_model_name(model) / f"{analysis}.json"

    def load(self, model: str, analysis: str) -> Result | None:
        path = self.path(model, analysis)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            broken = path.with_suffix(".json.damaged")
            path.replace(broken)
            print(f"note: {path} was damaged; moved to {broken.name} and recomputing")
            return None
        return Result.from_json(data, str(path))

    def save(self, result: Result) -> None:
        write_json_atomic(self.path(result.model["name"], result.analysis), result.to_json())

    def save_model(self, model: dict[str, Any]) -> None:
        write_json_atomic(self.root / check_model_name(model["name"]) / MODEL_FILE, model)

    def models(self) -> dict[str, dict[str, Any]]:
        out = {}
        for path in sorted(self.root.glob(f"*/{MODEL_FILE}")):
            try:
                out[path.parent.name] = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
        return out

    def results(self) -> list[Result]:
        """Every readable result in the folder (damaged files are skipped with a note)."""
        out = []
        for path in sorted(self.root.glob("*/*.json")):
            if path.name == MODEL_FILE:
                continue
            try:
                out.append(Result.from_json(json.loads(path.read_text()), str(path)))
            except (json.JSONDecodeError, UnicodeDecodeError):
                print(f"note: skipping damaged {path}")
        return out
