"""The checkpoint contract: what a run directory holds and the one strict way to read it.

`checkpoints/<run>/` holds three files, each written atomically:
- `encoder.safetensors`: the bare encoder backbone weights, torchvision parameter names, no
  wrapper prefix, no heads. Loadable without co-ssl into a torchvision ResNet (strict=False, no fc).
- `meta.json`: schema version, architecture and its options, method, the full resolved training
  config, normalization, dataset, input size, epoch/step, metrics, package and torch versions, git
  commit (when there is one), and the sha256 of `encoder.safetensors`. Written by the trainer
  too: `receptive_field` (analytic, px), `local_branch` (the CO-SSL settings, or null),
  `representation` (how to read the encoder: `global-average` of the final map, or BagSSL's
  `bag-of-patches` readout), `views` (the augmentation plan), `distributed` (world size, backend,
  per-rank weight fingerprints) and `exported` (which network the weights are: the online encoder).
- `state.pt`: the resume state (all networks, optimizer, step, every rank's augmentation RNG
  stream, the per-epoch history), tensors and plain containers only, so
  `torch.load(weights_only=True)` reads it.

Files are written state first, meta last; a kill between two writes leaves files that still load
(`meta.json` may then describe the previous save, which `read_run` reports). Beside them,
`log.jsonl` holds one line of metrics per finished epoch.

`meta.json` is one typed record, `RunMeta`: the trainer assembles it with `training_meta` and
`save_run` completes it with what only the written files know (digest, versions, time). Reading
checks every field's type and shape (`co_ssl_train.meta_schema`) before anything is built from it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from co_ssl_train import __version__
from co_ssl_train.atomic import atomic_path, write_bytes_atomic, write_json_atomic, write_text_atomic
from co_ssl_train.errors import UserError
from co_ssl_train.meta_schema import check_meta
from co_ssl_train.models import Encoder, build_encoder

SCHEMA_VERSION = 1
FORMAT = "co-ssl-run"
ENCODER_FILE = "encoder.safetensors"
META_FILE = "meta.json"
STATE_FILE = "state.pt"
LOG_FILE = "log.jsonl"


@dataclass(frozen=True)
class RunMeta:
    """Everything `meta.json` says, in the order it is written (see the module docstring).

    The trainer fills the first block (`training_meta`); `save_run` fills the second from the
    encoder and the files it writes.
    """

    method: str
    config: dict  # TrainConfig.to_json() of the resolved config
    dataset: dict  # DatasetInfo.to_json()
    input_size: int
    epoch: int  # whole epochs finished (metrics["epoch"] is the fractional step / steps-per-epoch)
    step: int
    total_steps: int
    finished: bool
    metrics: dict  # the last logged metrics
    exported: str  # which network the weights are
    receptive_field: int | None  # analytic, px, of one local vector
    local_branch: dict | None  # LocalSettings.to_json() and the encoder "stage" it aligned, or None without CO
    representation: dict  # how to read the encoder ("global-average", a ViT's "readout", BagSSL's "bag-of-patches")
    encoder: dict  # Encoder.describe(): architecture, features, a ViT's token layout
    views: list  # [{"size", "count", "scale"}, ...]: the augmentation plan
    distributed: dict  # world size, backend, per-rank weight fingerprints
    created: str | None = None
    arch: dict | None = None  # {"name", "kwargs"}
    local_layer: str | None = None  # the encoder's forward_local stage; the stage the CO branch aligned
    #                                 (config["local_layer"]) is local_branch["layer"]
    normalization: dict | None = None  # {"mean": [3], "std": [3]}
    encoder_sha256: str | None = None
    package_version: str | None = None
    torch_version: str | None = None
    git_commit: str | None = None
    updated: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "format": FORMAT, **dataclasses.asdict(self)}


def training_meta(cfg, spec, *, dataset_info: dict, encoder: Encoder, plan, local, stage: str, epoch: int, step: int,
                  total_steps: int, metrics: dict, distributed: dict, created: str | None) -> RunMeta:
    """The trainer's part of the record: config (`TrainConfig`), method (`MethodSpec`), data, progress,
    and how to read the encoder (the method's own readout, a ViT's readout token, or the global
    average of the final map); `stage`: the encoder layer the CO branch aligned."""
    if spec.representation is not None:
        representation = spec.representation(cfg)
    elif getattr(encoder, "family", None) == "vit":
        representation = {"kind": "readout", "readout": encoder.readout, "layer": encoder.final_layer}
    else:
        representation = {"kind": "global-average", "layer": encoder.final_layer}
    return RunMeta(
        method=cfg.method, config=cfg.to_json(), dataset=dataset_info, input_size=cfg.image_size, epoch=epoch,
        step=step, total_steps=total_steps, finished=step >= total_steps, metrics=metrics,
        exported="online encoder", receptive_field=encoder.receptive_field(),
        local_branch={**local.to_json(), "stage": stage} if local is not None else None,
        representation=representation, encoder=encoder.describe(),
        views=[{"size": v.size, "count": c, "scale": list(v.scale)} for v, c in plan],
        distributed=distributed, created=created or None)


def git_commit() -> str | None:
    """The commit of the source tree co-ssl runs from, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encoder_tensors(encoder: Encoder) -> dict[str, torch.Tensor]:
    """The backbone's state dict as contiguous CPU tensors (what goes into encoder.safetensors)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in encoder.backbone.state_dict().items()}


def save_run(run_dir: Path, encoder: Encoder, meta: RunMeta, state: dict[str, Any] | None) -> str:
    """Write the run directory atomically, file by file; returns the encoder's sha256."""
    from safetensors.torch import save as st_save

    run_dir.mkdir(parents=True, exist_ok=True)
    if state is not None:
        with atomic_path(run_dir / STATE_FILE) as tmp:
            torch.save(state, tmp)
    header = {"format": FORMAT, "arch": encoder.arch, "schema_version": str(SCHEMA_VERSION)}
    blob = st_save(encoder_tensors(encoder), metadata=header)
    write_bytes_atomic(run_dir / ENCODER_FILE, blob)
    digest = sha256_bytes(blob)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    meta = dataclasses.replace(
        meta, created=meta.created or now, arch={"name": encoder.arch, "kwargs": encoder.arch_kwargs},
        local_layer=encoder.local_layer, normalization=encoder.normalization(), encoder_sha256=digest,
        package_version=__version__, torch_version=torch.__version__, git_commit=git_commit(), updated=now)
    write_json_atomic(run_dir / META_FILE, meta.to_json())
    return digest


