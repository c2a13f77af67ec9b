"""Every ViT entry of the zoo end to end, offline: a random model in the layout the entry's published
file has (a tiny width and depth, the entry's patch size), served from 127.0.0.1 under the entry's
file name, is downloaded and loaded by `zoo:NAME`, detected as the entry's declared format, and gives
timm's own features on the same weights."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import pytest
import torch

from coanalysis.models.loading import load_encoder
from coanalysis.models.zoo import zoo_dir
from coanalysis.models.zoo_table import ZOO, ZooEntry
from tests.coanalysis import vit_layouts
from tests.coanalysis.http_files import Server

VIT_ENTRIES = [name for name, e in ZOO.items() if e.loads_with == "vit"]


def published_layout(entry: ZooEntry):
    """(object to save, reference timm model, readout) shaped like `entry`'s published file."""
    patch = int(re.search(r"patch(\d+)", entry.arch).group(1))
    arch = {"patch_size": patch, "img_size": 4 * patch}
    if entry.format == "dinov2":
        return vit_layouts.dinov2(registers=4 if "registers" in entry.arch else 0, swiglu="giant" in entry.arch,
                                  **arch)
    if entry.format == "mocov3-vit":  # ViT-S keeps moco-v3's 384 width and 12 heads; others: the tiny width
        return vit_layouts.mocov3(**arch, **({} if "small" in entry.arch else {"embed_dim": 192, "num_heads": 3}))
    if entry.format == "ijepa":
        return vit_layouts.ijepa(**arch)
    builders = {"DINO": vit_layouts.dino_hub, "MAE": vit_layouts.mae_encoder, "iBOT": vit_layouts.ibot_teacher}
    assert entry.format == "timm-vit", f"{entry.name}: no test layout for format {entry.format!r}"
    return builders[entry.family](**arch)


@pytest.fixture(scope="module")
def server():
    s = Server({})
    yield s
    s.close()


def test_every_vit_entry_declares_a_vit_format():
    assert len(VIT_ENTRIES) >= 17
    for name in VIT_ENTRIES:
        assert ZOO[name].format in ("timm-vit", "dinov2", "mocov3-vit", "ijepa"), name


@pytest.mark.parametrize("name", VIT_ENTRIES)
def test_zoo_vit_entry_downloads_and_loads_to_timm_features(name, server, monkeypatch):
    entry = ZOO[name]
    obj, model, readout = published_layout(entry)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    tail = "/" + entry.url.rsplit("/", 1)[-1]
    server.files[tail] = buffer.getvalue()
    monkeypatch.setitem(ZOO, name, dataclasses.replace(entry, url=server.url(tail)))
    encoder = load_encoder(f"zoo:{name}")
    assert Path(encoder.source.path) == zoo_dir() / entry.filename
    assert encoder.source.format == entry.format and encoder.source.family == "vit"
    assert encoder.source.global_readout == readout
    vit_layouts.check_features(encoder, model, readout, size=4 * model.patch_embed.patch_size[0])
