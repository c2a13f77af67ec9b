"""Device and precision resolution and the autocast context, shared by the trainer and coanalysis."""

from __future__ import annotations

import contextlib

import pytest
import torch

from co_ssl_train.device import autocast, resolve_device, resolve_precision
from co_ssl_train.errors import UserError


def test_auto_resolves_to_what_is_there():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected and resolve_device("cpu") == torch.device("cpu")
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"


def test_unknown_names_are_user_errors():
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu-ish")
    with pytest.raises(UserError, match="unknown precision"):
        resolve_precision("fp8", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_autocast_runs_bf16_only_when_asked():
    x = torch.ones(2, 4)
    layer = torch.nn.Linear(4, 3)
    assert isinstance(autocast(torch.device("cpu"), "fp32"), contextlib.nullcontext)
    with autocast(torch.device("cpu"), "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert layer(x).dtype == torch.float32


def test_coanalysis_takes_the_same_functions_through_its_door():
    import coanalysis.models.trainer as door

    assert door.autocast is autocast and door.resolve_device is resolve_device
    assert door.resolve_precision is resolve_precision
