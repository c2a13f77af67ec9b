"""Teacher/student training checkpoints (DINO, iBOT): which network, where its trunk is, what is dropped.

DINO and iBOT save `{"teacher", "student", "epoch", "args", ...}`; each network is the state dict of
a `MultiCropWrapper(backbone, head)`, `module.`-prefixed when it was wrapped in
DistributedDataParallel (the student always; the teacher for ResNets), so a trunk is under
`module.backbone.*` or `backbone.*`. The teacher (the momentum network these methods evaluate) is
the default branch. The family adapters (`dino` for ResNets, `dino-vit` and `ibot` for ViTs) pass
their own trunk test and trunk taker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from coanalysis.models.formats.base import Backbone, Checkpoint, child, state_dict_at
from coanalysis.models.formats.reading import plain
from coanalysis.models.trainer import UserError

NETWORKS = ("teacher", "student")
BACKBONE = ("module.backbone.", "backbone.")

IsTrunk = Callable[[Mapping[str, Any] | None, str], bool]


def backbone_prefix(sd: Mapping[str, Any] | None, is_trunk: IsTrunk) -> str | None:
    """`module.backbone.` or `backbone.`, whichever holds a trunk in `sd` (None: neither)."""
    return next((p for p in BACKBONE if is_trunk(sd, p)), None)


def networks(ckpt: Checkpoint, is_trunk: IsTrunk) -> list[tuple[dict | None, str | None]]:
    """(state dict, trunk prefix) of the teacher and of the student (Nones where absent)."""
    sds = [state_dict_at(ckpt.obj, name) for name in NETWORKS]
    return [(sd, backbone_prefix(sd, is_trunk)) for sd in sds]


def take_network(ckpt: Checkpoint, branch: str | None, is_trunk: IsTrunk, take: Callable[..., Backbone],
                 what: str) -> Backbone:
    """The trunk of network `branch` (None: the teacher) through `take(sd, prefix, where, outer=)`;
    the other network is dropped and listed, and `args.arch` (an inert record) read as the arch name.
    `what` names the missing trunk in the error ("ResNet under module.backbone.*")."""
    branch = branch or "teacher"
    sd = state_dict_at(ckpt.obj, branch)
    prefix = backbone_prefix(sd, is_trunk)
    if sd is None or prefix is None:
        raise UserError(f"{ckpt.path} has no {branch} {what}")
    backbone = take(sd, prefix, f"{branch}['{prefix}*']", outer=f"{branch}.")
    other = NETWORKS[1 - NETWORKS.index(branch)]
    backbone.dropped += [f"{other}.{k}" for k in (state_dict_at(ckpt.obj, other) or {})]
    backbone.branch = branch
    arch = (plain(child(ckpt.obj, "args")) or {}).get("arch")
    backbone.arch = arch if isinstance(arch, str) else None
    return backbone
