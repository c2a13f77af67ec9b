"""The checkpoint zoo: published self-supervised checkpoints, one `ZooEntry` per file (`ZOO`).

Pure data, no torch. Every URL is the one the authors publish in their README or hub code
(facebookresearch/moco, moco-v3, swav, barlowtwins, vicreg, dino, dinov2, mae, ijepa;
bytedance/ibot; open-mmlab/mmselfsup for the BYOL and SimCLR reproductions). None of these
projects publishes a full SHA-256, so `sha256` is None and the digest is recorded on first download
(`coanalysis.models.zoo`); `sha256_prefix` holds the 8 hex digits openmmlab puts in its file names (the
start of the file's SHA-256), which are checked. `size_bytes` is likewise recorded on first
download. `params_m` is the architecture's parameter count in millions (the trunk, no heads).
`epochs` is None where the authors state none (DINOv2's distilled models).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FB = "https://dl.fbaipublicfiles.com"
IBOT = "https://lf3-nlp-opensource.bytetos.com/obj/nlp-opensource/archive/2022/ibot"
MMSELFSUP = "https://download.openmmlab.com/mmselfsup/1.x"
# iBOT's extract_backbone_weights.py: {"state_dict": teacher backbone, `backbone.` stripped}; the teacher has no
# masked_embed (main_ibot.py builds it without masked image modeling), so the file reads as timm names
IBOT_NOTE = "teacher backbone ({'state_dict'}, timm names, head.* dropped if present)"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    family: str  # method
    arch: str
    data: str  # pre-training data
    epochs: int | None
    url: str
    params_m: float
    sha256: str | None = None  # published full digest; None: recorded on first download
    sha256_prefix: str | None = None  # published start of the digest (openmmlab file names)
    size_bytes: int | None = None  # published size; None: recorded on first download
    loads_with: str = "resnet"  # the family: "resnet" or "vit"
    format: str | None = None  # the coanalysis format the published file is read as (None: not declared)
    notes: str = ""

    @property
    def filename(self) -> str:
        """The cache file name: the zoo name and the URL's suffix (several URLs end in resnet50.pth)."""
        tail = self.url.rsplit("/", 1)[-1]
        suffix = ".pth.tar" if tail.endswith(".pth.tar") else "." + tail.rsplit(".", 1)[-1]
        return self.name + suffix

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "filename": self.filename}


def _dino(name: str, arch: str, path: str, epochs: int, params: float, loads: str = "vit") -> ZooEntry:
    return ZooEntry(name, "DINO", arch, "ImageNet-1k", epochs, f"{FB}/dino/{path}/{path}.pth", params, loads_with=loads,
                    format="timm-vit" if loads == "vit" else "torchvision", notes="teacher backbone only")


def _dinov2(size: str, arch: str, params: float, registers: bool) -> ZooEntry:
    reg = "_reg4" if registers else ""
    return ZooEntry(f"dinov2-{size}14{'-reg' if registers else ''}", "DINOv2",
                    arch + (" + 4 registers" if registers else ""),
                    "LVD-142M", None, f"{FB}/dinov2/dinov2_{size}14/dinov2_{size}14{reg}_pretrain.pth", params,
                    loads_with="vit", format="dinov2", notes="ViT-g trained, smaller sizes distilled from it")


def _mae(size: str, arch: str, params: float) -> ZooEntry:
    return ZooEntry(f"mae-vit-{size[0]}{arch[-2:]}", "MAE", arch, "ImageNet-1k", 1600,
                    f"{FB}/mae/pretrain/mae_pretrain_vit_{size}.pth", params, loads_with="vit", format="timm-vit",
                    notes="{'model': encoder without the decoder}: CLS readout, as MAE's linear probe")


