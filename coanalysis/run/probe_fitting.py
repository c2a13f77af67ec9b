"""A model's linear probe: reused when saved for the same checkpoint, data and protocol, else fitted.

`ensure_probe` fits the probe on cached training features (or reuses the saved one) and stores
its `probe.json` result, whose cell for the evaluation subset also holds the per-image
correctness and the kNN readout (PROTOCOLS.md section 2). Under torchrun `shared_probe` has every
rank extract a shard of the features (`coanalysis.distributed.sharded_features`), rank 0 alone fit the probe,
and sends it to the others.
"""

from __future__ import annotations

import time
from typing import Any

from coanalysis.features.extraction import EvalData, Features, extract_features
from coanalysis.probes.knn import knn_correctness
from coanalysis.probes.linear import LinearProbe, ProbeProtocol, fit_probe, load_probe, probe_accuracy, save_probe
from coanalysis.results.store import Result, normalized
from coanalysis.run.session import Session, dataset_for, probe_data
from coanalysis.results.stats import correctness_record
from coanalysis.models.trainer import Encoder, UserError


def _feature_ids(data: EvalData, feats: Features):
    """The dataset indices of the labelled features, in order (features follow the evaluation
    subset's order, undecodable files dropped); when some were dropped and the cache does not say
    which, the labels in order stand in as the images' identity."""
    keep = feats.labels >= 0
    if len(feats.labels) == len(data):
        return data.indices[keep].numpy()
    return feats.labels[keep].numpy()


def ensure_probe(session: Session, encoder: Encoder, test: EvalData,
                 protocol: ProbeProtocol | None = None) -> tuple[LinearProbe, dict[str, Any], float]:
    """(probe, its fit identity, its accuracy on `test`): reused when the saved probe was fitted on
    this checkpoint, loaded the same way, with the same data and protocol; else fitted on cached
    features and saved. The kNN readout of `test` (`session.knn`) is stored in the same cell and
    recomputed alone when its protocol changes. Another process fitting the same probe into the
    same folder is waited for, and its probe reused."""
    with session.store.locked(encoder.source.name, "probe"):
        return _ensure_probe(session, encoder, test, protocol)


def _ensure_probe(session: Session, encoder: Encoder, test: EvalData,
                  protocol: ProbeProtocol | None) -> tuple[LinearProbe, dict[str, Any], float]:
    protocol = protocol or ProbeProtocol(n_train=session.n_train)
    name, _ = dataset_for(session, encoder)
    train = probe_data(session, encoder)
    source = encoder.source
    folder = session.store.root / source.name
    identity = normalized({**protocol.to_json(), "train_data": train.describe(), "encoder": source.loading()})
    stored = session.store.load(source.name, "probe")
    if stored is not None and stored.model.get("content_hash") != source.content_hash and not session.overwrite:
        raise UserError(f"{folder} holds results of another checkpoint named {source.name}; "
                        "use another --out or --name, or pass --overwrite")
    same = stored is not None and stored.protocol == identity \
        and stored.model.get("content_hash") == source.content_hash
    probe = load_probe(folder) if same else None
    reusable = probe is not None  # a damaged probe.safetensors is refitted and saved again
    cache: dict[str, Features] = {}

    def features(data: EvalData) -> Features:  # each split extracted (or read from the cache) once
        which = repr(sorted(data.describe().items()))
        if which not in cache:
            cache[which] = extract_features(encoder, data, device=session.device, batch_size=session.batch_size,
                                            precision=session.precision, cache=session.cache,
                                            progress=session.progress, workers=session.workers)
        return cache[which]

    t0 = time.perf_counter()
    if probe is not None:
        cells, report, wall = dict(stored.cells), stored.summary, stored.wall_time_s
    else:
        session.log(f"{source.name}: fitting the linear probe on {len(train)} {name} {train.info.split} images")
        probe, report = fit_probe(features(train), train.info.num_classes, protocol, device=session.device)
        if train.skipped:
            report = {**report, "train_undecodable_count": len(train.skipped),
                      "train_undecodable": train.skipped_files()[:50]}
        cells, wall = {}, 0.0
    key = f"{test.info.split}:n={len(test)}:seed={test.seed}"
    cell = dict(cells.get(key, {}))
    knn_protocol = normalized(session.knn.to_json()) if session.knn is not None else None
    changed = False
    if "accuracy" not in cell or "correct" not in cell:  # results before schema 3 gain their per-image record
        test_feats = features(test)
        keep = test_feats.labels >= 0
        labelled = _feature_ids(test, test_feats)
        correct = probe(test_feats.features[keep]).argmax(1) == test_feats.labels[keep]
        cell.update(accuracy=probe_accuracy(probe, test_feats), n=int(keep.sum()), data=test.describe(),
                    **correctness_record(correct.numpy(), labelled))
        if test.skipped:  # named in the results, as the corruption cells do
            cell.update(undecodable_count=len(test.skipped), undecodable=test.skipped_files()[:50])
        changed = True
    if knn_protocol is not None and (cell.get("knn_protocol") != knn_protocol or "knn_correct" not in cell):
        t_knn = time.perf_counter()
        knn = knn_correctness(features(train), features(test), train.info.num_classes, session.knn,
                              device=session.device)
        ids = _feature_ids(test, features(test))
        cell["knn"] = {k: int(c.sum()) / max(len(c), 1) for k, c in knn.items()}
        cell["knn_correct"] = {k: {"n": len(c), **correctness_record(c.numpy(), ids)} for k, c in knn.items()}
        cell["knn_protocol"] = knn_protocol
        cell["knn_seconds"] = round(time.perf_counter() - t_knn, 3)
        changed = True
    cells[key] = cell
    result = Result(analysis="probe", model=source.to_json(), protocol=identity, cells=cells,
                    environment=session.env, wall_time_s=round(wall + time.perf_counter() - t0, 3), complete=True,
                    expected_cells=len(cells), summary=report)
    if not reusable:
        save_probe(folder, probe, result.to_json())
    elif changed:
        session.store.save(result)
    return probe.to(session.device).eval(), identity, cell["accuracy"]


def shared_probe(session: Session, encoder: Encoder, test: EvalData) -> tuple[LinearProbe, dict[str, Any], float]:
    """`ensure_probe` run by rank 0 alone, on features every rank extracted a shard of; its probe,
    identity and accuracy on every rank."""
    if session.shards.world == 1:
        return ensure_probe(session, encoder, test)
    from coanalysis.distributed.sharded_features import extract_over_ranks, features_needed, probe_from_main

    datasets = [probe_data(session, encoder), test]
    extract_over_ranks(session, encoder, datasets,
                       session.shards.share(lambda: features_needed(session, encoder, datasets)) == b"1")
    return probe_from_main(session.shards, lambda: ensure_probe(session, encoder, test), session.device)


__all__ = ["ensure_probe", "shared_probe"]
