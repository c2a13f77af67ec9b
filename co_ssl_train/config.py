"""The training configuration: one typed dataclass, turned into argparse flags by
`co_ssl_train.config_args`; `RANGES` holds each numeric flag's range.

Every field is a flag (`--field-name`), grouped in `--help` by its `group`, with help text that
gives tuning advice. Unknown method, architecture or dataset names fail fast with the list of valid
ones. The resolved config (defaults filled in, "auto" values decided) is stored in every
checkpoint's `meta.json`, so a run can be reproduced from its checkpoint alone.

`TrainConfig.validate` checks every setting before any work (the CLI calls it right after parsing,
`train` again once the dataset's image size and the world size are known); `resolved` decides the
"auto" values. Options added after the first checkpoint schema (`since="1.1"` in their metadata)
are written to `meta.json` only when they differ from their default, so a run that does not use
them stores exactly the config an older co-ssl stored; reading fills the default back in.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from co_ssl_train.options import (COUNT, NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, SEED, UNIT, UNIT_OPEN_LOW,
                                  Number)


# Fields that may differ when resuming: they change how the run executes or is watched, not what it computes.
RESUME_OVERRIDES = ("max_steps", "device", "progress", "workers", "threads", "save_every", "compile", "resume",
                    "dist_timeout", "knn_every", "knn_k", "knn_temperature", "knn_bank", "knn_queries", "recipe")
# "auto" values decided at start
RESOLVED_FIELDS = ("image_size", "stem", "blur", "local_crops", "patch_size", "vit_patch_size")


def opt(default: Any, help: str, group: str, **extra: Any) -> Any:
    """A dataclass field with argparse help text and a help group."""
    return field(default=default, metadata={"help": help, "group": group, **extra})


def newer_opt(default: Any, help: str, group: str, **extra: Any) -> Any:
    """An option added after schema 1: stored in meta.json only when it differs from `default`."""
    return opt(default, help, group, since="1.1", **extra)


@dataclass
class TrainConfig:
    # data
    dataset: str = opt("fashion-mnist", "dataset name (co-ssl-train datasets lists them)", "data")
    data_root: str | None = opt(None, "folder holding the dataset files in torchvision's layout", "data")
    download: bool = opt(False, "let torchvision download the dataset (needs network)", "data")
    split: str | None = opt(None, "split to train on (default: the dataset's training split)", "data")
    subset: int | None = opt(None, "train on a seeded subset of this many images of the split (quick runs)", "data")
    image_size: int | None = opt(None, "training crop size in px (default: the dataset's native size)", "data")
    workers: int = opt(4, "DataLoader worker processes that decode folder datasets, for training and the kNN "
                       "monitor (in-memory datasets need none)", "data")

    # model
    arch: str = opt("resnet18", "backbone (co-ssl-train archs lists them with their receptive fields)", "model")
    stem: str = opt("auto", "'imagenet' (7x7/2 + max-pool), 'cifar' (3x3/1, no pool) or 'auto' "
                    "(cifar for images of 64 px or less)", "model", choices=("auto", "imagenet", "cifar"))
    width: int = opt(64, "channels of the first stage (64 = torchvision); 16 gives a CPU-sized net", "model")
    rf: int = opt(0, "rf_resnet18 only: receptive field of the final map in px (29, 43, 59, 99, or any odd "
                  "value the stem allows); 0 = unbounded", "model")
    rf_head: str = newer_opt("none", "rf_resnet18 only: 'mlp' puts a 2-layer MLP (Linear-BN-ReLU-Linear, width of "
                             "the final map) after the global pooling, inside the encoder, as the CO-SSL paper's "
                             "RF-ResNets have; the local map stays the bounded-RF map; 'none': pooled map only",
                             "model", choices=("none", "mlp"))
    normalization: str = opt("dataset", "input normalization stored in the encoder: 'dataset' (mean/std "
                             "of the training images), 'imagenet' or 'none'", "model",
                             choices=("dataset", "imagenet", "none"))
    vit_patch_size: int = opt(0, "ViTs (vit_tiny, vit_small, vit_base): patch side in px (0: 4 at 64 px and less, "
                              "8 up to 128 px, else 16; DINO: 16 at 224)", "model")
    vit_dim: int = opt(0, "ViTs: token width, overriding the size's (0: vit_tiny 192, vit_small 384, vit_base 768)",
                       "model")
    vit_depth: int = opt(0, "ViTs: number of blocks (0: the size's, 12)", "model")
    vit_heads: int = opt(0, "ViTs: attention heads (0: the size's; must divide the width)", "model")
    global_readout: str = opt("cls", "ViTs: the global representation, the class token ('cls', DINO) or the mean "
                              "of the patch tokens ('avg')", "model", choices=("cls", "avg"), flag="--global")
    drop_path: float = newer_opt(0.0, "ViTs: stochastic depth rate of the trained (student / online) encoder, block i "
                                 "dropping its residual branches per sample with probability rate * i / (depth - 1); "
                                 "momentum targets have none (DINO: 0.1, teacher none; 0: off)", "model")

    # method
    method: str = opt("co-byol", "SSL method (co-ssl-train methods lists them)", "method")
    proj_hidden: int = opt(4096, "projector/predictor hidden width (BYOL/MoCo v3: 4096; SimCLR, VICReg, DINO: "
                           "2048; 512-2048 on small data)", "method")
    proj_dim: int = opt(256, "projection output dimension (BYOL/MoCo v3: 256; DINO: bottleneck 256; "
                        "VICReg: expander width, 2048-8192)", "method")
    ema: float = opt(0.99, "base EMA momentum of the target network, raised by a cosine to --ema-end "
                     "(BYOL: 0.996 on ImageNet, 0.99 on CIFAR; MoCo v3: 0.99; DINO: 0.996)", "method")
    ema_end: float = opt(1.0, "final EMA momentum (BYOL and DINO: 1.0)", "method")
    temperature: float = opt(0.2, "SimCLR / MoCo v3 temperature (0.2 on CIFAR; MoCo v3 ResNet-50 on ImageNet: "
                             "1.0; SimCLR ImageNet: 0.1)", "method")
    dino_prototypes: int = opt(4096, "DINO output dimension K (65536 on ImageNet; 4096 on CIFAR as "
                               "solo-learn)", "method")
    dino_teacher_temp: float = opt(0.07, "DINO teacher temperature after warmup (paper: 0.04-0.07)", "method")
    dino_warmup_teacher_temp: float = opt(0.04, "DINO teacher temperature at step 0", "method")
    dino_warmup_teacher_epochs: float = opt(30.0, "epochs of linear teacher-temperature warmup (DINO: 30)", "method")
    dino_student_temp: float = opt(0.1, "DINO student temperature", "method")
    dino_center_momentum: float = opt(0.9, "DINO center EMA momentum", "method")
    head_bn: bool = opt(True, "DINO / CO-DINO: BatchNorm between the head's layers; --no-head-bn gives DINO's "
                        "ViT head (Linear + GELU, use_bn_in_head=False)", "method")
    norm_last_layer: bool = newer_opt(True, "DINO / CO-DINO: the prototype layer's rows kept at unit norm (weight "
                                      "norm, g fixed at 1); --no-norm-last-layer trains g too, from 1: better "
                                      "features but less stable (DINO: False with vit_small, True with vit_base)",
                                      "method")
    vicreg_sim: float = opt(25.0, "VICReg / BagSSL invariance weight lambda", "method")
    vicreg_var: float = opt(25.0, "VICReg / BagSSL variance weight mu, on v(z_a) + v(z_b) as in the paper and "
                            "solo-learn; the official VICReg code averages the two terms instead, which "
                            "--vicreg-var 12.5 reproduces", "method")
    vicreg_cov: float = opt(1.0, "VICReg / BagSSL covariance weight nu", "method")

    # CO-SSL local branch
    local_weight: float = opt(0.5, "w_s, weight of the local loss (paper default 0.5)", "co-ssl")
    weight_form: str = opt("additive", "'additive': L_g + w_s L_l; 'convex': (1 - w_s) L_g + w_s L_l",
                           "co-ssl", choices=("additive", "convex"))
    local_grid: int = opt(0, "n: local vectors are adaptively average-pooled to n x n (0 = the map size; "
                          "fewer positions is cheaper)", "co-ssl")
    local_positions: int = newer_opt(0, "M: each step the local loss takes M positions of the n x n grid, drawn at "
                                     "random and the same for every image of the batch: an unbiased estimate of the "
                                     "all-positions mean at M/n^2 of the local heads' cost (0 = every position; ours)",
                                     "co-ssl")
    local_layer: str = opt("layer4", "stage whose map the local branch aligns with the global embedding; the "
                           "global branch always pools the final stage, and the exported encoder's local map is "
                           "the final stage (layer3: the paper's intermediate-layer variant)", "co-ssl",
                           choices=("layer3", "layer4"))
    shared_heads: bool = opt(False, "one head for local and global embeddings (the paper's ablation) instead "
                             "of separate local heads", "co-ssl")
    mlp_after_pool: bool = opt(True, "heads after pooling (standard); --no-mlp-after-pool runs the heads at "
                               "every position and pools their outputs (the paper's 'no MLP after pooling' "
                               "ablation, our reading; implies shared heads)", "co-ssl")
    local_target: str = newer_opt("global", "co-byol: what the local predictions regress: 'global', the target's "
                                  "global projection of the other view (ours, default), or 'local', the target's "
                                  "momentum *local* projector applied to the pooled target map (the paper's)",
                                  "co-ssl", choices=("global", "local"))

    # augmentation
    min_scale: float = opt(0.08, "c_min, smallest crop area fraction of the global views (0.08 ImageNet; "
                           "larger keeps more of the whole in each view)", "augmentation")
    blur: str = opt("auto", "Gaussian blur in the views: 'on', 'off' or 'auto' (off for 64 px and "
                    "less, as solo-learn's CIFAR recipes)", "augmentation", choices=("auto", "on", "off"))
    local_crops: int | None = opt(None, "multi-crop: number of small crops per image (byol-mc, dino, co-dino; "
                                  "default: 6 for byol-mc, 0 for DINO)", "augmentation")
    local_crop_size: int = opt(0, "multi-crop crop side in px (0: 96/224 of the image side, e.g. 14 at 32 px)",
                               "augmentation")
    local_crop_scale_min: float = opt(0.05, "multi-crop smallest crop area fraction (DINO: 0.05)", "augmentation")
    local_crop_scale_max: float = opt(0.4, "multi-crop largest crop area fraction (DINO: 0.4)", "augmentation")
    patch_size: int = opt(0, "BagSSL patch side in px (0: half the image side)", "augmentation")
    patches: int = opt(16, "BagSSL patches per image per step (ours: 16)", "augmentation")

    # optimization
    epochs: int = opt(100, "training epochs", "optimization")
    batch_size: int = opt(256, "global batch size (split evenly over ranks under torchrun)", "optimization")
    optimizer: str = opt("lars", "'lars' (BYOL), 'sgd' or 'adamw'", "optimization",
                         choices=("lars", "sgd", "adamw"))
    lr: float = opt(1.0, "base learning rate for a batch of 256, scaled linearly by the global batch / 256 "
                    "(LARS: 1.0 on CIFAR, 0.2-0.45 on ImageNet; AdamW: about 1e-3)", "optimization")
    weight_decay: float = opt(1e-5, "weight decay (LARS 1e-5 on CIFAR, 1.5e-6 on ImageNet)", "optimization")
    lars_eta: float = newer_opt(0.02, "LARS trust coefficient eta: a weight's step is scaled by eta ||w|| / "
                                "||g + wd w|| (BYOL and SimCLR: 1e-3; solo-learn: 0.02)", "optimization")
    lars_clip: bool = newer_opt(False, "clip the LARS scale so the adapted learning rate never exceeds the "
                                "global one (solo-learn's clip_lr)", "optimization")
    exclude_bias_norm: bool = newer_opt(True, "biases and normalization parameters get neither weight decay "
                                        "nor LARS adaptation (BYOL; solo-learn's exclude_bias_n_norm)",
                                        "optimization")
    weight_decay_end: float | None = opt(None, "final weight decay, reached by a cosine (DINO-style); "
                                         "default: constant --weight-decay", "optimization")
    min_lr: float = opt(0.0, "learning rate the cosine ends at, not batch-scaled (DINO: 1e-6)", "optimization")
    clip_grad: float = opt(0.0, "clip each parameter's gradient to this l2 norm, as DINO does (DINO: 3.0; "
                           "0: off)", "optimization")
    freeze_last_layer: float = opt(0.0, "DINO / CO-DINO: epochs during which the prototype layer gets no update "
                                   "(DINO: 1)", "optimization")
    warmup_epochs: float = opt(10.0, "linear learning-rate warmup, in epochs (may be fractional)", "optimization")
    max_steps: int | None = opt(None, "stop after this many optimizer steps in total (for tests and "
                                "time-boxed demos; the schedule still spans all epochs)", "optimization")

    # distributed
    sync_bn: bool = opt(False, "SyncBatchNorm across ranks under torchrun (GPU/nccl only)", "distributed")
    dist_timeout: float = opt(300.0, "seconds a collective may wait for the other ranks before failing, "
                              "so a dead rank stops the run instead of hanging it", "distributed")

    # monitoring
    knn_every: int = opt(0, "kNN accuracy on the held-out split every K epochs (0: never)", "monitoring")
    knn_k: int = opt(20, "neighbours of the kNN monitor (cosine, weighted vote)", "monitoring")
    knn_temperature: float = opt(0.07, "temperature of the kNN vote weights exp(cos / T)", "monitoring")
    knn_bank: int = opt(10000, "training images in the kNN memory bank (seeded subset)", "monitoring")
    knn_queries: int = opt(2000, "held-out images the kNN monitor classifies (seeded subset)", "monitoring")

    # run
    recipe: str | None = opt(None, "start from a published recipe (co-ssl-train recipes lists them); "
                             "flags given after it override its values", "run")
    out: str = opt("checkpoints", "folder that receives the run directory", "run")
    run_name: str | None = opt(None, "run directory name (default: <method>-<arch>-<dataset>)", "run")
    resume: bool = opt(False, "continue the run in <out>/<run-name> exactly where it stopped", "run")
    seed: int = opt(0, "seed of every random stream (data order, augmentation, init)", "run")
    device: str = opt("auto", "'auto' (cuda if present), 'cuda', 'cuda:1' or 'cpu'", "run")
    precision: str = opt("auto", "'bf16' autocast, 'fp32', or 'auto' (bf16 on GPU, fp32 on CPU)", "run",
                         choices=("auto", "bf16", "fp32"))
    channels_last: bool = opt(True, "use channels_last memory format (faster convolutions; on CPU skipped for "
                              "--width below 8, where torch's channels_last strided 1x1 conv backward crashes)", "run")
    compile: bool = opt(False, "torch.compile the model (slow start, faster steps on GPU)", "run")
    save_every: int = opt(0, "also checkpoint every K steps (0: at the end of every epoch only)", "run")
    threads: int = opt(0, "CPU threads for torch (0: torch's default)", "run")
    progress: bool = opt(True, "show a progress bar", "run")

    def to_json(self) -> dict:
        """Every field, except options newer than schema 1 left at their default (see the module docstring)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not ("since" in f.metadata and getattr(self, f.name) == f.default)}

    def run_dir_name(self) -> str:
        """The run directory's name inside `--out`: `--run-name`, or `<method>-<arch>-<dataset>`."""
        return self.run_name or f"{self.method}-{self.arch}-{self.dataset}"

    def validate(self, image_size: int | None = None, world_size: int = 1) -> None:
        """Refuse settings no run could use, with a one-line UserError naming the flag. Checks that need
        the training image size run when it is given (or set by --image-size)."""
        from co_ssl_train import arch_options
        from co_ssl_train.errors import UserError
        from co_ssl_train.methods import METHODS, get_method
        from co_ssl_train.models import ARCHS

        for f in dataclasses.fields(self):
            value, flag = getattr(self, f.name), flag_of(f)
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{flag} must be a finite number, got {value}")
            if f.name in RANGES:  # the ranges the command line checks, for configs built in code too
                RANGES[f.name].check(value, flag)
        spec = get_method(self.method)
        if self.arch not in ARCHS:
            raise UserError(f"unknown architecture {self.arch!r}; choose one of: {', '.join(ARCHS)}")
        size = image_size or self.image_size
        crops = self.local_crops if self.local_crops is not None else (spec.local_crops or 0)
        multi_crop = [n for n, s in METHODS.items() if s.local_crops is not None]
        rf_options = ARCHS[self.arch].options
        name = self.run_dir_name()
        checks = [
            (bool(name) and "/" not in name and not name.startswith("."),
             f"--run-name {name!r} is not a valid folder name"),
            (self.batch_size % world_size == 0, f"--batch-size {self.batch_size} does not divide by the {world_size} "
                                                f"processes; use a multiple of {world_size}"),
            (self.batch_size // world_size >= 2, f"--batch-size {self.batch_size} leaves fewer than 2 images per "
                                                 "process (batch norm); raise it"),
            (self.dino_center_momentum < 1,
             f"--dino-center-momentum must be in [0, 1), got {self.dino_center_momentum}"),
            (self.weight_form != "convex" or self.local_weight <= 1,
             f"--local-weight must be <= 1 in the convex form, got {self.local_weight}"),
            (self.ema < 1, f"--ema must be in [0, 1), got {self.ema}"),
            (self.ema <= self.ema_end <= 1, f"--ema-end must be in [--ema, 1], got {self.ema_end}"),
            (self.rf == 0 or "rf" in rf_options,
             f"--rf applies to rf_resnet18 only; {self.arch} has a fixed receptive field (co-ssl-train archs)"),
            (self.rf_head == "none" or "head" in rf_options, f"--rf-head applies to rf_resnet18 only, not {self.arch}"),
            (self.rf_head == "none" or self.mlp_after_pool, "--rf-head mlp needs the heads after pooling "
                                                            "(drop --no-mlp-after-pool)"),
            (self.local_target == "global" or self.method == "co-byol",
             f"--local-target local is offered for co-byol only, not {self.method}"),
            (self.local_target == "global" or (not self.shared_heads and self.mlp_after_pool),
             "--local-target local needs the separate local projector (drop --shared-heads / --no-mlp-after-pool)"),
            (crops == 0 or spec.local_crops is not None,
             f"--local-crops: multi-crop is offered for {', '.join(multi_crop)}, not {self.method}"),
            (self.method != "byol-mc" or crops >= 1, "byol-mc needs --local-crops of at least 1"),
            (0 < self.local_crop_scale_min < self.local_crop_scale_max <= 1,
             "--local-crop-scale-min and --local-crop-scale-max must satisfy 0 < min < max <= 1"),
            (self.patches >= 2, f"--patches must be at least 2 (a bag), got {self.patches}"),
            (self.dino_prototypes >= 2, f"--dino-prototypes must be at least 2, got {self.dino_prototypes}"),
            *arch_options.checks(self, size),
        ]
        if size is not None:
            patch = self.patch_size or max(4, size // 2)
            checks += [
                (self.local_crop_size <= size, f"--local-crop-size must be in [0, {size}]"),
                (4 <= patch <= size, f"--patch-size must be in [4, {size}] px, got {patch}"),
            ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def resolved(self, image_size: int, world_size: int = 1) -> "TrainConfig":
        """This config, validated, with its "auto" values decided for training images of `image_size` px."""
        from co_ssl_train.methods import get_method

        self.validate(image_size, world_size)
        crops = self.local_crops if self.local_crops is not None else (get_method(self.method).local_crops or 0)
        from co_ssl_train.arch_options import resolved_patch_size

        return dataclasses.replace(
            self, image_size=image_size, local_crops=crops, patch_size=self.patch_size or max(4, image_size // 2),
            vit_patch_size=resolved_patch_size(self, image_size),
            stem=self.stem if self.stem != "auto" else ("cifar" if image_size <= 64 else "imagenet"),
            blur=self.blur if self.blur != "auto" else ("off" if image_size <= 64 else "on"))

    @classmethod
    def from_json(cls, data: dict) -> "TrainConfig":
        """Rebuild from a stored config, ignoring keys this version does not know."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def merged_for_resume(self, stored: dict[str, Any]) -> "TrainConfig":
        """The run's stored config, with this command's execution-only settings (`RESUME_OVERRIDES`);
        any other flag given with a value that differs from the run's is refused."""
        from co_ssl_train.errors import UserError

        default = TrainConfig()
        merged = TrainConfig.from_json(stored)
        for f in dataclasses.fields(TrainConfig):
            given, before = getattr(self, f.name), getattr(merged, f.name)
            if f.name in RESUME_OVERRIDES:
                setattr(merged, f.name, given)
            elif given != before and given != getattr(default, f.name) and f.name not in RESOLVED_FIELDS:
                raise UserError(f"--resume: {flag_of(f)} {given} differs from the run's {before}; "
                                "drop the flag to continue the run, or start a new --run-name")
        return merged


def newer_defaults() -> dict[str, Any]:
    """The options added after schema 1 with their defaults: a run stores such an option only when it
    differs from its default, so a stored config without one had the default."""
    return {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.metadata.get("since")}


def flag_of(f: dataclasses.Field) -> str:
    """The command-line flag of a TrainConfig field: its `flag` metadata, else `--field-name`."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


# The range of each numeric flag, checked as the command line is parsed (before any work); a number
# flag not named here only has to be finite.
RANGES: dict[str, Number] = {
    "subset": COUNT, "image_size": Number(int, low=8), "workers": NON_NEGATIVE_INT, "width": COUNT,
    "rf": NON_NEGATIVE_INT, "proj_hidden": COUNT, "proj_dim": COUNT, "ema": UNIT, "ema_end": UNIT,
    "temperature": POSITIVE, "dino_prototypes": COUNT, "dino_teacher_temp": POSITIVE,
    "dino_warmup_teacher_temp": POSITIVE, "dino_warmup_teacher_epochs": NON_NEGATIVE, "dino_student_temp": POSITIVE,
    "dino_center_momentum": UNIT, "vicreg_sim": NON_NEGATIVE, "vicreg_var": NON_NEGATIVE, "vicreg_cov": NON_NEGATIVE,
    "local_weight": NON_NEGATIVE, "local_grid": NON_NEGATIVE_INT, "local_positions": NON_NEGATIVE_INT,
    "min_scale": UNIT_OPEN_LOW,
    "local_crops": NON_NEGATIVE_INT, "local_crop_size": NON_NEGATIVE_INT, "local_crop_scale_min": UNIT_OPEN_LOW,
    "local_crop_scale_max": UNIT_OPEN_LOW, "patch_size": NON_NEGATIVE_INT, "patches": COUNT, "epochs": COUNT,
    "batch_size": Number(int, low=2), "lr": POSITIVE, "weight_decay": NON_NEGATIVE, "weight_decay_end": NON_NEGATIVE,
    "warmup_epochs": NON_NEGATIVE, "max_steps": COUNT, "dist_timeout": POSITIVE, "knn_every": NON_NEGATIVE_INT,
    "knn_k": COUNT, "knn_temperature": POSITIVE, "knn_bank": COUNT, "knn_queries": COUNT, "seed": SEED,
    "save_every": NON_NEGATIVE_INT, "threads": NON_NEGATIVE_INT, "lars_eta": POSITIVE,
    "vit_patch_size": NON_NEGATIVE_INT, "vit_dim": NON_NEGATIVE_INT, "vit_depth": NON_NEGATIVE_INT,
    "vit_heads": NON_NEGATIVE_INT, "min_lr": NON_NEGATIVE, "clip_grad": NON_NEGATIVE, "freeze_last_layer": NON_NEGATIVE,
    "drop_path": Number(float, low=0, high=1, high_open=True),
}
