"""Section 1: the models compared, from their model.json records: identity, size, training.

Two tables: one row per model (name, source format, architecture, parameters, method, training
data, epochs, receptive field, checkpoint hash), then the training configuration side by side,
limited to the settings that shape the model (the full config of each is in the details).
"""

from __future__ import annotations

import json
from typing import Any

from coanalysis.report.data import ReportData
from coanalysis.report.sections.base import Details, Section, Table, fmt_kwargs
from coanalysis.models.trainer_io import newer_defaults

# Config keys that shape the trained model, in display order; keys that only say where and how a
# run was executed (paths, workers, progress bars) stay in the collapsible full config.
TRAINING_KEYS = ("method", "dataset", "subset", "image_size", "epochs", "max_steps", "batch_size", "optimizer", "lr",
                 "weight_decay", "warmup_epochs", "ema", "proj_hidden", "proj_dim", "local_layer", "local_weight",
                 "weight_form", "local_grid", "local_positions", "min_scale", "blur", "normalization", "precision",
                 "seed")


def _params(m: dict[str, Any]) -> str:
    params = m.get("parameters")
    return f"{params / 1e6:.2f} M" if isinstance(params, (int, float)) else "–"


def _epochs(m: dict[str, Any]) -> str:
    epoch, planned = m.get("epoch"), (m.get("config") or {}).get("epochs")
    if epoch is None:
        return "–"
    return f"{epoch} of {planned}" if planned is not None else str(epoch)


def _training(m: dict[str, Any]) -> str:
    """'80 of 80 steps, final loss 0.312' from the checkpoint's training record ('–' when it has none)."""
    t = m.get("training") or {}
    if t.get("step") is None:
        return "–"
    text = f"{t['step']} of {t['total_steps']} steps" if t.get("total_steps") else f"{t['step']} steps"
    if t.get("finished") is False:
        text += " (unfinished)"
    loss = (t.get("metrics") or {}).get("loss")
    return text + (f", final loss {loss:.3g}" if isinstance(loss, (int, float)) else "")


def _stored(config: dict[str, Any], key: str, newer: dict[str, Any]) -> Any:
    if key in config:
        return config[key]
    return newer.get(key) if config else None


def _value(v: Any) -> str:
    return "–" if v is None else json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def build(data: ReportData) -> Section:
    rows = []
    for name, m in data.models.items():
        trained_on = (m.get("config") or {}).get("dataset") or m.get("dataset") or "–"
        size = m.get("input_size")
        rf = m.get("receptive_field")
        vit = m.get("family") == "vit"
        readout = f"; global: {m.get('global_readout')}" if vit else ""
        rows.append([data.label(name), m.get("format", "?"),
                     f"{m.get('arch', '?')} ({fmt_kwargs(m.get('arch_kwargs', {}))}{readout})", _params(m),
                     m.get("method") or "–", f"{trained_on}" + (f", {size} px" if size else ""), _epochs(m),
                     _training(m), "image" if vit else f"{rf} px" if rf else "–",
                     f"sha256:{m['content_hash'][:12]}" if m.get("content_hash") else "–"])
    identity = Table(["model", "format", "architecture", "parameters", "method", "trained on", "epochs",
                      "training", "receptive field", "checkpoint"], rows,
                     "Checkpoint identity, from each results folder's model.json. Parameters: the encoder's "
                     "(heads are not part of the checkpoint); training: optimizer steps done of those planned, and the loss of the last epoch; receptive field: analytic, of the local map (a ViT's patch token sees the whole image); global: a "
                     "ViT's readout (cls token, avg of patch tokens, or both; PROTOCOLS.md section 13); "
                     "checkpoint: the start of the weights file's SHA-256 (in full in the model records below).",
                     name="models")
    tables = [identity]
    configs = {name: m.get("config") or {} for name, m in data.models.items()}
    keys = [k for k in TRAINING_KEYS if any(k in c for c in configs.values())]
    if keys:
        newer = newer_defaults()  # a co-ssl-train config without one of these had its default
        values = {k: [_stored(c, k, newer) for c in configs.values()] for k in keys}
        differ = {k for k in keys if len({json.dumps(v) for v in values[k]}) > 1}
        tables.append(Table(["setting"] + [data.label(n) for n in configs],
                            [[f"{k} *" if k in differ else k] + [_value(v) for v in values[k]] for k in keys],
                            "Training configuration as stored in each checkpoint (co-ssl-train options); "
                            "* marks settings that differ between the models.", name="training-config",
                            title="Training configuration"))
    notes = [f"{name}: {note}" for name, m in data.models.items() for note in m.get("notes") or []]
    details = [Details(f"{name}: full model record (model.json)", json.dumps(m, indent=2))
               for name, m in data.models.items()]
    return Section("models", "Models", intro="The checkpoints compared in this report.", tables=tables,
                   notes=notes, details=details)
