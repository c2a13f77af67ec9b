"""Everything coanalysis takes from the trainer, `co_ssl_train`, and nothing else.

coanalysis reaches the trainer's code only through this module (STYLE.md, principle 1): the
checkpoint contract (run directories and their file names), the architecture table and encoder
builder, the dataset layer, device and precision resolution with the autocast context, the
weighted kNN vote, the torchrun process-group set-up, the shared error type and the atomic
writers. Importing this module
imports torch (the dataset and model layers need it); the render side (`coanalysis.figures`,
`coanalysis.report`) takes its error type and writers from `coanalysis.models.trainer_io`, which does not.
"""

from __future__ import annotations

from co_ssl_train import checkpoint as contract
from co_ssl_train.data import DATASETS, AnyDataset, DatasetInfo, ImageDataset, get_spec, iterate_batches, load_dataset
from co_ssl_train.data.datasets import UNDECODABLE, FolderDataset
from co_ssl_train.data.decode import open_rgb_or_none
from co_ssl_train.device import autocast, resolve_device, resolve_precision
from co_ssl_train.distributed import init_distributed, launched_by_torchrun
from co_ssl_train.distributed import shutdown as shutdown_distributed
from co_ssl_train.knn import knn_vote
from co_ssl_train.methods.bagssl import patch_features
from co_ssl_train.models import ARCHS, IMAGENET_MEAN, IMAGENET_STD, Encoder, build_encoder
from co_ssl_train.models.vit_spec import READOUTS as VIT_READOUTS
from co_ssl_train.models.vit_spec import SIZES as VIT_SIZES
from coanalysis.models.trainer_io import (UserError, atomic_path, package_version, write_bytes_atomic, write_json_atomic,
                                   write_text_atomic)

ENCODER_FILE, META_FILE, STATE_FILE = contract.ENCODER_FILE, contract.META_FILE, contract.STATE_FILE

__all__ = ["ARCHS", "DATASETS", "ENCODER_FILE", "IMAGENET_MEAN", "IMAGENET_STD", "META_FILE",
           "STATE_FILE", "VIT_READOUTS", "VIT_SIZES", "AnyDataset", "DatasetInfo", "Encoder", "FolderDataset",
           "ImageDataset", "UNDECODABLE", "UserError", "atomic_path", "autocast", "build_encoder",
           "contract", "get_spec", "init_distributed", "iterate_batches", "knn_vote", "launched_by_torchrun",
           "load_dataset", "open_rgb_or_none", "package_version", "patch_features", "resolve_device", "resolve_precision", "shutdown_distributed",
           "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]
