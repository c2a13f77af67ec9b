"""From checkpoints to stored results: load models, fit or reuse probes, run analyses cell by cell.

`Session` carries the options every analysis command shares (results folder, device, data,
subset size). For each model the pipeline
1. loads the encoder and records `<out>/<model>/model.json`;
2. reuses the saved probe when it was fitted on the same checkpoint, data and protocol, or fits it
   on cached training features and saves it with its `probe.json` result, whose cells also hold
   the kNN readout (PROTOCOLS.md section 2) of each evaluation subset;
3. runs each requested analysis, skipping the cells already stored and writing each new cell
   atomically as soon as it is done.

Under torchrun (`Session.shards`, see `coanalysis.sharding`) rank 0 is the only writer: it fits the
probe and sends it to the other ranks, every rank computes its share of the cells, and rank 0
stores them after each round.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coanalysis.analyses import ANALYSES, Analysis
from coanalysis.context import EvalContext
from coanalysis.corruption.settings import CorruptionSettings
from coanalysis.environment import environment
from coanalysis.features import EvalData, FeatureCache, Features, extract_features
from coanalysis.knn import KNNProtocol, knn_correctness
from coanalysis.trainer import (ENCODER_FILE, META_FILE, STATE_FILE, AnyDataset, Encoder, UserError, get_spec,
                                load_dataset, resolve_device, resolve_precision)
from coanalysis.loading import check_finite_weights, load_encoder
from coanalysis.probe import LinearProbe, ProbeProtocol, fit_probe, load_probe, probe_accuracy, save_probe
from coanalysis.results import Result, ResultsStore, check_model_name, normalized
from coanalysis.sharding import Shards, load_on_main
from coanalysis.stats import correctness_record


@dataclass
class Session:
    """Options shared by the analysis commands, and the datasets loaded so far."""

    out: Path
    dataset: str | None = None  # None: the dataset each checkpoint was trained on
    data_root: str | None = None
    download: bool = False
    image_size: int | None = None  # None: the checkpoint's input size
    n: int | None = None  # evaluation subset size (None: the whole split)
    n_train: int | None = None  # probe training images (None: the whole split)
    seed: int = 0  # subset seed
    device_name: str = "auto"
    precision_name: str = "auto"
    batch_size: int = 256
    workers: int = 0
    progress: bool = True
    overwrite: bool = False
    cache_dir: Path | None = None
    load_options: dict = field(default_factory=dict)  # model name -> load_encoder keywords (format, arch, branch)
    normalization: Any = None  # (mean, std) replacing every checkpoint's own; None keeps them
    knn: KNNProtocol | None = field(default_factory=KNNProtocol)  # None: no kNN readout
    shards: Shards = field(default_factory=Shards)  # the ranks the cells are split over (one: no split)
    _datasets: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store = ResultsStore(self.out)
        self.device = resolve_device(self.device_name)
        self.precision = resolve_precision(self.precision_name, self.device)
        self.cache = FeatureCache(self.cache_dir)
        self.env = environment(self.device)

    def log(self, message: str) -> None:
        if self.progress:
            print(message, flush=True)


def default_name(ckpt: str) -> str:
    """A checkpoint's display name: its run folder's name, its file name without suffix, or a zoo name."""
    if ckpt.startswith("zoo:"):
        return re.sub(r"[^A-Za-z0-9._+-]", "-", ckpt[4:]) or "model"
    path = Path(ckpt).expanduser()
    if path.name in (META_FILE, ENCODER_FILE, STATE_FILE):
        path = path.parent
    path = path.resolve()
    name = path.stem if path.is_file() else path.name
    return re.sub(r"[^A-Za-z0-9._+-]", "-", name).lstrip(".-_+") or "model"


def model_names(ckpts: list[str], names: list[str] | None) -> list[str]:
    """Display names: `--name` values in order, else `default_name`; duplicates are refused."""
    names = list(names or [])
    if len(names) > len(ckpts):
        raise UserError(f"{len(names)} --name values for {len(ckpts)} --ckpt; give at most one name per checkpoint")
    resolved = [check_model_name(n) for n in names + [default_name(c) for c in ckpts[len(names):]]]
    duplicates = sorted({n for n in resolved if resolved.count(n) > 1})
    if duplicates:
        raise UserError(f"two models are named {duplicates[0]!r}; tell them apart with --name")
    return resolved


def open_model(session: Session, ckpt: str, name: str) -> Encoder:
    """Load a checkpoint onto the session's device and record its identity in the results folder."""
    encoder = load_encoder(ckpt, name=name, normalization=session.normalization,
                           **session.load_options.get(name, {}))
    check_finite_weights(encoder)  # before anything is written or computed
    encoder = encoder.to(session.device).eval()
    source = encoder.source
    session.log(f"{name}: {source.format} checkpoint, {source.arch}"
                + (f" ({source.branch})" if source.branch else "") + f", sha256 {source.content_hash[:12]}")
    for note in source.notes:
        session.log(f"{name}: {note}")
    if not session.shards.is_main:
        return encoder
    session.store.save_model({**encoder.source.to_json(),
                              "parameters": sum(p.numel() for p in encoder.parameters()),
                              "num_features": encoder.num_features, "receptive_field": encoder.receptive_field(),
                              "normalization": encoder.normalization()})
    return encoder


