"""Checkpoint files in the layouts of the formats co-ssl reads, built from a torchvision ResNet.

Each builder returns the object a framework would save: real key names and real nesting (wrapper
prefixes, heads, predictors, queues, momentum copies, optimizer states, metadata objects). The
weights of the copies that must be dropped (momentum encoders, the other DINO network) are
constants that differ from the trunk, stored as zero-stride views so the files stay small: a loader
that took them instead of the trunk would give different features.

Framework metadata classes (omegaconf configs, mmengine log buffers) are pickled under their real
module and class names through stand-in modules registered in `sys.modules` while saving, so the
files name exactly the globals the real frameworks write (checked against lightning 2.6 /
omegaconf 2.4 checkpoints: DictConfig, ContainerMetadata, Metadata, AnyNode, ListConfig,
typing.Any, builtins.dict/int/list, collections.defaultdict).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torchvision
from torch import nn

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def random_resnet(arch: str, seed: int = 0) -> nn.Module:
    """A torchvision ResNet with random weights and random BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
    return model.eval()


@torch.no_grad()
def reference_features(model: nn.Module, x: torch.Tensor, mean: torch.Tensor = IMAGENET_MEAN,
                       std: torch.Tensor = IMAGENET_STD) -> tuple[torch.Tensor, torch.Tensor]:
    """(local map of layer4, global average) of a torchvision ResNet on images in [0, 1]."""
    trunk = nn.Sequential(*list(model.children())[:-2])
    local = trunk((x - mean) / std)
    return local, local.mean(dim=(2, 3))


def trunk_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}


def constant_copy(sd: dict[str, torch.Tensor], value: float) -> dict[str, torch.Tensor]:
    """Same keys and shapes as `sd`, every entry `value`, stored as a one-element zero-stride view."""
    return {k: torch.full((), value, dtype=v.dtype).expand(v.shape) for k, v in sd.items()}


def prefixed(prefix: str, sd: dict[str, Any]) -> dict[str, Any]:
    return {prefix + k: v for k, v in sd.items()}