ENTRIES: tuple[ZooEntry, ...] = (
    ZooEntry("mocov2-r50-200ep", "MoCo v2", "resnet50", "ImageNet-1k", 200,
             f"{FB}/moco/moco_checkpoints/moco_v2_200ep/moco_v2_200ep_pretrain.pth.tar", 23.5),
    ZooEntry("mocov2-r50-800ep", "MoCo v2", "resnet50", "ImageNet-1k", 800,
             f"{FB}/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar", 23.5),
    ZooEntry("mocov3-r50-1000ep", "MoCo v3", "resnet50", "ImageNet-1k", 1000,
             f"{FB}/moco-v3/r-50-1000ep/r-50-1000ep.pth.tar", 23.5),
    ZooEntry("mocov3-vit-s16", "MoCo v3", "vit_small_patch16", "ImageNet-1k", 300,
             f"{FB}/moco-v3/vit-s-300ep/vit-s-300ep.pth.tar", 21.7, loads_with="vit", format="mocov3-vit"),
    ZooEntry("mocov3-vit-b16", "MoCo v3", "vit_base_patch16", "ImageNet-1k", 300,
             f"{FB}/moco-v3/vit-b-300ep/vit-b-300ep.pth.tar", 85.8, loads_with="vit", format="mocov3-vit"),
    ZooEntry("swav-r50-800ep", "SwAV", "resnet50", "ImageNet-1k", 800,
             f"{FB}/deepcluster/swav_800ep_pretrain.pth.tar", 23.5, notes="multi-crop 2x224 + 6x96"),
    ZooEntry("deepclusterv2-r50-800ep", "DeepCluster-v2", "resnet50", "ImageNet-1k", 800,
             f"{FB}/deepcluster/deepclusterv2_800ep_pretrain.pth.tar", 23.5, notes="multi-crop 2x224 + 6x96"),
    ZooEntry("barlowtwins-r50-1000ep", "Barlow Twins", "resnet50", "ImageNet-1k", 1000,
             f"{FB}/barlowtwins/ep1000_bs2048_lrw0.2_lrb0.0048_lambd0.0051/resnet50.pth", 23.5,
             notes="torchvision ResNet-50 trunk"),
    ZooEntry("vicreg-r50-1000ep", "VICReg", "resnet50", "ImageNet-1k", 1000, f"{FB}/vicreg/resnet50.pth", 23.5,
             notes="backbone only"),
    _dino("dino-r50", "resnet50", "dino_resnet50_pretrain", 800, 23.5, loads="resnet"),
    _dino("dino-vit-s16", "vit_small_patch16", "dino_deitsmall16_pretrain", 800, 21.7),
    _dino("dino-vit-s8", "vit_small_patch8", "dino_deitsmall8_pretrain", 800, 21.7),
    _dino("dino-vit-b16", "vit_base_patch16", "dino_vitbase16_pretrain", 400, 85.8),
    _dino("dino-vit-b8", "vit_base_patch8", "dino_vitbase8_pretrain", 300, 85.8),
    *(_dinov2(size, arch, params, reg) for reg in (False, True)
      for size, arch, params in (("vits", "vit_small_patch14", 21.0), ("vitb", "vit_base_patch14", 86.0),
                                 ("vitl", "vit_large_patch14", 300.0), ("vitg", "vit_giant_patch14", 1100.0))),
    _mae("base", "vit_base_patch16", 85.8),
    _mae("large", "vit_large_patch16", 303.3),
    _mae("huge", "vit_huge_patch14", 630.8),
    ZooEntry("ibot-vit-s16", "iBOT", "vit_small_patch16", "ImageNet-1k", 800, f"{IBOT}/vits_16/checkpoint_teacher.pth",
             21.7, loads_with="vit", format="timm-vit", notes=IBOT_NOTE),
    ZooEntry("ibot-vit-b16", "iBOT", "vit_base_patch16", "ImageNet-1k", 400, f"{IBOT}/vitb_16/checkpoint_teacher.pth",
             85.8, loads_with="vit", format="timm-vit", notes=IBOT_NOTE),
    ZooEntry("ijepa-vit-h14", "I-JEPA", "vit_huge_patch14", "ImageNet-1k", 300,
             f"{FB}/ijepa/IN1K-vit.h.14-300e.pth.tar", 630.8, loads_with="vit", format="ijepa",
             notes="target encoder; the file also holds the predictor"),
    ZooEntry("byol-r50-mmselfsup", "BYOL", "resnet50", "ImageNet-1k", 200,
             f"{MMSELFSUP}/byol/byol_resnet50_16xb256-coslr-200e_in1k/"
             "byol_resnet50_16xb256-coslr-200e_in1k_20220825-de817331.pth",
             23.5, sha256_prefix="de817331",
             notes="mmselfsup reproduction; DeepMind's own release is a JAX pickle (not loadable safely)"),
    ZooEntry("simclr-r50-mmselfsup", "SimCLR", "resnet50", "ImageNet-1k", 200,
             f"{MMSELFSUP}/simclr/simclr_resnet50_16xb256-coslr-200e_in1k/"
             "simclr_resnet50_16xb256-coslr-200e_in1k_20220825-4d9cce50.pth",
             23.5, sha256_prefix="4d9cce50",
             notes="mmselfsup reproduction; Google's own release is TensorFlow"),
)

ZOO: dict[str, ZooEntry] = {e.name: e for e in ENTRIES}
