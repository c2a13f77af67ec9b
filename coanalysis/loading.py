"""The one door from coanalysis into the trainer's code, and `load_encoder`.

coanalysis reaches `co_ssl_train` only here: the checkpoint contract (run directories), the
architecture table, the dataset layer and the shared error type and atomic writers are re-exported
from this module, and the rest of coanalysis imports them from here.

`load_encoder(spec)` returns an `Encoder` in eval mode (RGB in [0, 1], normalization inside,
`forward_local` / `forward_global`) with a `source` attribute (`ModelSource`) naming where it
came from. Nothing from the file is ever unpickled as code: weights come from safetensors, and
`torch.load` is only called with `weights_only=True`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from co_ssl_train import __version__ as package_version
from co_ssl_train import checkpoint as contract
from co_ssl_train.atomic import atomic_path, write_bytes_atomic, write_json_atomic, write_text_atomic
from co_ssl_train.data import DATASETS, AnyDataset, DatasetInfo, ImageDataset, get_spec, iterate_batches, load_dataset
from co_ssl_train.data.datasets import UNDECODABLE
from co_ssl_train.errors import UserError
from co_ssl_train.models import ARCHS, Encoder, build_encoder

ENCODER_FILE, META_FILE, STATE_FILE = contract.ENCODER_FILE, contract.META_FILE, contract.STATE_FILE

__all__ = ["ARCHS", "DATASETS", "ENCODER_FILE", "META_FILE", "STATE_FILE", "AnyDataset", "DatasetInfo", "Encoder", "ImageDataset", "ModelSource", "UNDECODABLE",
           "UserError", "atomic_path", "build_encoder", "get_spec", "iterate_batches", "load_dataset",
           "load_encoder", "package_version", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


@dataclass(frozen=True)
class ModelSource:
    """Where an encoder came from; recorded in every result."""

    path: str
    format: str  # "co-ssl-run", ...
    content_hash: str  # sha256 of the weights file
    name: str  # display name (run or file name unless given)
    arch: str
    arch_kwargs: dict = field(default_factory=dict)
    method: str | None = None
    dataset: str | None = None  # training dataset, when known
    input_size: int | None = None
    epoch: int | None = None
    notes: tuple[str, ...] = ()  # what the loader noticed (stale meta, dropped keys, ...)
    meta: dict = field(default_factory=dict, compare=False)  # the full meta.json, when there is one

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        data["config"] = self.meta.get("config")
        data.pop("meta")
        return data


def _run_dir(path: Path) -> Path | None:
    """The run directory `path` designates (the folder itself, or one of its three files)."""
    if path.is_dir() and (path / contract.META_FILE).is_file():
        return path
    if path.is_file() and path.name in (contract.META_FILE, contract.ENCODER_FILE, contract.STATE_FILE) \
            and (path.parent / contract.META_FILE).is_file():
        return path.parent
    return None


def load_encoder(spec: str | Path, *, name: str | None = None) -> Encoder:
    """A ready encoder (eval mode) from a co-ssl run directory (or a file inside it).

    Raises `UserError` with a one-line explanation for a missing path, a file that is not a
    checkpoint, a truncated weights file or an unknown architecture.
    """
    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist; pass a run directory such as checkpoints/<run>")
    run_dir = _run_dir(path)
    if run_dir is None:
        what = "folder" if path.is_dir() else "file"
        raise UserError(f"{path} is not a co-ssl checkpoint: the {what} has no {contract.META_FILE} "
                        f"beside {contract.ENCODER_FILE}; pass a run directory written by co-ssl-train")
    encoder, meta, digest = contract.load_run_encoder(run_dir)
    notes = ("meta.json describes an earlier save than encoder.safetensors (interrupted write)",) \
        if meta.get("stale_meta") else ()
    encoder.source = ModelSource(
        path=str(run_dir), format=contract.FORMAT, content_hash=digest, name=name or run_dir.name,
        arch=encoder.arch, arch_kwargs=encoder.arch_kwargs, method=meta.get("method"),
        dataset=(meta.get("dataset") or {}).get("name"), input_size=meta.get("input_size"),
        epoch=meta.get("epoch"), notes=notes, meta=meta)
    return encoder