def read_log(run_dir: Path) -> list[dict]:
    """The per-epoch metrics of `log.jsonl` (empty when there is none yet)."""
    path = run_dir / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_log(run_dir: Path, history: list[dict]) -> None:
    """The per-epoch JSONL log, rewritten atomically (it is small)."""
    write_text_atomic(run_dir / LOG_FILE, "".join(json.dumps(h) + "\n" for h in history))


# ----------------------------------------------------------------------------------------------
# Reading

def upgrade_meta(meta: dict[str, Any], source: Path) -> dict[str, Any]:
    """Bring an older `meta.json` up to `SCHEMA_VERSION`, saying what was patched.

    There is only schema 1 so far; a newer schema is refused with advice to upgrade co-ssl.
    """
    version = meta.get("schema_version")
    if not isinstance(version, int):
        raise UserError(f"{source} has no schema_version; it is not a co-ssl meta.json")
    if version > SCHEMA_VERSION:
        raise UserError(f"{source} has schema version {version}, newer than this co-ssl "
                        f"({__version__}, schema {SCHEMA_VERSION}); upgrade co-ssl")
    return meta


def read_meta(run_dir: Path) -> dict[str, Any]:
    """Parse and check `meta.json`; every problem becomes a one-line UserError."""
    path = run_dir / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{run_dir} has no {META_FILE}; it is not a co-ssl run directory") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}); the run directory is damaged") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a co-ssl meta.json (no format {FORMAT!r})")
    meta = upgrade_meta(meta, path)
    check_meta(meta, path)
    return meta


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str], str]:
    """(tensors, header metadata, sha256) of a safetensors file; damage becomes a UserError."""
    from safetensors import safe_open
    from safetensors.torch import load as st_load

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path} not found") from None
    try:
        tensors = st_load(data)
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error type, and OSError/ValueError
        raise UserError(f"{path} is truncated or not a safetensors file ({str(e).splitlines()[0][:120]}); "
                        "copy it again or re-export the checkpoint") from None
    return tensors, header, sha256_bytes(data)


def load_run_encoder(run_dir: Path) -> tuple[Encoder, dict[str, Any], str]:
    """The strict loader: (encoder in eval mode, meta, sha256 of the weights) of a run directory."""
    meta = read_meta(run_dir)
    tensors, _, digest = read_safetensors(run_dir / ENCODER_FILE)
    arch = meta["arch"]
    norm = meta["normalization"]
    encoder = build_encoder(arch["name"], arch.get("kwargs", {}), mean=norm["mean"], std=norm["std"],
                            local_layer=meta.get("local_layer"))
    missing, unexpected = _compare_keys(encoder.backbone.state_dict(), tensors)
    if missing or unexpected:
        raise UserError(f"{run_dir / ENCODER_FILE} does not match architecture {arch['name']} "
                        f"{arch.get('kwargs', {})}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    try:
        encoder.backbone.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise UserError(f"{run_dir / ENCODER_FILE} does not fit architecture {arch['name']}: {first}") from None
    if meta.get("encoder_sha256") not in (None, digest):
        meta = {**meta, "stale_meta": True}
    return encoder.eval(), meta, digest


def _compare_keys(expected: dict, found: dict) -> tuple[list[str], list[str]]:
    return sorted(set(expected) - set(found)), sorted(set(found) - set(expected))


def load_state(run_dir: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The resume state, read with `weights_only=True` (no code from the file runs)."""
    path = run_dir / STATE_FILE
    try:
        data = path.read_bytes()
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{run_dir} has no {STATE_FILE}; it cannot be resumed") from None
    except Exception as e:  # torch raises several types for damaged or unsafe files
        raise UserError(f"{path} cannot be read safely ({str(e).splitlines()[0][:120]}); "
                        "it is damaged or not a co-ssl resume state") from None
