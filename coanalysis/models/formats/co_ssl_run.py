"""A co-ssl `encoder.safetensors` on its own, without the `meta.json` of its run directory.

Run directories themselves are read by the checkpoint contract (`load_encoder` sends them there);
this adapter covers the weights file copied out of one. Its safetensors header names the format
and architecture; the input normalization lives only in `meta.json`, so ImageNet statistics are
assumed and said so (pass `--mean/--std`, or the run directory).
"""

from __future__ import annotations

from coanalysis.models.formats.base import Adapter, Backbone, Checkpoint, is_tensor_dict


def match(ckpt: Checkpoint) -> int | None:
    return 100 if ckpt.header.get("format") == "co-ssl-run" and is_tensor_dict(ckpt.obj) else None


def extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    backbone = Backbone(tensors=dict(ckpt.obj), where="encoder.safetensors", arch=ckpt.header.get("arch"))
    backbone.notes.append("normalization not recorded without meta.json: ImageNet statistics assumed "
                          "(pass the run directory, or --mean/--std)")
    return backbone


ADAPTER = Adapter("co-ssl-run", "co-ssl run directory (encoder.safetensors + meta.json), or its weights file alone",
                  "encoder.safetensors -> *", match, extract)
