"""Reading a checkpoint file without ever running code from it.

- safetensors files are plain tensors and a string header: read as they are.
- Every pickle-based file (`torch.save`, zip or legacy format, whatever its suffix: .pth, .pt,
  .ckpt, .tar, .torch) goes through `torch.load(path, map_location="cpu", weights_only=True)`.
  PyTorch's weights-only unpickler builds tensors and plain containers only, and refuses any other
  pickled global (a class or function named in the file).

Training checkpoints also pickle metadata objects: an `argparse.Namespace` of arguments (DINO,
timm), omegaconf configs in Lightning `hyper_parameters` (solo-learn), numpy scalars or mmengine
log buffers (mmselfsup). For a short list of such names, `STAND_INS`, the unpickler is given an
inert `StandIn` record *under that name*: it stores the pickled state and never imports or calls
the real class, so nothing from the file runs. Plain builtin containers (`dict`, `list`, `int`, ...)
referenced by such metadata are passed through. Any other global (`builtins.exec`,
`subprocess.Popen`, `os.system`, a project's own class) makes the file refused, with the name in
the message. There is no fallback to `weights_only=False`.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
import hashlib
import pickle
import re
import struct
from pathlib import Path
from typing import Any

import torch

from coanalysis.models.formats.base import Checkpoint
from coanalysis.models.trainer import UserError


class StandIn:
    """An inert record standing in for a pickled metadata object; `global_name` says which.

    Built by the unpickler with the pickled arguments and state, which it keeps and never acts on.
    """

    global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "StandIn":
        inst = super().__new__(cls)
        inst.args = args
        inst.state = None
        return inst

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<{self.global_name} (read as an inert record)>"


# Names read as inert records: metadata of known training frameworks, never weights.
STAND_IN_PREFIXES = ("omegaconf.", "typing.", "numpy.", "mmengine.", "pathlib.")
STAND_IN_NAMES = frozenset({"argparse.Namespace", "torch.torch_version.TorchVersion"})
# Dict subclasses whose pickles fill them item by item: read as plain dicts.
AS_DICT = frozenset({
    "lightning.fabric.utilities.data.AttributeDict", "lightning_fabric.utilities.data.AttributeDict",
    "pytorch_lightning.utilities.parsing.AttributeDict", "mmengine.config.config.ConfigDict",
})
# Builtin types that metadata refers to (e.g. omegaconf's `object_type=dict`); calling them is harmless.
BUILTINS: dict[str, Any] = {f"builtins.{t.__name__}": t for t in (
    dict, list, tuple, set, frozenset, int, float, str, bytes, bool, complex)}
BUILTINS["collections.defaultdict"] = collections.defaultdict

_stand_in_classes: dict[str, type] = {}


def stand_in(name: str) -> Any | None:
    """What the unpickler may use for global `name`, or None when the file must be refused."""
    if name in BUILTINS:
        return BUILTINS[name]
    if name in AS_DICT:
        return dict
    if name in STAND_IN_NAMES or name.startswith(STAND_IN_PREFIXES):
        if name not in _stand_in_classes:
            _stand_in_classes[name] = type(f"StandIn[{name}]", (StandIn,), {"global_name": name})
        return _stand_in_classes[name]
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sniff(path: Path) -> str | None:
    """"safetensors", "torch-zip", "torch-legacy" or None, from the first bytes of the file."""
    with open(path, "rb") as f:
        head = f.read(16)
    size = path.stat().st_size
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] + 8 <= size:
        return "safetensors"
    if head[:1] == b"\x80":  # a pickle protocol marker: torch.save's legacy format
        return "torch-legacy"
    return None


def read_checkpoint(path: Path) -> Checkpoint:
    """The file at `path` as a `Checkpoint`; unreadable or unsafe files raise a one-line UserError."""
    kind = sniff(path)
    if kind is None:
        raise UserError(f"{path} is not a co-ssl checkpoint, a safetensors file or a torch.save file; "
                        "pass a run directory or a .pth/.pt/.ckpt/.tar/.safetensors checkpoint")
    digest = file_sha256(path)
    if kind == "safetensors":
        return _read_safetensors(path, digest)
    obj, stand_ins = _torch_load(path, kind)
    return Checkpoint(path=path, obj=obj, kind=kind, sha256=digest, stand_ins=stand_ins)


def _read_safetensors(path: Path, digest: str) -> Checkpoint:
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            header = dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own error type
        raise UserError(f"{path} is truncated or not a safetensors file ({_first_line(e)}); "
                        "copy it again or re-export it") from None
    return Checkpoint(path=path, obj=tensors, kind="safetensors", sha256=digest, header=header)


def _refusal(path: Path, names: list[str]) -> UserError:
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return UserError(
        f"refusing to read {path}: its pickle asks for {shown}, which unpickling would import and run; "
        "co-ssl reads tensors and plain containers only (torch.load weights_only=True) and never runs code "
        "from a checkpoint. If you trust the file, save its state dict alone (or as safetensors) in the "
        "environment that made it, and load that")


_GLOBAL = re.compile(r"GLOBAL ([A-Za-z_][\w.]*)")


def _global_in(message: str) -> str | None:
    """The global a weights-only refusal names (builtins appear without their module)."""
    found = _GLOBAL.search(message)
    if found is None:
        return None
    name = found.group(1)
    return name if "." in name else f"builtins.{name}"


def _torch_load(path: Path, kind: str) -> tuple[Any, tuple[str, ...]]:
    allowed: dict[str, Any] = {}

    def allow(names: list[str]) -> None:
        refused = [n for n in names if stand_in(n) is None]
        if refused:
            raise _refusal(path, refused)
        allowed.update({n: stand_in(n) for n in names})

    if not hasattr(torch.serialization, "safe_globals"):
        raise UserError("reading pickled checkpoints safely needs torch >= 2.5 (torch.serialization.safe_globals); "
                        f"this is torch {torch.__version__}")
    if kind == "torch-zip":
        try:  # a static scan of the pickle: refuse before building anything
            allow(sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path))))
        except UserError:
            raise
        except Exception:  # damaged: torch.load below says how
            pass
    for _ in range(64):  # legacy files cannot be scanned: learn their globals one refusal at a time
        try:
            with torch.serialization.safe_globals([(obj, name) for name, obj in allowed.items()]):
                obj = torch.load(path, map_location="cpu", weights_only=True)
            return obj, tuple(n for n, o in allowed.items() if isinstance(o, type) and issubclass(o, StandIn))
        except pickle.UnpicklingError as e:
            name = _global_in(str(e))
            if name is None or name in allowed:
                raise UserError(f"{path} cannot be read safely: {_weights_only_reason(e)}; "
                                "save its state dict with torch.save in the environment that made it") from None
            allow([name])
        except (RuntimeError, EOFError, ValueError, OSError, KeyError, TypeError, AttributeError) as e:
            raise UserError(f"{path} is not a co-ssl checkpoint or a readable torch.save file "
                            f"({_first_line(e)}); it may be truncated or damaged") from None
    raise UserError(f"{path} names too many pickled globals to be a checkpoint")


def _weights_only_reason(error: Exception) -> str:
    """The one informative line of PyTorch's long weights-only error."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("WeightsUnpickler error:", "Unsupported", "Can only", "Trying to")):
            return line.removeprefix("WeightsUnpickler error:").strip()[:200]
    return (lines[-1] if lines else type(error).__name__)[:200]


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:160]


# ------------------------------------------------------------------------------------------------
# Metadata read back from the inert records above

def plain(obj: Any, depth: int = 0) -> Any:
    """Config-like metadata as plain Python: argparse namespaces and omegaconf containers (read as
    inert records) become dicts and lists; other records become None. Tensors are left out."""
    if depth > 32:
        return None
    if isinstance(obj, StandIn):
        state = obj.state if isinstance(obj.state, Mapping) else {}
        name = type(obj).global_name
        if name == "argparse.Namespace":
            return {k: plain(v, depth + 1) for k, v in state.items()}
        if name.startswith("omegaconf.") and "_content" in state:
            return plain(state["_content"], depth + 1)
        if name.startswith("omegaconf.nodes.") and "_val" in state:
            return plain(state["_val"], depth + 1)
        return None
    if isinstance(obj, Mapping):
        return {k: plain(v, depth + 1) for k, v in obj.items()
                if isinstance(k, str) and not isinstance(v, torch.Tensor)}
    if isinstance(obj, (list, tuple)):
        return [plain(v, depth + 1) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return None
