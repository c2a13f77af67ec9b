"""mmselfsup and mmpretrain checkpoints: `{"meta", "state_dict", "optimizer", "message_hub"?}`.

The model's trunk is `backbone.` (mmcv/mmpretrain `ResNet`, whose names equal torchvision's with
`style="pytorch"`, the default: stride on the 3x3 convolution); `neck.`, `head.`, `target_net.`
(the momentum copy), `data_preprocessor.` and queues are dropped. mmengine's log buffers and numpy
scalars in `message_hub` are read as inert records.
"""

from __future__ import annotations

from coanalysis.models.formats.base import IMAGENET, Adapter, Backbone, Checkpoint, child, has_trunk, state_dict_at, take_trunk

MARKERS = ("neck.", "head.", "target_net.", "data_preprocessor.", "encoder_k.", "momentum_encoder.")


def match(ckpt: Checkpoint) -> int | None:
    sd = state_dict_at(ckpt.obj, "state_dict")
    if sd is None or not has_trunk(sd, "backbone.") or "pytorch-lightning_version" in ckpt.obj:
        return None
    return 70 if "meta" in ckpt.obj or any(k.startswith(MARKERS) for k in sd) else 50


def extract(ckpt: Checkpoint, branch: str | None) -> Backbone:
    backbone = take_trunk(state_dict_at(ckpt.obj, "state_dict") or {}, "backbone.", "state_dict['backbone.*']")
    backbone.normalization = IMAGENET
    epoch = child(ckpt.obj, "meta", "epoch")
    backbone.info = {"epoch": epoch if isinstance(epoch, int) else None}
    backbone.notes.append("assumes mmcv's style='pytorch' ResNet (stride on the 3x3 convolution), the default")
    return backbone


ADAPTER = Adapter("mmselfsup", "mmselfsup / mmpretrain checkpoint (meta + state_dict)", "state_dict -> backbone.*",
                  match, extract)
