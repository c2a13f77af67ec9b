"""Architectures by name: the `ARCHS` table, `build_backbone` and `build_encoder`.

Every architecture takes keyword options (`stem`, `width`, `rf`, ...) that are stored in the
checkpoint's `meta.json`, so `build_backbone(name, **kwargs)` rebuilds exactly what was trained.
Every backbone follows one protocol (`StagedBackbone`): stages `layer1..layer4`, a `channels`
dict, `forward_features(x, layer)`, `forward_stages(x, layers)` and an analytic
`receptive_field(layer)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from torch import nn

from co_ssl_train.errors import UserError
from co_ssl_train.models.bagnet import BagNet
from co_ssl_train.models.encoder import IMAGENET_MEAN, IMAGENET_STD, Encoder
from co_ssl_train.models.resnet import RF_OFFERED, STAGES, ResNet, rf_resnet
from co_ssl_train.models.vit_spec import OPTIONS as VIT_OPTIONS
from co_ssl_train.models.vit_spec import SIZES as VIT_SIZES

__all__ = ["ARCHS", "ArchSpec", "Encoder", "IMAGENET_MEAN", "IMAGENET_STD", "STAGES", "build_backbone",
           "build_encoder", "select_options"]


@dataclass(frozen=True)
class ArchSpec:
    """One entry of `ARCHS`: a builder taking keyword options, and the options it accepts."""

    build: Callable[..., nn.Module]
    options: tuple[str, ...]
    description: str
    family: str = "resnet"  # "resnet": torchvision's layout; "rf-resnet", "bagnet": our bounded-RF nets; "vit"


def _resnet(block: str, layers: Sequence[int], width_per_group: int = 64) -> Callable[..., ResNet]:
    def build(stem: str = "imagenet", width: int = 64) -> ResNet:
        return ResNet(block, layers, width=width, stem=stem, width_per_group=width_per_group)
    return build


def _vit(size: str | None) -> Callable[..., nn.Module]:
    def build(**kwargs) -> nn.Module:
        from co_ssl_train.models.vit import build_vit  # timm is imported only when a ViT is built

        return build_vit(size)(**kwargs)
    return build


def _bagnet(rf: int) -> Callable[..., BagNet]:
    def build(width: int = 64) -> BagNet:
        return BagNet(rf, width=width)
    return build


_RESNET_OPTIONS = ("stem", "width")
ARCHS: dict[str, ArchSpec] = {
    "resnet10": ArchSpec(_resnet("basic", (1, 1, 1, 1)), _RESNET_OPTIONS,
                         "1 basic block per stage; with --width 16 a CPU-demo net"),
    "resnet18": ArchSpec(_resnet("basic", (2, 2, 2, 2)), _RESNET_OPTIONS, "torchvision resnet18"),
    "resnet34": ArchSpec(_resnet("basic", (3, 4, 6, 3)), _RESNET_OPTIONS, "torchvision resnet34"),
    "resnet50": ArchSpec(_resnet("bottleneck", (3, 4, 6, 3)), _RESNET_OPTIONS, "torchvision resnet50"),
    "resnet101": ArchSpec(_resnet("bottleneck", (3, 4, 23, 3)), _RESNET_OPTIONS, "torchvision resnet101"),
    "resnet152": ArchSpec(_resnet("bottleneck", (3, 8, 36, 3)), _RESNET_OPTIONS, "torchvision resnet152"),
    "wide_resnet50_2": ArchSpec(_resnet("bottleneck", (3, 4, 6, 3), 128), _RESNET_OPTIONS,
                                "torchvision wide_resnet50_2"),
    "wide_resnet101_2": ArchSpec(_resnet("bottleneck", (3, 4, 23, 3), 128), _RESNET_OPTIONS,
                                 "torchvision wide_resnet101_2"),
    "rf_resnet18": ArchSpec(rf_resnet, ("stem", "width", "rf", "head"),
                            f"ResNet-18 layout with a bounded receptive field: --rf {'/'.join(map(str, RF_OFFERED))} "
                            "(any reachable odd value) or 0 for unbounded (ours: 3x3 convs turned 1x1 from the end)",
                            family="rf-resnet"),
    "bagnet9": ArchSpec(_bagnet(9), ("width",), "BagNet-9 (Brendel & Bethge 2019), RF 9 px; 'same' padding (ours)",
                       family="bagnet"),
    "bagnet17": ArchSpec(_bagnet(17), ("width",), "BagNet-17, RF 17 px; 'same' padding (ours)", family="bagnet"),
    "bagnet33": ArchSpec(_bagnet(33), ("width",), "BagNet-33, RF 33 px; 'same' padding (ours)", family="bagnet"),
    # Vision Transformers: timm's VisionTransformer (models/vit.py); any option overrides the preset size
    "vit": ArchSpec(_vit(None), VIT_OPTIONS, "timm ViT of any width/depth/heads (embed_dim, depth, num_heads)",
                    family="vit"),
    **{name: ArchSpec(_vit(name), VIT_OPTIONS, f"ViT {name[4:]}: width {w}, depth {d}, {h} heads (timm names)",
                      family="vit") for name, (w, d, h) in VIT_SIZES.items()},
}


def select_options(name: str, values: dict) -> dict:
    """The entries of `values` that architecture `name` takes as options (for building from a config)."""
    if name not in ARCHS:
        raise UserError(f"unknown architecture {name!r}; choose one of: {', '.join(ARCHS)}")
    return {k: v for k, v in values.items() if k in ARCHS[name].options}


def build_backbone(name: str, **kwargs) -> nn.Module:
    """The backbone `name` with options `kwargs`; unknown names or options raise a UserError."""
    if name not in ARCHS:
        raise UserError(f"unknown architecture {name!r}; choose one of: {', '.join(ARCHS)}")
    spec = ARCHS[name]
    unknown = sorted(set(kwargs) - set(spec.options))
    if unknown:
        raise UserError(f"architecture {name} has no option {', '.join(unknown)}; it takes: {', '.join(spec.options)}")
    try:
        return spec.build(**kwargs)
    except (ValueError, TypeError) as e:
        raise UserError(f"architecture {name}: {e}") from None


def build_encoder(name: str, arch_kwargs: dict | None = None, *, mean: Sequence[float] = IMAGENET_MEAN,
                  std: Sequence[float] = IMAGENET_STD, local_layer: str | None = None) -> Encoder:
    """An `Encoder` around a freshly initialized backbone (`local_layer` None: its last stage)."""
    arch_kwargs = dict(arch_kwargs or {})
    backbone = build_backbone(name, **arch_kwargs)
    local_layer = local_layer or list(backbone.channels)[-1]
    if local_layer not in backbone.channels:
        raise UserError(f"unknown layer {local_layer!r}; choose one of: {', '.join(backbone.channels)}")
    if ARCHS[name].family == "vit":
        from co_ssl_train.models.vit import ViTEncoder

        return ViTEncoder(backbone, arch=name, arch_kwargs=arch_kwargs, mean=mean, std=std, local_layer=local_layer)
    return Encoder(backbone, arch=name, arch_kwargs=arch_kwargs, mean=mean, std=std, local_layer=local_layer)
