"""Every script in benchmarks/ imports against the current code (a renamed function must not
leave a benchmark broken until someone runs it on a GPU), and states its device in its JSON."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_imports(name):
    module = importlib.import_module(f"benchmarks.{name}")
    assert module.__doc__, f"benchmarks/{name}.py does not say what it measures"


def test_committed_results_name_their_device():
    import json

    results = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
    for path in results.glob("*.json"):
        record = json.loads(path.read_text())
        assert record.get("device"), f"{path.name} does not name its device"
