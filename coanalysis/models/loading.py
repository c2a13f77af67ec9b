"""`load_encoder`: a ready encoder from a co-ssl run directory or a third-party checkpoint file.

`load_encoder(spec)` returns an `Encoder` in eval mode (RGB in [0, 1], normalization inside,
`forward_local` / `forward_global`) with a `source` attribute (`ModelSource`) naming where it
came from. It reads our run directories through the checkpoint contract and every other ResNet
checkpoint through the adapters of `coanalysis.models.formats` (torchvision, timm, solo-learn, lightly,
mmselfsup, VISSL, DINO, MoCo, SwAV, PyContrast): the trunk's weights are renamed to torchvision
names, the architecture is read from their shapes, and the weights are loaded strictly. Nothing
from a file is ever run: weights come from safetensors or `torch.load(weights_only=True)`.
What coanalysis takes from the trainer comes through `coanalysis.models.trainer`, not from here.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from coanalysis.models.formats import detect, get_format
from coanalysis.models.formats.arch import infer_arch
from coanalysis.models.formats.base import group_keys
from coanalysis.models.formats.reading import read_checkpoint
from coanalysis.models.formats.vit_arch import infer_vit_arch
from coanalysis.models.readout import apply_readout
from coanalysis.models.trainer import ARCHS, VIT_READOUTS, Encoder, UserError, build_encoder, contract
from coanalysis.models.zoo import is_zoo_spec, resolve_zoo_spec

__all__ = ["ModelSource", "check_finite_weights", "load_encoder", "nonfinite_tensors"]


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """Where an encoder came from and how it was read; recorded in every result."""

    path: str
    format: str  # "co-ssl-run", "torchvision", "dino", ... (coanalysis.models.formats.FORMATS)
    content_hash: str  # sha256 of the weights file's bytes
    name: str  # display name (run or file name unless given)
    arch: str
    arch_kwargs: dict = field(default_factory=dict)
    method: str | None = None
    dataset: str | None = None  # training dataset, when known
    input_size: int | None = None
    epoch: int | None = None
    notes: tuple[str, ...] = ()  # what the loader noticed (dropped keys, stale meta, ...)
    meta: dict = field(default_factory=dict, compare=False)  # the full meta.json, when there is one
    branch: str | None = None  # which copy of a multi-network checkpoint (teacher, student, ema, ...)
    normalization: dict | None = None  # {"mean": [...], "std": [...]} inside the encoder
    adjustments: dict = field(default_factory=dict)  # module changes beyond the arch (e.g. conv1_padding)
    dropped: tuple[str, ...] = field(default=(), compare=False)  # every key left out (inspect shows them)
    readout: dict | None = None  # how images become the representation (coanalysis.models.readout); None: global average
    family: str = "resnet"  # "resnet" (every CNN) or "vit"
    global_readout: str | None = None  # a ViT's global representation: cls | avg | cls+avg (None for CNNs)

    def loading(self) -> dict[str, Any]:
        """Everything besides the file that decides what the encoder computes (cache and probe identity)."""
        out = {"format": self.format, "branch": self.branch, "arch": self.arch, "arch_kwargs": self.arch_kwargs,
               "normalization": self.normalization, "adjustments": self.adjustments}
        if self.readout and self.readout.get("kind") != "global-average":
            out["readout"] = self.readout
        if self.family == "vit":  # CNN identities (and their cached features) stay as they were
            out["global_readout"] = self.global_readout
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        data["config"] = self.meta.get("config")
        data["training"] = {k: self.meta[k] for k in ("step", "total_steps", "finished", "metrics", "created")
                            if k in self.meta} or None
        data.pop("meta")
        data.pop("dropped")
        data["dropped_keys"] = len(self.dropped)
        return data


def _run_dir(path: Path) -> Path | None:
    """The run directory `path` designates (the folder itself, or one of its three files)."""
    if path.is_dir() and (path / contract.META_FILE).is_file():
        return path
    if path.is_file() and path.name in (contract.META_FILE, contract.ENCODER_FILE, contract.STATE_FILE) \
            and (path.parent / contract.META_FILE).is_file():
        return path.parent
    return None


def _normalization(value: Any) -> tuple[list[float], list[float]] | None:
    """`(mean, std)` or `{"mean": ..., "std": ...}` -> two lists of 3 positive-std floats (None passes)."""
    if value is None:
        return None
    try:
        mean, std = (value["mean"], value["std"]) if isinstance(value, dict) else value
        mean, std = [float(v) for v in mean], [float(v) for v in std]
    except (KeyError, TypeError, ValueError):
        raise UserError(f"normalization must be (mean, std) or {{'mean': ..., 'std': ...}}, got {value!r}") from None
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise UserError(f"normalization needs 3 means and 3 positive stds (RGB), got mean={mean} std={std}")
    return mean, std


def _set_normalization(encoder: Encoder, mean: Sequence[float], std: Sequence[float]) -> None:
    encoder.mean.copy_(torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
    encoder.std.copy_(torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))


def load_encoder(spec: str | Path, *, name: str | None = None, format: str | None = None, arch: str | None = None,
                 branch: str | None = None, normalization: Any = None, readout: str = "auto",
                 global_readout: str | None = None) -> Encoder:
    """A ready encoder (eval mode) from a co-ssl run directory or any supported ResNet checkpoint.

    - `format`: a `coanalysis.models.formats.FORMATS` name; None detects it from the file's keys.
    - `arch`: an `ARCHS` name; None reads it from the weight shapes (the weights must still fit).
    - `branch`: which copy of a multi-network checkpoint (DINO teacher/student, timm or PyContrast
      model/ema); None takes the format's default.
    - `normalization`: `(mean, std)` or `{"mean", "std"}` replacing the format's default (ImageNet
      statistics for third-party models, the recorded ones for our runs). Inputs stay in [0, 1].
    - `readout`: `auto` reads a BagSSL run through its recorded bag of patches
      (`coanalysis.models.readout`), every other encoder through `forward_global`; `global` forces the
      plain global readout; `bag` requires the recorded bag readout. Recorded in `source.readout`.
    - `global_readout`: a ViT's global representation, `cls`, `avg` or `cls+avg` (None: the
      family's own, PROTOCOLS.md section 13); CNNs have one, `avg`. Recorded in `source.global_readout`.
    `spec` may be `zoo:NAME` (`coanalysis zoo`): the published file, downloaded and verified first.
    Raises `UserError` with a one-line explanation for anything it cannot read safely and exactly.
    """
    if is_zoo_spec(spec):
        spec = resolve_zoo_spec(str(spec))
    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist; pass a run directory such as checkpoints/<run> "
                        "or a checkpoint file")
    norm = _normalization(normalization)
    run_dir = _run_dir(path)
    if run_dir is not None and format in (None, contract.FORMAT):
        encoder = _load_run(run_dir, name, arch, branch)
    elif run_dir is not None and path.is_dir():
        raise UserError(f"{path} is a co-ssl run directory, read as format {contract.FORMAT}; --format {format} "
                        "applies to checkpoint files")
    elif path.is_dir():
        files = sorted(p.name for p in path.iterdir() if p.suffix in (".pth", ".pt", ".ckpt", ".tar", ".torch",
                                                                       ".safetensors"))[:5]
        hint = f"pass one of its files ({', '.join(files)})" if files \
            else "pass a run directory written by co-ssl-train"
        raise UserError(f"{path} is not a co-ssl checkpoint: the folder has no {contract.META_FILE}; {hint}")
    else:
        encoder = _load_file(path, name, format, arch, branch)
    _set_global_readout(encoder, global_readout)
    if norm is not None:
        _set_normalization(encoder, *norm)
        encoder.source = dataclasses.replace(encoder.source, normalization=encoder.normalization(),
                                             notes=encoder.source.notes + ("normalization set by the caller",))
    source = encoder.source
    encoder, record = apply_readout(encoder, source.meta, readout)
    notes = source.notes + ((f"read through the bag of {record['patch_size']} px patches at stride {record['stride']} "
                             "recorded in meta.json (--readout global for the plain global one)",)
                            if record["kind"] == "bag-of-patches" else ())
    encoder.source = dataclasses.replace(source, readout=record, notes=notes)
    return encoder.eval()


def _family(encoder: Encoder) -> str:
    return getattr(encoder, "family", "resnet")


def _set_global_readout(encoder: Encoder, readout: str | None) -> None:
    """Record the encoder's readout in its source; apply `readout` (a ViT's --global) when given."""
    family = _family(encoder)
    if readout is not None and readout not in VIT_READOUTS:
        raise UserError(f"unknown global readout {readout!r}; choose one of: {', '.join(VIT_READOUTS)}")
    if family != "vit":
        if readout not in (None, "avg"):
            raise UserError(f"--global {readout} applies to Vision Transformers; {encoder.source.name} is a "
                            f"{encoder.arch}, whose global representation is the average of its map (avg)")
        return
    notes = encoder.source.notes
    if readout is not None and readout != encoder.readout:
        if "cls" in readout and not encoder.backbone.has_class_token:
            raise UserError(f"--global {readout}: {encoder.source.name} has no class token; use --global avg")
        notes += (f"global readout {readout} set by the caller (the family's own: {encoder.readout})",)
        encoder.readout = readout
    encoder.source = dataclasses.replace(encoder.source, family="vit", global_readout=encoder.readout, notes=notes)


def _load_run(run_dir: Path, name: str | None, arch: str | None, branch: str | None) -> Encoder:
    encoder, meta, digest = contract.load_run_encoder(run_dir)
    if arch is not None and arch != encoder.arch:
        raise UserError(f"{run_dir} records its architecture ({encoder.arch}); "
                        "--arch only applies to third-party files")
    if branch is not None:
        raise UserError(f"{run_dir} holds a single encoder; --branch only applies to multi-network checkpoints")
    notes = ("meta.json describes an earlier save than encoder.safetensors (interrupted write)",) \
        if meta.get("stale_meta") else ()
    encoder.source = ModelSource(
        path=str(run_dir), format=contract.FORMAT, content_hash=digest, name=name or run_dir.name,
        arch=encoder.arch, arch_kwargs=encoder.arch_kwargs, method=meta.get("method"),
        dataset=(meta.get("dataset") or {}).get("name"), input_size=meta.get("input_size"),
        epoch=meta.get("epoch"), notes=notes, meta=meta, normalization=encoder.normalization())
    return encoder


def _load_file(path: Path, name: str | None, format: str | None, arch: str | None, branch: str | None) -> Encoder:
    adapter = get_format(format) if format is not None else None
    ckpt = read_checkpoint(path)
    adapter = adapter or detect(ckpt)
    if branch is not None and branch not in adapter.branches:
        choices = f"choose one of: {', '.join(adapter.branches)}" if adapter.branches else "it has a single network"
        raise UserError(f"format {adapter.name} has no branch {branch!r}; {choices}")
    backbone = adapter.extract(ckpt, branch)
    where = f"{path.name}: {backbone.where}"
    if not backbone.tensors:
        family = "ViT" if backbone.family == "vit" else "ResNet"
        raise UserError(f"{path}: no {family} weights found as format {adapter.name} ({adapter.layout}); "
                        "check --format, or leave it out to detect the layout")
    if arch is not None and arch not in ARCHS:
        raise UserError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHS)}")
    notes = list(backbone.notes)
    if backbone.family == "vit":
        inferred, arch_kwargs, arch_notes = infer_vit_arch(backbone.tensors, where,
                                                           {"num_heads": backbone.info.get("num_heads")})
        notes += arch_notes
        if arch is not None and ARCHS[arch].family != "vit":
            raise UserError(f"--arch {arch} is a {ARCHS[arch].family}; {path.name} holds a Vision Transformer")
        if arch is not None and arch != "vit":  # a named size: its width, depth and heads replace the inferred ones
            arch_kwargs = {k: v for k, v in arch_kwargs.items() if k not in ("embed_dim", "depth", "num_heads")}
    else:
        if arch is not None and ARCHS[arch].family == "vit":
            raise UserError(f"--arch {arch} is a Vision Transformer; {path.name} holds a ResNet trunk")
        inferred, arch_kwargs = infer_arch(backbone.tensors, where)
    if backbone.family == "resnet" and backbone.arch is not None and backbone.arch != inferred and arch is None:
        notes.append(f"the file names architecture {backbone.arch!r}; its weights are {inferred}")
    mean, std = backbone.normalization
    encoder = build_encoder(arch or inferred, arch_kwargs, mean=mean, std=std)
    adjustments = {}
    if backbone.conv1_padding is not None:
        encoder.backbone.conv1.padding = (backbone.conv1_padding, backbone.conv1_padding)
        adjustments["conv1_padding"] = backbone.conv1_padding
    notes += _load_trunk(encoder, backbone.tensors, where)
    if backbone.dropped:
        line = f"dropped {len(backbone.dropped)} keys that are not the trunk: {group_keys(backbone.dropped)}"
        notes.insert(0, line)
        logger.info("%s: %s", path.name, line)
    if ckpt.stand_ins:
        notes.append(f"metadata read as inert records: {', '.join(sorted(ckpt.stand_ins))}")
    info = backbone.info
    encoder.source = ModelSource(
        path=str(path), format=adapter.name, content_hash=ckpt.sha256, name=name or path.name.split(".")[0],
        arch=encoder.arch, arch_kwargs=encoder.arch_kwargs, method=_str(info.get("method")),
        dataset=_str(info.get("dataset")), input_size=_int(info.get("input_size")) or _trained_size(encoder),
        epoch=_int(info.get("epoch")),
        notes=tuple(notes), branch=backbone.branch, normalization=encoder.normalization(), adjustments=adjustments,
        dropped=tuple(backbone.dropped))
    return encoder


def _load_trunk(encoder: Encoder, tensors: dict[str, torch.Tensor], where: str) -> list[str]:
    """Load `tensors` into `encoder.backbone` exactly; returns notes. Every mismatch is a UserError.

    Only BatchNorm's `num_batches_tracked` counters may be absent (old torchvision files lack
    them; eval mode never reads them): they are set to 0.
    """
    expected = encoder.backbone.state_dict()
    missing = sorted(set(expected) - set(tensors))
    counters = [k for k in missing if k.endswith("num_batches_tracked")]
    missing = [k for k in missing if k not in counters]
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        raise UserError(f"{where}: the {encoder.arch} trunk lacks {len(missing)} weights "
                        f"({', '.join(missing[:3])}); the checkpoint is incomplete or not this architecture")
    if unexpected:
        family = "ViT" if _family(encoder) == "vit" else "ResNet"
        raise UserError(f"{where}: {len(unexpected)} trunk keys do not belong to {encoder.arch} "
                        f"({', '.join(unexpected[:3])}); is it a {family} variant co-ssl cannot build?")
    wrong = [k for k in expected if k in tensors and tuple(tensors[k].shape) != tuple(expected[k].shape)]
    if wrong:
        k = wrong[0]
        raise UserError(f"{where}: {k} has shape {tuple(tensors[k].shape)}, {encoder.arch} "
                        f"{encoder.arch_kwargs} expects {tuple(expected[k].shape)}; check --arch")
    full = {k: tensors[k].detach().to(expected[k].dtype) if k in tensors else torch.zeros_like(expected[k])
            for k in expected}
    encoder.backbone.load_state_dict(full, strict=True)
    return [f"{len(counters)} BatchNorm num_batches_tracked counters absent (set to 0)"] if counters else []


def nonfinite_tensors(encoder: torch.nn.Module) -> list[str]:
    """Names of the parameters and floating-point buffers (BatchNorm statistics, normalization)
    that hold a NaN or an infinity."""
    tensors = [*encoder.named_parameters(), *encoder.named_buffers()]
    return [name for name, t in tensors if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def check_finite_weights(encoder: Encoder) -> None:
    """Refuse (UserError) an encoder with NaN or infinite weights: every analysis of it would be
    a wrong number (an ERF, a probe accuracy of chance) rather than an error."""
    bad = nonfinite_tensors(encoder)
    if bad:
        where = getattr(getattr(encoder, "source", None), "path", "the checkpoint")
        raise UserError(f"{where}: {len(bad)} weight tensor{'s' if len(bad) > 1 else ''} hold NaN or Inf "
                        f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); the checkpoint is broken "
                        "(a diverged run?): analyse an earlier checkpoint or retrain")


def _trained_size(encoder: Encoder) -> int | None:
    """A ViT's input side from its position embedding's grid (a CNN's is not in its weights)."""
    return encoder.backbone.img_size if _family(encoder) == "vit" else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

