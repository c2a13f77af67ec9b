"""The options every analysis command shares (`Session`), and the models and data they run on.

`Session` holds the results folder, device, precision, data and subset sizes, caches and the
torchrun ranks (`Session.shards`); `open_model` loads a checkpoint onto the session's device and
records `<out>/<model>/model.json` (rank 0 only); `eval_data` and `probe_data` are a model's
evaluation and probe-training subsets, each split loaded once per session.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coanalysis.run.environment import environment
from coanalysis.features.extraction import EvalData, FeatureCache
from coanalysis.probes.knn import KNNProtocol
from coanalysis.models.loading import check_finite_weights, load_encoder
from coanalysis.results.store import ResultsStore, check_model_name
from coanalysis.distributed.sharding import Shards
from coanalysis.models.trainer import (ENCODER_FILE, META_FILE, STATE_FILE, AnyDataset, Encoder, UserError, get_spec,
                                load_dataset, resolve_device, resolve_precision)


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


def dataset_for(session: Session, encoder: Encoder) -> tuple[str, int | None]:
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
    name, size = dataset_for(session, encoder)
    spec = get_spec(name)
    data = EvalData.from_dataset(load_split(session, name, spec.eval_split, size), session.n, session.seed)
    if getattr(encoder, "family", None) == "vit":  # PROTOCOLS 13: the position embedding at this size, recorded
        side = data.info.image_size
        note = f"position embedding at {side} px: {encoder.position_embedding(side)}"
        if note not in encoder.source.notes:
            encoder.source = dataclasses.replace(encoder.source, notes=encoder.source.notes + (note,))
            session.log(f"{encoder.source.name}: {note}")
    return data


def probe_data(session: Session, encoder: Encoder) -> EvalData:
    """The probe's training subset."""
    name, size = dataset_for(session, encoder)
    return EvalData.from_dataset(load_split(session, name, get_spec(name).train_split, size), session.n_train,
                                 session.seed)


__all__ = ["Session", "dataset_for", "default_name", "eval_data", "load_split", "model_names", "open_model",
           "probe_data"]
