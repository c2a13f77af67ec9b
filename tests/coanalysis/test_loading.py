"""`load_encoder`: a ready encoder from a run directory, and one clear error for everything else."""

from __future__ import annotations

import shutil

import pytest
import torch

from coanalysis import load_encoder
from coanalysis.models.trainer import UserError


def test_loads_in_eval_mode_with_its_identity(tiny_runs):
    enc = load_encoder(tiny_runs["co-byol"])
    assert not enc.training
    assert enc.source.format == "co-ssl-run" and enc.source.method == "co-byol"
    assert enc.source.name == "tiny-co-byol" and len(enc.source.content_hash) == 64
    x = torch.rand(2, 3, 32, 32)
    assert enc.forward_local(x).shape == (2, 64, 4, 4)
    # a file inside the run directory designates the run
    again = load_encoder(tiny_runs["co-byol"] / "encoder.safetensors")
    torch.testing.assert_close(enc.forward_global(x), again.forward_global(x), rtol=0, atol=0)


def test_missing_path(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_encoder(tmp_path / "nope")


def test_foreign_file_and_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="not a co-ssl checkpoint"):
        load_encoder(tmp_path / "notes.txt")
    with pytest.raises(UserError, match="not a co-ssl checkpoint"):
        load_encoder(tmp_path)


def test_truncated_weights(tiny_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_runs["byol"], run)
    path = run / "encoder.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="truncated"):
        load_encoder(run)


# ------------------------------------------------------------------------------------------------
# Third-party files: safety, overrides, our weights file alone

class _Payload:
    """Unpickling this would run `call(*args)`."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def _payloads(target):
    import os
    import subprocess

    return {
        "exec": _Payload(exec, f"open({str(target)!r}, 'w').write('pwned')"),
        "subprocess": _Payload(subprocess.call, ["touch", str(target)]),
        "os.system": _Payload(os.system, f"touch {target}"),
    }


@pytest.mark.parametrize("payload", ["exec", "subprocess", "os.system"])
@pytest.mark.parametrize("container", ["zip", "legacy", "raw pickle"])
def test_a_malicious_pickle_never_runs(payload, container, tmp_path):
    import pickle

    target = tmp_path / "pwned.txt"
    obj = {"state_dict": {"conv1.weight": [0.0]}, "hyper_parameters": _payloads(target)[payload]}
    path = tmp_path / "evil.pth"
    if container == "raw pickle":
        path.write_bytes(pickle.dumps(obj, protocol=2))
    else:
        torch.save(obj, path, _use_new_zipfile_serialization=container == "zip")
    with pytest.raises(UserError) as err:
        load_encoder(path)
    assert not target.exists()
    message = str(err.value)
    assert "never runs code" in message or "cannot be read safely" in message, message
    # protocol 2 pickles subprocess.call as commands.call and os.system as posix.system
    assert {"exec": "builtins.exec", "subprocess": ".call", "os.system": ".system"}[payload] in message


def test_metadata_names_are_read_as_inert_records_even_when_they_would_act(tmp_path):
    """A stand-in name (here a function pretending to live in omegaconf) is recorded, never called."""
    import sys
    import types

    from tests.coanalysis.layouts import random_resnet

    target = tmp_path / "pwned.txt"
    module = types.ModuleType("omegaconf")
    module.touch = lambda path: open(path, "w").close()
    module.touch.__module__, module.touch.__qualname__ = "omegaconf", "touch"
    sys.modules["omegaconf"] = module
    try:
        model = random_resnet("resnet18")
        torch.save({"state_dict": model.state_dict(), "meta": _Payload(module.touch, str(target))}, tmp_path / "m.pth")
    finally:
        del sys.modules["omegaconf"]
    encoder = load_encoder(tmp_path / "m.pth")
    assert not target.exists()
    assert encoder.source.format == "torchvision"
    assert any("inert records: omegaconf.touch" in note for note in encoder.source.notes)


def test_a_lone_encoder_file_reads_as_a_co_ssl_run(tiny_runs, tmp_path):
    run = load_encoder(tiny_runs["co-byol"])
    lone = tmp_path / "copied.safetensors"
    lone.write_bytes((tiny_runs["co-byol"] / "encoder.safetensors").read_bytes())
    norm = run.normalization()
    encoder = load_encoder(lone, normalization=(norm["mean"], norm["std"]))
    assert encoder.source.format == "co-ssl-run" and encoder.source.content_hash == run.source.content_hash
    assert (encoder.arch, encoder.arch_kwargs) == (run.arch, run.arch_kwargs)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(encoder.forward_local(x), run.forward_local(x), rtol=0, atol=0)
    assert any("ImageNet statistics assumed" in note for note in load_encoder(lone).source.notes)


def test_normalization_override_and_run_directory_options(tiny_runs):
    base = load_encoder(tiny_runs["byol"])
    mean, std = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    moved = load_encoder(tiny_runs["byol"], normalization={"mean": mean, "std": std})
    assert moved.normalization() == {"mean": mean, "std": std} and moved.source.normalization == moved.normalization()
    x = torch.rand(2, 3, 32, 32)
    same = (x - 0.5) / 0.25 * base.std + base.mean  # the input that `base` normalizes to what `moved` makes of x
    with torch.no_grad():
        torch.testing.assert_close(moved.forward_global(x), base.forward_global(same), rtol=1e-4, atol=1e-5)
    assert moved.source.loading() != base.source.loading()
    with pytest.raises(UserError, match="3 means and 3 positive stds"):
        load_encoder(tiny_runs["byol"], normalization=([0.5], [0.0]))
    with pytest.raises(UserError, match="records its architecture"):
        load_encoder(tiny_runs["byol"], arch="resnet50")
    with pytest.raises(UserError, match="single encoder"):
        load_encoder(tiny_runs["byol"], branch="teacher")


def test_folder_of_checkpoints_names_its_files(tmp_path):
    torch.save({"x": torch.zeros(1)}, tmp_path / "a.pth")
    with pytest.raises(UserError, match=r"pass one of its files \(a.pth\)"):
        load_encoder(tmp_path)


def test_loading_never_unpickles_arbitrary_objects():
    """Every torch.load in coanalysis passes weights_only=True (a grep, to keep it that way)."""
    import re
    from pathlib import Path

    import coanalysis

    calls = []
    for path in Path(coanalysis.__file__).parent.rglob("*.py"):
        calls += re.findall(r"torch\.load\([^)]*\)", path.read_text())
    assert calls and all("weights_only=True" in call for call in calls), calls