def _dataset_for(session: Session, encoder: Encoder) -> tuple[str, int | None]:
    source = encoder.source
    name = session.dataset or source.dataset
    if name is None:
        raise UserError(f"{source.name}: the checkpoint does not say which dataset it was trained on; pass --dataset")
    return name, session.image_size or source.input_size


def load_split(session: Session, name: str, split: str, image_size: int | None) -> AnyDataset:
    key = (name, split, image_size)
    if key not in session._datasets:
        session._datasets[key] = load_dataset(name, split, root=session.data_root, download=session.download,
                                              image_size=image_size)
    return session._datasets[key]


def eval_data(session: Session, encoder: Encoder) -> EvalData:
    name, size = _dataset_for(session, encoder)
    spec = get_spec(name)
    data = EvalData.from_dataset(load_split(session, name, spec.eval_split, size), session.n, session.seed)
    if getattr(encoder, "family", None) == "vit":  # PROTOCOLS 13: the position embedding at this size, recorded
        side = data.info.image_size
        note = f"position embedding at {side} px: {encoder.position_embedding(side)}"
        if note not in encoder.source.notes:
            encoder.source = dataclasses.replace(encoder.source, notes=encoder.source.notes + (note,))
            session.log(f"{encoder.source.name}: {note}")
    return data


def _feature_ids(data: EvalData, feats: Features):
    """The dataset indices of the labelled features, in order (features follow the evaluation
    subset's order, undecodable files dropped); when some were dropped and the cache does not say
    which, the labels in order stand in as the images' identity."""
    keep = feats.labels >= 0
    if len(feats.labels) == len(data):
        return data.indices[keep].numpy()
    return feats.labels[keep].numpy()


def probe_data(session: Session, encoder: Encoder) -> EvalData:
    """The probe's training subset."""
    name, size = _dataset_for(session, encoder)
    return EvalData.from_dataset(load_split(session, name, get_spec(name).train_split, size), session.n_train,
                                 session.seed)


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
    name, _ = _dataset_for(session, encoder)
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
    from coanalysis.sharded_features import extract_over_ranks, features_needed, probe_from_main

    datasets = [probe_data(session, encoder), test]
    extract_over_ranks(session, encoder, datasets,
                       session.shards.share(lambda: features_needed(session, encoder, datasets)) == b"1")
    return probe_from_main(session.shards, lambda: ensure_probe(session, encoder, test), session.device)


def make_context(session: Session, encoder: Encoder,
                 corruption: CorruptionSettings = CorruptionSettings()) -> EvalContext:
    """The model's `EvalContext`: its evaluation data and probe, the session's run options and the
    command's corruption settings (worker processes, cache folder)."""
    test = eval_data(session, encoder)
    probe, identity, accuracy = shared_probe(session, encoder, test)
    return EvalContext(encoder=encoder, probe=probe, data=test, device=session.device, precision=session.precision,
                       batch_size=session.batch_size, workers=session.workers, probe_identity=identity,
                       clean_accuracy=accuracy, cache=session.cache, progress=session.progress, corruption=corruption)


def _identity(protocol_json: dict[str, Any], analysis: Analysis) -> dict[str, Any]:
    return {k: v for k, v in protocol_json.items() if k not in analysis.condition_fields}


def _merge_conditions(protocol: Any, stored: dict[str, Any], analysis: Analysis) -> Any:
    """`protocol` with each condition field extended by the stored values it lacks (stored first)."""
    merged = {}
    for name in analysis.condition_fields:
        new = tuple(getattr(protocol, name))
        old = tuple(stored.get(name, ()))
        merged[name] = old + tuple(v for v in new if v not in old)
    return dataclasses.replace(protocol, **merged)


