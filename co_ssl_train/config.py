"""The training configuration: one typed dataclass, turned into argparse flags.

Every field is a flag (`--field-name`), grouped in `--help` by its `group`, with help text that
gives tuning advice. Unknown method, architecture or dataset names fail fast with the list of valid
ones. The resolved config (defaults filled in, "auto" values decided) is stored in every
checkpoint's `meta.json`, so a run can be reproduced from its checkpoint alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any


def opt(default: Any, help: str, group: str, **extra: Any) -> Any:
    """A dataclass field with argparse help text and a help group."""
    return field(default=default, metadata={"help": help, "group": group, **extra})


@dataclass
class TrainConfig:
    # data
    dataset: str = opt("fashion-mnist", "dataset name (co-ssl-train datasets lists them)", "data")
    data_root: str | None = opt(None, "folder holding the dataset files in torchvision's layout", "data")
    download: bool = opt(False, "let torchvision download the dataset (needs network)", "data")
    split: str | None = opt(None, "split to train on (default: the dataset's training split)", "data")
    subset: int | None = opt(None, "train on a seeded subset of this many images of the split (quick runs)", "data")
    image_size: int | None = opt(None, "training crop size in px (default: the dataset's native size)", "data")
    workers: int = opt(4, "DataLoader workers for folder datasets", "data")

    # model
    arch: str = opt("resnet18", "backbone (co-ssl-train archs lists them)", "model")
    stem: str = opt("auto", "'imagenet' (7x7/2 + max-pool), 'cifar' (3x3/1, no pool) or 'auto' "
                    "(cifar for images of 64 px or less)", "model", choices=("auto", "imagenet", "cifar"))
    width: int = opt(64, "channels of the first stage (64 = torchvision); 16 gives a CPU-sized net", "model")
    local_layer: str = opt("layer4", "stage whose map gives the local representations", "model",
                           choices=("layer3", "layer4"))
    normalization: str = opt("dataset", "input normalization stored in the encoder: 'dataset' (mean/std "
                             "of the training images), 'imagenet' or 'none'", "model",
                             choices=("dataset", "imagenet", "none"))

    # method
    method: str = opt("co-byol", "SSL method (co-ssl-train methods lists them)", "method")
    proj_hidden: int = opt(4096, "projector/predictor hidden width (BYOL: 4096; 512-2048 on small data)", "method")
    proj_dim: int = opt(256, "projection output dimension (BYOL: 256)", "method")
    ema: float = opt(0.99, "base EMA momentum of the target network, raised to 1 by a cosine "
                     "(BYOL: 0.996 on ImageNet, 0.99 on CIFAR)", "method")

    # CO-SSL local branch
    local_weight: float = opt(0.5, "w_s, weight of the local loss (paper default 0.5)", "co-ssl")
    weight_form: str = opt("additive", "'additive': L_g + w_s L_l; 'convex': (1 - w_s) L_g + w_s L_l",
                           "co-ssl", choices=("additive", "convex"))
    local_grid: int = opt(0, "n: local vectors are adaptively pooled to n x n (0 = the map size)", "co-ssl")

    # augmentation
    min_scale: float = opt(0.08, "c_min, smallest crop area fraction (0.08 ImageNet; larger keeps "
                           "more of the whole in each view)", "augmentation")
    blur: str = opt("auto", "Gaussian blur in the views: 'on', 'off' or 'auto' (off for 64 px and "
                    "less, as solo-learn's CIFAR recipes)", "augmentation", choices=("auto", "on", "off"))

    # optimization
    epochs: int = opt(100, "training epochs", "optimization")
    batch_size: int = opt(256, "global batch size (split over ranks under torchrun)", "optimization")
    optimizer: str = opt("lars", "'lars' (BYOL), 'sgd' or 'adamw'", "optimization",
                         choices=("lars", "sgd", "adamw"))
    lr: float = opt(1.0, "base learning rate for a batch of 256, scaled linearly by batch/256 "
                    "(LARS: 1.0 on CIFAR, 0.2-0.45 on ImageNet; AdamW: about 1e-3)", "optimization")
    weight_decay: float = opt(1e-5, "weight decay (LARS 1e-5 on CIFAR, 1.5e-6 on ImageNet)", "optimization")
    warmup_epochs: float = opt(10.0, "linear learning-rate warmup, in epochs (may be fractional)", "optimization")
    max_steps: int | None = opt(None, "stop after this many optimizer steps in total (for tests and "
                                "time-boxed demos; the schedule still spans all epochs)", "optimization")

    # run
    out: str = opt("checkpoints", "folder that receives the run directory", "run")
    run_name: str | None = opt(None, "run directory name (default: <method>-<arch>-<dataset>)", "run")
    resume: bool = opt(False, "continue the run in <out>/<run-name> exactly where it stopped", "run")
    seed: int = opt(0, "seed of every random stream (data order, augmentation, init)", "run")
    device: str = opt("auto", "'auto' (cuda if present), 'cuda', 'cuda:1' or 'cpu'", "run")
    precision: str = opt("auto", "'bf16' autocast, 'fp32', or 'auto' (bf16 on GPU, fp32 on CPU)", "run",
                         choices=("auto", "bf16", "fp32"))
    channels_last: bool = opt(True, "use channels_last memory format (faster convolutions)", "run")
    compile: bool = opt(False, "torch.compile the model (slow start, faster steps on GPU)", "run")
    save_every: int = opt(0, "also checkpoint every K steps (0: at the end of every epoch only)", "run")
    threads: int = opt(0, "CPU threads for torch (0: torch's default)", "run")
    progress: bool = opt(True, "show a progress bar", "run")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "TrainConfig":
        """Rebuild from a stored config, ignoring keys this version does not know."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _base_type(tp: Any) -> type:
    """`int | None` -> int, `str` -> str."""
    if isinstance(tp, (types.UnionType,)) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def add_config_args(parser: argparse.ArgumentParser, cls: type = TrainConfig) -> None:
    """Add one flag per dataclass field, grouped by the field's `group` metadata."""
    hints = typing.get_type_hints(cls)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        group = groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        flag = "--" + f.name.replace("_", "-")
        tp = _base_type(hints[f.name])
        default_text = f" (default: {f.default})"
        if tp is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                               help=meta["help"] + default_text)
        else:
            group.add_argument(flag, dest=f.name, type=tp, default=f.default, metavar=f.name.upper(),
                               choices=meta.get("choices"), help=meta["help"] + default_text)


def config_from_args(args: argparse.Namespace, cls: type = TrainConfig) -> Any:
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
