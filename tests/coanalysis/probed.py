"""Contexts for the tiny runs that fit each run's linear probe once per test session.

Fitting the probe (L-BFGS over a weight-decay grid) is the slow part of `make_context`; the
robustness tests only need a probe, so the first context of a run fits it and the next ones copy
its saved files into their own results folder, where `ensure_probe` reuses them as it would
after any earlier run.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from coanalysis.analyses.context import EvalContext
from coanalysis.run.pipeline import Session, make_context, open_model

_FITTED: dict[str, Path] = {}


def probed_context(runs: dict[str, Path], name: str, out: Path, **options) -> tuple[Session, EvalContext]:
    """(session on `out`, context of tiny run `name`) with batch size 64 and no progress bars."""
    options = {"progress": False, "batch_size": 64, **options}
    key = f"{name}:{sorted(options.items())}"
    if key not in _FITTED:
        folder = Path(tempfile.mkdtemp(prefix="co-ssl-probe-"))
        atexit.register(shutil.rmtree, folder, True)
        session = Session(out=folder, **options)
        make_context(session, open_model(session, str(runs[name]), name))
        _FITTED[key] = folder
    target = Path(out) / name
    target.mkdir(parents=True, exist_ok=True)
    for path in (_FITTED[key] / name).glob("probe.*"):
        shutil.copy2(path, target / path.name)
    session = Session(out=Path(out), **options)
    return session, make_context(session, open_model(session, str(runs[name]), name))
