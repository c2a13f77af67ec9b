"""The distribution-shift analysis on tiny hand-made folders with a 1000-class probe whose answers are
known: without restriction it always says one non-R class; restricted to ImageNet-R's 200 it says R's
first class."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from coanalysis.results import stats
from coanalysis.analyses import ANALYSES
from coanalysis.analyses.shift import ShiftProtocol, cells, run_cell
from coanalysis.features.extraction import EvalData
from coanalysis.probes.linear import LinearProbe
from coanalysis.data.shift_sets import class_list
from coanalysis.models.trainer import DatasetInfo, ImageDataset
from tests.coanalysis.analysis_encoders import PixelLinear, context, wrap

IMAGENET = class_list("imagenet-1k.txt")
R = class_list("imagenet-r.txt")
OUTSIDE = next(w for w in IMAGENET if w not in R)  # the unrestricted answer


def _context():
    encoder = wrap(PixelLinear(), "pixel-linear")
    info = DatasetInfo(name="imagenet", split="val", num_classes=1000, image_size=16, source="tests")
    images = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    data = EvalData.from_dataset(ImageDataset(images, torch.zeros(4, dtype=torch.long), IMAGENET, info))
    ctx = context(encoder, data=data)
    probe = LinearProbe(encoder.num_features, 1000).eval()
    with torch.no_grad():
        probe.linear.weight.zero_()
        probe.linear.bias.zero_()
        probe.linear.bias[IMAGENET.index(OUTSIDE)] = 2.0
        probe.linear.bias[IMAGENET.index(R[0])] = 1.0
    ctx.probe = probe
    return ctx


def _images(folder, k, broken=False):
    folder.mkdir(parents=True)
    for i in range(k):
        Image.new("RGB", (20, 24), (10 * i, 50, 90)).save(folder / f"{i}.png")
    if broken:
        (folder / "bad.png").write_bytes(b"not a png")


def test_restriction_to_the_200_classes_and_full_sets(tmp_path):
    _images(tmp_path / "imagenet-r" / R[0], 3, broken=True)
    _images(tmp_path / "imagenet-r" / R[1], 1)
    _images(tmp_path / "imagenet-sketch" / OUTSIDE, 2)
    _images(tmp_path / "imagenet-sketch" / R[0], 2)
    _images(tmp_path / "imagenet-v2" / str(IMAGENET.index(OUTSIDE)), 2)
    _images(tmp_path / "imagenet-3dcc" / "fog_3d" / "2" / OUTSIDE, 1)
    protocol = ShiftProtocol(root=str(tmp_path), sets=("imagenet-r", "imagenet-sketch", "imagenet-v2", "imagenet-3dcc"),
                             corruptions=("fog_3d",), severities=(2,))
    assert cells(protocol) == ["imagenet-r", "imagenet-sketch", "imagenet-v2", "imagenet-3dcc fog_3d s2"]
    ctx = _context()
    r = run_cell(ctx, protocol, "imagenet-r")
    assert r["accuracy"] == 0.75 and r["n"] == 4 and r["undecodable"] == 1 and r["files"] == 5
    # per-image record (PROTOCOLS 11): 3 of the 4 decoded images right, the interval around 0.75
    assert stats.cell_correctness(r).sum() == 3 and r["interval"][0] < 0.75 < r["interval"][1] + 1e-12
    assert r["restricted"] and r["classes"] == 200 and len(r["kept_probe_indices"]) == 200
    assert r["class_list"].endswith("imagenet-r.txt")
    sketch = run_cell(ctx, protocol, "imagenet-sketch")
    assert sketch["accuracy"] == 0.5 and not sketch["restricted"] and sketch["kept_probe_indices"] is None
    assert run_cell(ctx, protocol, "imagenet-v2")["accuracy"] == 1.0
    assert run_cell(ctx, protocol, "imagenet-3dcc fog_3d s2")["accuracy"] == 1.0
    assert ANALYSES["shift"].condition_fields == ("sets", "corruptions", "severities")


def test_a_probe_without_imagenet_classes_is_refused(tmp_path):
    from coanalysis.models.trainer_io import UserError
    from tests.coanalysis.analysis_encoders import noise_images

    _images(tmp_path / "imagenet-a" / class_list("imagenet-a.txt")[0], 1)
    ctx = context(wrap(PixelLinear(), "pixel-linear"), data=noise_images(4))
    with pytest.raises(UserError, match="probe has no class"):
        run_cell(ctx, ShiftProtocol(root=str(tmp_path), sets=("imagenet-a",)), "imagenet-a")


def test_report_section_records_the_mapping(tmp_path):
    from coanalysis.report.data import ReportData
    from coanalysis.report.sections import shift as section
    from coanalysis.results.store import Result, ResultsStore

    _images(tmp_path / "sets" / "imagenet-r" / R[0], 2)
    protocol = ShiftProtocol(root=str(tmp_path / "sets"), sets=("imagenet-r",))
    cell = run_cell(_context(), protocol, "imagenet-r")
    ResultsStore(tmp_path / "res").save(Result(analysis="shift", model={"name": "m", "content_hash": "h"},
                                               protocol=protocol.to_json(), cells={"imagenet-r": cell}, environment={},
                                               wall_time_s=0.0, complete=True, expected_cells=1))
    built = section.build(ReportData.from_folders([tmp_path / "res"]))
    assert built.tables[0].rows == [["m", "100.0 [100.0, 100.0] (n = 2)"]]  # every image right: no spread
    assert ("imagenet-r: 200 classes (coanalysis/data/classlists/imagenet-r.txt; argmax over those classes only)"
            in built.notes)


@pytest.mark.parametrize("flags,message", [([], "--only shift needs --shift-from"),
                                           (["--shift-from", "/nonexistent/x"], "is not a folder"),
                                           (["--shift-from", ".", "--shift-sets", "imagenet-z"],
                                            "unknown distribution-shift set 'imagenet-z'"),
                                           (["--shift-from", ".", "--shift-n", "0"], "--shift-n: expected an integer of at least 1")])
def test_shift_bad_input_is_one_line_exit_2(flags, message, tiny_runs, tmp_path, capsys):
    from coanalysis.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["robustness", "--ckpt", str(tiny_runs["byol"]), "--only", "shift", *flags, "--out", str(tmp_path),
              "--no-progress"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
