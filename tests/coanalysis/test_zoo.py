"""The checkpoint zoo: the table, and the download path against a local HTTP server on 127.0.0.1
(Range requests, an interrupted transfer, checksums published, recorded and mismatched)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from coanalysis.models.trainer_io import UserError
from coanalysis.models.zoo import RECORD, fetch, resolve_zoo_spec, zoo_dir
from coanalysis.models.zoo_table import ZOO, ZooEntry
from tests.coanalysis.http_files import Server
from tests.conftest import run_cli

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def server():
    s = Server({"/weights.pth": PAYLOAD})
    yield s
    s.close()


def entry(url: str, **changes) -> ZooEntry:
    return dataclasses.replace(ZooEntry("test-net", "Test", "resnet18", "none", 1, url, 0.0), **changes)


def test_table_has_the_issue_families_with_https_urls_and_no_invented_digests():
    assert len(ZOO) >= 20
    families = {e.family for e in ZOO.values()}
    for family in ("MoCo v2", "MoCo v3", "SwAV", "DeepCluster-v2", "Barlow Twins", "VICReg", "DINO", "DINOv2", "MAE",
                   "iBOT", "I-JEPA", "BYOL", "SimCLR"):
        assert family in families
    names = set(ZOO)
    for name in ("dino-r50", "dino-vit-s16", "dino-vit-s8", "dino-vit-b16", "dino-vit-b8", "mae-vit-b16",
                 "mae-vit-l16", "mae-vit-h14", *(f"dinov2-vit{s}14{r}" for s in "sblg" for r in ("", "-reg"))):
        assert name in names
    assert len({e.filename for e in ZOO.values()}) == len(ZOO)  # distinct cache files
    for e in ZOO.values():
        assert e.url.startswith("https://") and e.sha256 is None  # nobody publishes full digests
        if e.sha256_prefix:  # openmmlab names carry the digest's start
            assert e.url.rsplit(".", 1)[0].endswith("-" + e.sha256_prefix)


def test_download_records_the_digest_then_checks_it(server, tmp_path):
    e = entry(server.url("/weights.pth"))
    path = fetch(e, tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    record = json.loads((tmp_path / RECORD).read_text())[e.filename]
    assert record["sha256"] == hashlib.sha256(PAYLOAD).hexdigest() and record["size_bytes"] == len(PAYLOAD)
    assert record["note"] == "recorded on first download"
    assert fetch(e, tmp_path, progress=False) == path and len(server.ranges) == 1  # downloaded once
    path.write_bytes(b"tampered")  # a later change of the file is refused against the record
    with pytest.raises(UserError, match="recorded on first download"):
        fetch(e, tmp_path, progress=False)
    assert not path.exists() and path.with_name(path.name + ".rejected").exists()


def test_published_digest_match_and_mismatch(server, tmp_path):
    good = hashlib.sha256(PAYLOAD).hexdigest()
    assert fetch(entry(server.url("/weights.pth"), sha256=good), tmp_path / "a", progress=False).exists()
    bad = entry(server.url("/weights.pth"), sha256="0" * 64)
    with pytest.raises(UserError, match="does not match the published"):
        fetch(bad, tmp_path / "b", progress=False)
    assert not (tmp_path / "b" / bad.filename).exists()  # never left where it would be loaded
    assert not (tmp_path / "b" / RECORD).exists()  # and its digest not recorded as the valid one
    prefix = entry(server.url("/weights.pth"), sha256_prefix="ffffffff")
    with pytest.raises(UserError, match="does not match"):
        fetch(prefix, tmp_path / "c", progress=False)
    assert fetch(entry(server.url("/weights.pth"), sha256_prefix=good[:8]), tmp_path / "d", progress=False).exists()


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    e = entry(server.url("/weights.pth"), sha256=hashlib.sha256(PAYLOAD).hexdigest())
    server.cut = 300_000
    with pytest.raises(UserError, match="run again to resume"):
        fetch(e, tmp_path, progress=False)
    part = tmp_path / (e.filename + ".part")
    assert part.stat().st_size == 300_000 and not (tmp_path / e.filename).exists()
    path = fetch(e, tmp_path, progress=False)
    assert server.ranges == [None, "bytes=300000-"]
    assert path.read_bytes() == PAYLOAD and not part.exists()


def test_no_network_names_the_place_and_accepts_a_file_put_there(tmp_path):
    e = entry("http://127.0.0.1:9/nothing.pth")  # port 9 (discard): connection refused
    with pytest.raises(UserError, match=f"put it at {tmp_path / e.filename}"):
        fetch(e, tmp_path, progress=False)
    (tmp_path / e.filename).write_bytes(PAYLOAD)
    assert fetch(e, tmp_path, progress=False).read_bytes() == PAYLOAD


@pytest.mark.slow  # a 45 MB ResNet-18 file through the server
def test_zoo_spec_loads_as_a_file_through_load_encoder(server, tmp_path, monkeypatch):
    import torch

    from coanalysis.models.loading import load_encoder
    from coanalysis.run.pipeline import default_name
    from tests.coanalysis.layouts import random_resnet, reference_features

    model = random_resnet("resnet18")
    buffer = tmp_path / "r18.pth"
    torch.save(model.state_dict(), buffer)
    server.files["/r18.pth"] = buffer.read_bytes()
    monkeypatch.setitem(ZOO, "test-r18", dataclasses.replace(entry(server.url("/r18.pth")), name="test-r18"))
    encoder = load_encoder("zoo:test-r18")
    assert Path(encoder.source.path).parent == zoo_dir() and encoder.source.arch == "resnet18"
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(encoder.forward_global(x), reference_features(model, x)[1], atol=1e-5)
    assert default_name("zoo:test-r18") == "test-r18"
    assert resolve_zoo_spec("zoo:test-r18", progress=False) == Path(encoder.source.path)


def test_zoo_command_lists_offline(tmp_path):
    out = run_cli("coanalysis", "zoo", env={"CO_SSL_CACHE": str(tmp_path)})
    assert out.returncode == 0 and "dinov2-vitg14-reg" in out.stdout and f"{len(ZOO)} checkpoints" in out.stdout


def test_zoo_json_family_filter(capsys):
    from coanalysis.cli import main

    main(["zoo", "--json", "--family", "dino"])
    listed = json.loads(capsys.readouterr().out)
    assert {r["family"] for r in listed} == {"DINO", "DINOv2"} and all(r["url"] for r in listed)


@pytest.mark.parametrize("argv,message", [(["zoo", "--download", "nope"], "unknown zoo checkpoint 'nope'"),
                                          (["zoo", "--family", "nothing"], "no zoo checkpoint of family"),
                                          (["probe", "--ckpt", "zoo:nope"], "unknown zoo checkpoint")])
def test_zoo_bad_input_is_one_line_exit_2(argv, message, capsys):
    from coanalysis.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
