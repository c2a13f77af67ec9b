"""From checkpoints to stored results: load models, fit or reuse probes, run analyses cell by cell.

`Session` (`coanalysis.run.session`) carries the options every analysis command shares (results
folder, device, data, subset size). For each model the pipeline
1. loads the encoder and records `<out>/<model>/model.json` (`open_model`);
2. reuses the saved probe when it was fitted on the same checkpoint, data and protocol, or fits it
   on cached training features and saves it with its `probe.json` result, whose cells also hold
   the kNN readout (PROTOCOLS.md section 2) of each evaluation subset (`coanalysis.run.probe_fitting`);
3. runs each requested analysis, skipping the cells already stored and writing each new cell
   atomically as soon as it is done (`coanalysis.run.cell_runner`).

Under torchrun (`Session.shards`, see `coanalysis.distributed.sharding`) rank 0 is the only writer: it fits the
probe and sends it to the other ranks, every rank computes its share of the cells (or of one
cell's images), and rank 0 stores them after each round.
"""

from __future__ import annotations

from coanalysis.analyses import ANALYSES
from coanalysis.run.cell_runner import run_analysis
from coanalysis.analyses.context import EvalContext
from coanalysis.data.corruption.settings import CorruptionSettings
from coanalysis.run.probe_fitting import ensure_probe, shared_probe
from coanalysis.run.session import Session, default_name, eval_data, model_names, open_model
from coanalysis.models.trainer import Encoder


def make_context(session: Session, encoder: Encoder,
                 corruption: CorruptionSettings = CorruptionSettings()) -> EvalContext:
    """The model's `EvalContext`: its evaluation data and probe, the session's run options and the
    command's corruption settings (worker processes, cache folder)."""
    test = eval_data(session, encoder)
    probe, identity, accuracy = shared_probe(session, encoder, test)
    return EvalContext(encoder=encoder, probe=probe, data=test, device=session.device, precision=session.precision,
                       batch_size=session.batch_size, workers=session.workers, probe_identity=identity,
                       clean_accuracy=accuracy, cache=session.cache, progress=session.progress, corruption=corruption)


__all__ = ["ANALYSES", "Session", "default_name", "ensure_probe", "eval_data", "make_context", "model_names",
           "open_model", "run_analysis", "shared_probe"]
