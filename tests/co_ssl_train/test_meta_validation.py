"""Every field of a run's meta.json is checked for type and shape before anything is built from it:
a damaged field is a one-line UserError naming the file and the field (part of the bad-input suite)."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from co_ssl_train.checkpoint import META_FILE, load_run_encoder, read_meta
from co_ssl_train.config import TrainConfig
from co_ssl_train.errors import UserError
from co_ssl_train.train import train
from tests.conftest import TINY

REMOVE = object()

# (field path, bad value, words the message must contain)
CASES = [
    (("arch",), "resnet10", "'arch' must be an object"),
    (("arch",), REMOVE, "lacks 'arch'"),
    (("arch", "name"), 7, "'arch' entry 'name' must be a non-empty string"),
    (("arch", "name"), "", "'arch' entry 'name' must be a non-empty string"),
    (("arch", "name"), REMOVE, "'arch' lacks 'name'"),
    (("arch", "kwargs"), ["stem", "cifar"], "'arch' entry 'kwargs' must be an object"),
    (("arch", "kwargs", "width"), [8], "entry 'width' must be a string, number, boolean or null"),
    (("arch", "kwargs", "width"), math.inf, "entry 'width' must be a string, number"),
    (("normalization",), REMOVE, "lacks 'normalization'"),
    (("normalization",), [0.5, 0.5, 0.5], "'normalization' must be an object"),
    (("normalization", "std"), REMOVE, "'normalization' lacks 'std'"),
    (("normalization", "mean"), REMOVE, "'normalization' lacks 'mean'"),
    (("normalization", "mean"), [0.5, 0.5], "entry 'mean' must be a list of 3 entries"),
    (("normalization", "mean"), [0.5, 0.5, 0.5, 0.5], "entry 'mean' must be a list of 3 entries"),
    (("normalization", "mean"), "0.5", "entry 'mean' must be a list of 3 entries"),
    (("normalization", "mean"), [0.5, "x", 0.5], "entry 'mean' item 1 must be a finite number"),
    (("normalization", "mean"), [0.5, math.nan, 0.5], "entry 'mean' item 1 must be a finite number"),
    (("normalization", "std"), [0.2, 0.2, 0.0], "entry 'std' item 2 must be positive"),
    (("normalization", "std"), [0.2, -math.inf, 0.2], "entry 'std' item 1 must be a finite number"),
    (("normalization", "std"), [0.2, True, 0.2], "entry 'std' item 1 must be a finite number"),
    (("local_layer",), 4, "'local_layer' must be a non-empty string"),
    (("method",), None, "'method' must be a non-empty string"),
    (("config",), "co-byol", "'config' must be an object"),
    (("dataset",), "synthetic", "'dataset' must be an object"),
    (("dataset", "num_classes"), 0, "entry 'num_classes' must be an integer >= 1"),
    (("input_size",), "32", "'input_size' must be an integer >= 1"),
    (("input_size",), 32.5, "'input_size' must be an integer >= 1"),
    (("input_size",), -32, "'input_size' must be an integer >= 1"),
    (("epoch",), True, "'epoch' must be an integer >= 0"),
    (("step",), -1, "'step' must be an integer >= 0"),
    (("total_steps",), None, "'total_steps' must be an integer >= 0"),
    (("finished",), "yes", "'finished' must be true or false"),
    (("metrics",), [1.0], "'metrics' must be an object"),
    (("metrics", "loss"), "low", "'metrics' entry 'loss' must be a finite number"),
    (("metrics", "loss"), math.inf, "'metrics' entry 'loss' must be a finite number"),
    (("receptive_field",), 0, "'receptive_field' must be an integer >= 1"),
    (("local_branch",), "on", "'local_branch' must be an object"),
    (("representation",), None, "'representation' must be an object"),
    (("representation", "kind"), REMOVE, "'representation' lacks 'kind'"),
    (("representation",), {"kind": "bag-of-patches", "stride": 8}, "'representation' lacks 'patch_size'"),
    (("representation",), {"kind": "bag-of-patches", "patch_size": "16", "stride": 8},
     "'representation' entry 'patch_size' must be an integer >= 1"),
    (("views",), {"size": 32}, "'views' must be a list"),
    (("views",), [{"size": 32, "count": 0, "scale": [0.08, 1.0]}], "'views' item 0 entry 'count' must be an integer"),
    (("views",), [{"size": 32, "count": 1, "scale": [0.08]}], "entry 'scale' must be a list of 2 entries"),
    (("views",), [{"size": 32, "count": 1, "scale": [0.0, 1.0]}], "entry 'scale' item 0 must be in (0, 1]"),
    (("views",), [{"count": 1}], "'views' item 0 lacks 'size'"),
    (("distributed", "world_size"), 0, "'distributed' entry 'world_size' must be an integer >= 1"),
    (("encoder_sha256",), "abc", "'encoder_sha256' must be 64 lowercase hex digits"),
    (("encoder_sha256",), 12, "'encoder_sha256' must be 64 lowercase hex digits"),
    (("package_version",), 1, "'package_version' must be a non-empty string"),
    (("git_commit",), 5, "'git_commit' must be a non-empty string"),
    (("created",), None, "'created' must be a non-empty string"),
]


def _patched(meta: dict, path: tuple[str, ...], value) -> dict:
    meta = json.loads(json.dumps(meta))
    inner = meta
    for key in path[:-1]:
        inner = inner[key]
    if value is REMOVE:
        inner.pop(path[-1], None)
    else:
        inner[path[-1]] = value
    return meta


@pytest.fixture(scope="module")
def meta_run(tiny_runs, tmp_path_factory):
    run = tmp_path_factory.mktemp("meta") / "run"
    shutil.copytree(tiny_runs["co-byol"], run)
    return run


@pytest.mark.parametrize("path,value,words", CASES, ids=[f"{'.'.join(c[0])}={c[1]!r}"[:60] for c in CASES])
def test_a_malformed_field_is_one_line_naming_the_field(meta_run, tmp_path, path, value, words):
    meta = json.loads((meta_run / META_FILE).read_text())
    (tmp_path / META_FILE).write_text(json.dumps(_patched(meta, path, value)))  # NaN and inf as JSON literals
    with pytest.raises(UserError) as info:
        read_meta(tmp_path)  # what load_run_encoder reads first
    message = str(info.value)
    assert words in message and str(tmp_path / META_FILE) in message
    assert "\n" not in message


@pytest.mark.parametrize("path,value,words", [CASES[0], CASES[11], CASES[16]], ids=["arch", "no-std", "nan-mean"])
def test_the_strict_loader_refuses_them_before_building_an_encoder(meta_run, tmp_path, path, value, words):
    run = tmp_path / "run"
    shutil.copytree(meta_run, run)
    meta = json.loads((run / META_FILE).read_text())
    (run / META_FILE).write_text(json.dumps(_patched(meta, path, value)))
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_run_encoder(run)


def test_the_trainers_own_meta_passes_and_unknown_extra_keys_are_left_alone(meta_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(meta_run, run)
    meta = json.loads((run / META_FILE).read_text())
    meta["written_by_a_newer_minor_version"] = {"anything": [1, 2]}
    (run / META_FILE).write_text(json.dumps(meta))
    assert read_meta(run)["written_by_a_newer_minor_version"] == {"anything": [1, 2]}
    encoder, loaded, _ = load_run_encoder(run)
    assert loaded["arch"]["name"] == encoder.arch


def test_older_metas_without_the_optional_fields_still_load(meta_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(meta_run, run)
    meta = json.loads((run / META_FILE).read_text())
    keep = ("schema_version", "format", "arch", "normalization")
    (run / META_FILE).write_text(json.dumps({k: meta[k] for k in keep}))
    encoder, _, _ = load_run_encoder(run)
    assert encoder.normalization() == meta["normalization"]


def test_resuming_a_run_whose_meta_has_no_config_is_one_line(meta_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(meta_run, run)
    meta = json.loads((run / META_FILE).read_text())
    meta.pop("config")
    (run / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(UserError, match="records no config, so the run cannot be resumed"):
        train(TrainConfig(**{**TINY, "method": "co-byol"}, out=str(tmp_path), run_name="run", resume=True))
