"""Fixtures shared by the coanalysis tests."""

from __future__ import annotations

import pytest
import torch

from tests.coanalysis import vit_layouts


@pytest.fixture(scope="module")
def dino_file(tmp_path_factory):
    """A full facebookresearch/dino ViT checkpoint (teacher and student) saved with torch.save."""
    obj, _, _ = vit_layouts.dino_full()
    path = tmp_path_factory.mktemp("vit") / "dino_vit.pth"
    torch.save(obj, path)
    return path