def mlp_state(prefix: str, dims: list[int], bn: bool = False) -> dict[str, torch.Tensor]:
    """Keys of an `nn.Sequential` MLP (Linear[, BatchNorm1d], ReLU, ..., Linear) with small random weights."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers += [nn.BatchNorm1d(b), nn.ReLU()] if bn else [nn.ReLU()]
    return prefixed(prefix, nn.Sequential(*layers).state_dict())


def optimizer_state(n_params: int = 3) -> dict[str, Any]:
    return {"state": {i: {"momentum_buffer": torch.zeros(4)} for i in range(n_params)},
            "param_groups": [{"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "nesterov": False,
                              "params": list(range(n_params))}]}


# ------------------------------------------------------------------------------------------------
# Framework metadata classes under their real names

FRAMEWORK_CLASSES = {
    "omegaconf.dictconfig": ["DictConfig"],
    "omegaconf.listconfig": ["ListConfig"],
    "omegaconf.base": ["ContainerMetadata", "Metadata"],
    "omegaconf.nodes": ["AnyNode"],
    "mmengine.logging.history_buffer": ["HistoryBuffer"],
}


CLASSES: dict[str, type] = {name: type(name, (), {"__module__": module})
                            for module, names in FRAMEWORK_CLASSES.items() for name in names}


@contextlib.contextmanager
def framework_modules() -> Iterator[None]:
    """Make `CLASSES` importable under their framework modules while pickling."""
    added = []
    for module_name, names in FRAMEWORK_CLASSES.items():
        parts = module_name.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        for cls_name in names:
            setattr(sys.modules[module_name], cls_name, CLASSES[cls_name])
    try:
        yield
    finally:
        for name in added:
            del sys.modules[name]


def _with_state(cls: type, **state: Any) -> Any:
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def omegaconf_config(values: dict[str, Any], classes: dict[str, type] = CLASSES) -> Any:
    """A DictConfig-shaped object holding `values` (nested dicts, lists, leaves), as omegaconf pickles it."""
    def node(value: Any, key: str | None) -> Any:
        if isinstance(value, dict):
            meta = _with_state(classes["ContainerMetadata"], ref_type=typing.Any, object_type=dict, optional=True,
                               key=key, flags={}, flags_root=False, resolver_cache=collections.defaultdict(dict),
                               key_type=typing.Any, element_type=typing.Any)
            return _with_state(classes["DictConfig"], _metadata=meta, _parent=None,
                               _content={k: node(v, k) for k, v in value.items()})
        if isinstance(value, list):
            meta = _with_state(classes["ContainerMetadata"], ref_type=typing.Any, object_type=list, optional=True,
                               key=key, flags={}, flags_root=False, resolver_cache=collections.defaultdict(dict),
                               key_type=int, element_type=typing.Any)
            return _with_state(classes["ListConfig"], _metadata=meta, _parent=None,
                               _content=[node(v, None) for v in value])
        meta = _with_state(classes["Metadata"], ref_type=typing.Any, object_type=None, optional=True, key=key,
                           flags={}, flags_root=False, resolver_cache=collections.defaultdict(dict))
        return _with_state(classes["AnyNode"], _metadata=meta, _parent=None, _val=value)
    return node(values, None)


# ------------------------------------------------------------------------------------------------
# The layouts: name -> (file name, builder(model, arch) -> object, expected format, legacy torch.save?)

def torchvision_layout(model: nn.Module, arch: str) -> Any:
    return model.state_dict()


def dino_hub_layout(model: nn.Module, arch: str) -> Any:
    return trunk_state(model)


def timm_train_layout(model: nn.Module, arch: str) -> Any:
    args = argparse.Namespace(model=arch, img_size=None, input_size=None, lr=0.5, epochs=100, model_ema=True)
    return {"epoch": 99, "arch": arch, "state_dict": model.state_dict(), "optimizer": optimizer_state(),
            "args": args, "version": 2, "state_dict_ema": constant_copy(model.state_dict(), 0.5), "metric": 76.1}


def _lightning(state_dict: dict, hyper_parameters: Any, hparams_name: str | None) -> dict[str, Any]:
    return {"epoch": 99, "global_step": 50000, "pytorch-lightning_version": "2.1.3", "state_dict": state_dict,
            "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 100, "completed": 99}}}},
            "callbacks": {"ModelCheckpoint{'monitor': None, 'mode': 'min'}": {
                "best_model_score": None, "best_model_path": "", "dirpath": "/trained_models/byol",
                "last_model_path": ""}},
            "optimizer_states": [optimizer_state()], "lr_schedulers": [{"base_lrs": [1.0], "last_epoch": 99}],
            "hparams_name": hparams_name, "hyper_parameters": hyper_parameters}


def solo_learn_layout(model: nn.Module, arch: str) -> Any:
    trunk = trunk_state(model)
    feat = model.fc.in_features
    sd = {**prefixed("backbone.", trunk), **mlp_state("projector.", [feat, 32, 16], bn=True),
          **mlp_state("predictor.", [16, 32, 16], bn=True), **prefixed("momentum_backbone.", constant_copy(trunk, 0.0)),
          **mlp_state("momentum_projector.", [feat, 32, 16], bn=True),
          "classifier.weight": torch.randn(100, feat), "classifier.bias": torch.zeros(100)}
    cfg = omegaconf_config({"method": "byol", "backbone": {"name": arch, "kwargs": {}},
                            "data": {"dataset": "imagenet100", "num_classes": 100, "num_large_crops": 2},
                            "optimizer": {"name": "lars", "lr": 1.0, "kwargs": {"eta": 0.02}},
                            "augmentations": [{"crop_size": 224, "rrc": {"min_scale": 0.08}}]})
    return _lightning(sd, {"cfg": cfg}, "cfg")


def lightly_layout(model: nn.Module, arch: str) -> Any:
    trunk = nn.Sequential(*list(model.children())[:-1]).state_dict()
    feat = model.fc.in_features
    sd = {**prefixed("backbone.", trunk), **mlp_state("projection_head.layers.", [feat, 32, 16], bn=True),
          **mlp_state("prediction_head.layers.", [16, 32, 16], bn=True),
          **prefixed("backbone_momentum.", constant_copy(trunk, 0.0)),
          **mlp_state("projection_head_momentum.layers.", [feat, 32, 16], bn=True),
          **mlp_state("online_classifier.classification_head.", [feat, 10])}
    return _lightning(sd, {"batch_size_per_device": 256, "num_classes": 10}, None)


def mmselfsup_layout(model: nn.Module, arch: str) -> Any:
    trunk = trunk_state(model)
    feat = model.fc.in_features
    buffer = _with_state(CLASSES["HistoryBuffer"], max_length=10, _log_history=np.array([2.3, 2.1]),
                         _count_history=np.array([1, 1]))
    sd = {**prefixed("backbone.", trunk), **mlp_state("neck.mlp.", [feat, 32, 16]),
          **prefixed("target_net.module.0.", constant_copy(trunk, 0.0)),
          **mlp_state("target_net.module.1.mlp.", [feat, 32, 16]), "target_net.steps": torch.tensor(1000),
          "head.queue": torch.randn(16, 64), "head.queue_ptr": torch.zeros(1, dtype=torch.long)}
    return {"meta": {"epoch": 200, "iter": 100000, "mmengine_version": "0.10.3", "seed": 0,
                     "cfg": "model = dict(type='MoCoV2', backbone=dict(type='ResNet', depth=50))",
                     "time": "20240101_000000"},
            "state_dict": sd, "optimizer": optimizer_state(),
            "message_hub": {"log_scalars": {"train/loss": buffer},
                            "runtime_info": {"epoch": 200, "iter": np.int64(100000)}, "resumed_keys": {"epoch": False}}}


def mmpretrain_layout(model: nn.Module, arch: str) -> Any:
    sd = {**prefixed("backbone.", trunk_state(model)), "head.fc.weight": model.fc.weight, "head.fc.bias": model.fc.bias}
    return {"meta": {"epoch": 100, "dataset_meta": {"classes": ["a", "b"]}}, "state_dict": sd}


def vissl_layout(model: nn.Module, arch: str) -> Any:
    trunk = prefixed("_feature_blocks.", trunk_state(model))
    feat = model.fc.in_features
    heads = {**mlp_state("0.projection_head.", [feat, 32, 16], bn=True), "0.prototypes0.weight": torch.randn(30, 16)}
    return {"phase_idx": 399, "iteration": 100000, "iteration_num": 100000, "train_phase_idx": 199,
            "loss": {"swav_loss": {"queue": torch.zeros(1, 16, 16)}}, "type": "consolidated",
            "classy_state_dict": {"train": True, "phase_idx": 399, "train_phase_idx": 199, "num_updates": 100000,
                                  "losses": [], "hooks": {}, "optimizer": optimizer_state(),
                                  "base_model": {"model": {"trunk": trunk, "heads": heads}}}}


def vissl_flat_layout(model: nn.Module, arch: str) -> Any:
    return {**prefixed("trunk._feature_blocks.", trunk_state(model)),
            **mlp_state("heads.0.clf.", [model.fc.in_features, 1000])}


def dino_layout(model: nn.Module, arch: str) -> Any:
    trunk = trunk_state(model)
    feat = model.fc.in_features
    head = {**mlp_state("module.head.mlp.", [feat, 32, 16]), "module.head.last_layer.weight_g": torch.ones(64, 1),
            "module.head.last_layer.weight_v": torch.randn(64, 16)}
    args = argparse.Namespace(arch=arch, out_dim=65536, momentum_teacher=0.996, epochs=800, lr=0.3,
                              global_crops_scale=(0.14, 1.0), output_dir=".")
    return {"student": {**prefixed("module.backbone.", constant_copy(trunk, 0.01)), **head},
            "teacher": {**prefixed("module.backbone.", trunk), **head},
            "optimizer": optimizer_state(), "epoch": 800, "args": args, "dino_loss": {"center": torch.zeros(1, 64)},
            "fp16_scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                            "_growth_tracker": 0}}


def moco_layout(model: nn.Module, arch: str) -> Any:
    trunk = trunk_state(model)
    feat = model.fc.in_features
    q = {**trunk, **mlp_state("fc.", [feat, feat, 128])}
    sd = {**prefixed("module.encoder_q.", q), **prefixed("module.encoder_k.", constant_copy(q, 0.0)),
          "module.queue": torch.randn(128, 64), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
    return {"epoch": 800, "arch": arch, "state_dict": sd, "optimizer": optimizer_state()}


def mocov3_layout(model: nn.Module, arch: str) -> Any:
    trunk = trunk_state(model)
    feat = model.fc.in_features
    base = {**trunk, **mlp_state("fc.", [feat, 64, 32], bn=True)}
    sd = {**prefixed("module.base_encoder.", base), **prefixed("module.momentum_encoder.", constant_copy(base, 0.0)),
          **mlp_state("module.predictor.", [32, 64, 32], bn=True)}
    return {"epoch": 1000, "arch": arch, "state_dict": sd, "optimizer": optimizer_state(),
            "scaler": {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                       "_growth_tracker": 10}}


def swav_layout(model: nn.Module, arch: str) -> Any:
    feat = model.fc.in_features
    return {**prefixed("module.", trunk_state(model)), **mlp_state("module.projection_head.", [feat, 32, 16], bn=True),
            "module.prototypes.weight": torch.randn(30, 16)}


def deepcluster_layout(model: nn.Module, arch: str) -> Any:
    feat = model.fc.in_features
    sd = {**prefixed("module.", trunk_state(model)), **mlp_state("module.projection_head.", [feat, 32, 16], bn=True),
          **{f"module.prototypes.prototypes{i}.weight": torch.randn(30, 16) for i in range(3)}}
    return {"epoch": 800, "state_dict": sd, "optimizer": optimizer_state()}


def pycontrast_layout(model: nn.Module, arch: str) -> Any:
    trunk = trunk_state(model)
    feat = model.fc.in_features
    head = {"head.0.weight": torch.randn(16, feat), "head.0.bias": torch.zeros(16)}
    return {"model": {**prefixed("module.encoder.", trunk), **prefixed("module.", head)},
            "contrast": {"memory": torch.randn(64, 16), "params": torch.tensor([16384.0, 0.2])},
            "optimizer": optimizer_state(), "epoch": 200,
            "model_ema": {**prefixed("encoder.", constant_copy(trunk, 0.0)), **head}}


LAYOUTS: dict[str, tuple[str, Callable[[nn.Module, str], Any], str, bool]] = {
    "torchvision": ("resnet.pth", torchvision_layout, "torchvision", False),
    "torchvision-safetensors": ("model.safetensors", torchvision_layout, "torchvision", False),
    "dino-hub": ("dino_resnet50_pretrain.pth", dino_hub_layout, "torchvision", False),
    "timm-state-dict": ("resnet.a1_in1k.bin", torchvision_layout, "torchvision", False),
    "timm-train": ("model_best.pth.tar", timm_train_layout, "timm", True),
    "solo-learn": ("byol-imagenet100-ep=99.ckpt", solo_learn_layout, "solo-learn", False),
    "lightly": ("epoch=99-step=50000.ckpt", lightly_layout, "lightly", False),
    "mmselfsup": ("epoch_200.pth", mmselfsup_layout, "mmselfsup", False),
    "mmpretrain": ("mmpretrain_epoch_100.pth", mmpretrain_layout, "mmselfsup", False),
    "vissl": ("model_final_checkpoint_phase199.torch", vissl_layout, "vissl", False),
    "vissl-flat": ("vissl_model.pth", vissl_flat_layout, "vissl", False),
    "dino": ("checkpoint.pth", dino_layout, "dino", False),
    "moco": ("moco_v2_800ep_pretrain.pth.tar", moco_layout, "moco", True),
    "mocov3": ("r-50-1000ep.pth.tar", mocov3_layout, "mocov3", False),
    "swav": ("swav_800ep_pretrain.pth.tar", swav_layout, "swav", True),
    "deepcluster-v2": ("deepclusterv2_800ep_pretrain.pth.tar", deepcluster_layout, "swav", False),
    "pycontrast": ("ckpt_epoch_200.pth", pycontrast_layout, "pycontrast", True),
}


def write_layout(layout: str, model: nn.Module, arch: str, folder: Path) -> Path:
    """Save `model` in `layout` under `folder`; returns the file."""
    file_name, build, _, legacy = LAYOUTS[layout]
    path = folder / file_name
    obj = build(model, arch)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in obj.items()}, str(path), metadata={"format": "pt"})
        return path
    with framework_modules():
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path