def run_analysis(session: Session, ctx: EvalContext, analysis: Analysis, protocol: Any) -> Result:
    """Run the cells of `analysis` not yet stored for this model; each is saved as it finishes.

    Stored cells are never dropped: asking for other conditions (another sigma, say) adds cells to
    the stored result. A stored result made with another protocol or checkpoint is refused unless
    `session.overwrite`. Several processes may run into one results folder: each cell is computed
    under the result file's lock after re-reading the file, so a cell another process finished is
    taken from it instead of computed again, and every process's cells end up in the file. Under
    torchrun the cells are dealt out over the ranks one round at a time, and rank 0 alone merges
    and saves each round under the same lock.
    """
    source = ctx.encoder.source
    store = session.store
    path = store.path(source.name, analysis.name)

    def as_json(p: Any) -> dict[str, Any]:
        return normalized({**p.to_json(), "data": ctx.data.describe(), "precision": session.precision,
                           "probe": ctx.probe_identity})

    def other_what(result: Result) -> str | None:
        """None when `result` was made with this protocol and checkpoint, else what differs."""
        if result.model.get("content_hash") != source.content_hash:
            return "another checkpoint"
        if _identity(result.protocol, analysis) != _identity(as_json(protocol), analysis):
            return "another protocol"
        return None

    stored = load_on_main(session.shards, store, source.name, analysis.name)  # rank 0 reads, sends it
    if stored is not None and other_what(stored) is not None:
        if not session.overwrite:
            raise UserError(f"{path} was computed with {other_what(stored)}; "
                            "use another --out, or pass --overwrite to replace it")
        stored = None
    state = {"merged": _merge_conditions(protocol, stored.protocol, analysis) if stored is not None else protocol,
             "wall": stored.wall_time_s if stored is not None else 0.0, "replacing": session.overwrite}
    cells = dict(stored.cells) if stored is not None else {}
    wanted = analysis.cells(protocol)
    todo = [k for k in wanted if k not in cells]
    if len(wanted) > len(todo) and session.shards.is_main:  # printed even without progress: it explains a fast run
        print(f"{source.name}/{analysis.name}: {len(wanted) - len(todo)} of {len(wanted)} cells already done, "
              "skipping them", flush=True)

    def record() -> Result:
        all_keys = analysis.cells(state["merged"])
        return Result(analysis=analysis.name, model=source.to_json(), protocol=as_json(state["merged"]),
                      cells={k: cells[k] for k in all_keys if k in cells}, environment=session.env,
                      wall_time_s=round(state["wall"], 3), complete=all(k in cells for k in all_keys),
                      expected_cells=len(all_keys))

    def take_from_disk() -> None:
        """Merge in what other processes wrote since (call under the lock)."""
        current = store.load(source.name, analysis.name)
        if current is None:
            return
        what = other_what(current)
        if what is not None:
            if state["replacing"]:  # the file --overwrite replaces, until this process first writes
                return
            raise UserError(f"another process wrote {path} with {what} meanwhile; use another --out")
        state["merged"] = _merge_conditions(state["merged"], current.protocol, analysis)
        for k, c in current.cells.items():
            if k not in cells:
                cells[k] = c
                state["wall"] += c.get("wall_time_s") or 0.0

    def save() -> None:
        store.save(record())
        state["replacing"] = False

    def compute(key: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        cell = analysis.run_cell(ctx, protocol, key)
        cell["wall_time_s"] = round(time.perf_counter() - t0, 3)
        return cell

    from tqdm import tqdm

    shards = session.shards
    with tqdm(total=len(todo), desc=f"{source.name}/{analysis.name}", disable=not session.progress,
              leave=False) as bar:
        if shards.world == 1:
            for key in todo:
                with store.locked(source.name, analysis.name):
                    take_from_disk()
                    if key not in cells:  # else another process finished it
                        cells[key] = compute(key)
                        state["wall"] += cells[key]["wall_time_s"]
                        save()
                bar.update(1)
        else:
            for finished in shards.deal(todo, compute):  # one cell per rank and round
                for key, cell in finished.items():
                    cells[key] = cell
                    state["wall"] += cell["wall_time_s"]
                if shards.is_main:  # the only writer
                    with store.locked(source.name, analysis.name):
                        take_from_disk()
                        save()
                bar.update(len(finished))
    if not todo and stored is not None and record() != stored and shards.is_main:
        with store.locked(source.name, analysis.name):
            take_from_disk()
            save()
    return record()


__all__ = ["ANALYSES", "Session", "ensure_probe", "eval_data", "make_context", "model_names",
           "open_model", "run_analysis", "shared_probe"]
