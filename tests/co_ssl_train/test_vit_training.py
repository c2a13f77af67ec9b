"""CO-SSL on Vision Transformers: every method's loss on a tiny ViT against its formula (global =
the class-token readout, local = every patch token after the final norm), one training step per
method, exact resume, the ViT flags refused up front, the recipes, and coanalysis loading our runs."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from co_ssl_train.config import TrainConfig
from co_ssl_train.errors import UserError
from co_ssl_train.methods import METHODS
from co_ssl_train.models import build_encoder
from co_ssl_train.recipes import recipe_args, recipe_settings
from co_ssl_train.batches import make_views
from co_ssl_train.train import train
from tests.conftest import TINY

VIT = {"patch_size": 8, "img_size": 32, "embed_dim": 24, "depth": 2, "num_heads": 2}  # 4x4 tokens at 32 px
VIT_CFG = dict(arch="vit_tiny", vit_patch_size=8, vit_dim=24, vit_depth=2, vit_heads=2)


def _cfg(method: str, **kw) -> TrainConfig:
    base = dict(method=method, dataset="synthetic", proj_hidden=32, proj_dim=16, dino_prototypes=32, batch_size=6,
                patches=3, patch_size=16, local_crops=None, **VIT_CFG)
    return TrainConfig(**{**base, **kw}).resolved(32)


def _method(name: str, **kw):
    torch.manual_seed(0)
    cfg = _cfg(name, **kw)
    encoder = build_encoder("vit_tiny", {**VIT, "readout": cfg.global_readout})
    return METHODS[name].build(encoder, cfg), cfg


# ---- the formulas, written out independently of the methods' code ---------------------------------


def _apply(head, x):  # a vector head on (..., C) rows
    return head(x.reshape(-1, x.shape[-1])).view(*x.shape[:-1], -1)


def _tokens(encoder, v):  # every patch token after the final norm: (h*w, B, C)
    return encoder.forward_local(v).flatten(2).permute(2, 0, 1)


def _cos_loss(p, z):
    return (2 - 2 * (F.normalize(p, dim=-1) * F.normalize(z, dim=-1)).sum(-1)).mean()


def _nt_xent(a, b, t):
    z = F.normalize(torch.cat([a, b]), dim=-1)
    logits = (z @ z.T / t).fill_diagonal_(float("-inf"))
    n = a.shape[0]
    return F.cross_entropy(logits, (torch.arange(2 * n) + n) % (2 * n))


def _info_nce(q, k, t):  # q (P, B, D): every position's query against the batch's keys
    logits = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T / t
    return torch.stack([F.cross_entropy(row, torch.arange(k.shape[0])) for row in logits]).mean()


def _dino(s, p, student_temp=0.1):
    return -(p * F.log_softmax(s / student_temp, dim=-1)).sum(-1).mean()


def _var(z):
    return F.relu(1 - torch.sqrt(z.var(dim=-2) + 1e-4)).mean()


def _cov(z):  # (..., N, D): off-diagonal squared covariances / D, mean over leading axes
    zc = z - z.mean(dim=-2, keepdim=True)
    c = zc.transpose(-1, -2) @ zc / (z.shape[-2] - 1)
    off = c - torch.diag_embed(torch.diagonal(c, dim1=-2, dim2=-1))
    return ((off ** 2).sum(dim=(-2, -1)) / z.shape[-1]).mean()


def _vicreg(a, b):
    return 25 * F.mse_loss(a, b.expand_as(a)) + 25 * (_var(a) + _var(b)) + (_cov(a) + _cov(b))


def _expected(name: str, m, views):
    """(global loss, local loss or None) of method `name` from the encoder's readout and tokens."""
    g = [m.encoder.forward_global(v) for v in views[:2]]
    tok = [_tokens(m.encoder, v) for v in views[:2]]
    local = [_apply(m.local.head, t) for t in tok] if getattr(m, "local", None) is not None else None
    base = name.removeprefix("co-")
    if base == "byol":
        p = [m.head(x) for x in g]
        z = [m.target_projector(m.target_encoder.forward_global(v)) for v in views[:2]]
        lg = (_cos_loss(p[0], z[1]) + _cos_loss(p[1], z[0])) / 2
        return lg, local and (_cos_loss(local[0], z[1]) + _cos_loss(local[1], z[0])) / 2
    if base == "simclr":
        z = [m.head(x) for x in g]
        ll = local and (_info_nce(local[0], z[1], 0.2) + _info_nce(local[1], z[0], 0.2)) / 2
        return _nt_xent(z[0], z[1], 0.2), ll
    if base == "mocov3":
        q = [m.head(x) for x in g]
        k = [m.target_projector(m.target_encoder.forward_global(v)) for v in views[:2]]
        lg = 0.4 * (_info_nce(q[0][None], k[1], 0.2) + _info_nce(q[1][None], k[0], 0.2))
        return lg, local and 0.4 * (_info_nce(local[0], k[1], 0.2) + _info_nce(local[1], k[0], 0.2))
    if base == "dino":
        s = [m.head(x) for x in g]
        probs = [F.softmax(m.target_head(m.target_encoder.forward_global(v)) / 0.04, dim=-1) for v in views[:2]]
        lg = (_dino(s[0], probs[1]) + _dino(s[1], probs[0])) / 2
        return lg, local and (_dino(local[0], probs[1]) + _dino(local[1], probs[0])) / 2
    if base == "vicreg":
        z = [m.head(x) for x in g]
        return _vicreg(z[0], z[1]), local and (_vicreg(local[0], z[1]) + _vicreg(local[1], z[0])) / 2
    assert name == "bagssl"
    z = torch.stack([m.head(m.encoder.forward_global(v)) for v in views])  # (K, N, D)
    bag = z.mean(dim=0, keepdim=True)
    return 25 * F.mse_loss(z, bag.expand_as(z)) + 25 * _var(z) + _cov(z), None


FORMULA_METHODS = ["byol", "co-byol", "simclr", "co-simclr", "mocov3", "co-mocov3", "dino", "co-dino", "vicreg",
                   "co-vicreg", "bagssl"]


@pytest.mark.parametrize("name, readout",
                         [(m, "cls") for m in FORMULA_METHODS] + [("co-byol", "avg"), ("co-dino", "avg")])
def test_each_method_on_a_vit_computes_its_formula(name, readout):
    m, cfg = _method(name, global_readout=readout, head_bn="dino" not in name)
    m.eval()  # heads' BatchNorm on running statistics: every view's output is its own, as in the formulas
    if hasattr(m, "set_schedule_values"):
        m.set_schedule_values(teacher_temp=0.04)
    g = torch.Generator().manual_seed(1)
    size = cfg.patch_size if name == "bagssl" else 32
    views = [torch.rand(6, 3, size, size, generator=g) for _ in range(3 if name == "bagssl" else 2)]
    with torch.no_grad():
        loss, logs = m(views)
        lg, ll = _expected(name, m, views)
    torch.testing.assert_close(logs["loss_global"], lg, rtol=1e-4, atol=1e-5)
    if ll is None:
        assert "loss_local" not in logs
        torch.testing.assert_close(loss, lg, rtol=1e-4, atol=1e-5)
    else:
        torch.testing.assert_close(logs["loss_local"], ll, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(loss, lg + 0.5 * ll, rtol=1e-4, atol=1e-5)  # additive, w_s = 0.5


def test_the_local_branch_of_a_vit_is_every_patch_token_or_the_pooled_grid():
    m, _ = _method("co-byol")
    assert m.layers == ("readout", "blocks.1")
    maps = m.encoder.forward_maps(torch.rand(2, 3, 32, 32), m.layers)
    assert maps[0].shape == (2, 24, 1, 1) and maps[1].shape == (2, 24, 4, 4)
    assert m.local(maps[1]).shape == (16, 2, 16)  # 4x4 tokens, each its own local vector
    pooled, _ = _method("co-byol", local_grid=2)
    assert pooled.local(maps[1]).shape == (4, 2, 16)
    assert all(block.attn.fused_attn for block in m.encoder.backbone.blocks)  # timm calls torch's SDPA


def test_bf16_autocast_step_on_a_vit_is_finite_and_close_to_fp32():
    m, _ = _method("co-dino", head_bn=False)
    views = [torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    with torch.no_grad():
        full, _ = copy.deepcopy(m)(views)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logs = m(views)
    loss.backward()
    assert loss.dtype == torch.float32 and abs(float(loss.detach()) - float(full)) < 0.05 * abs(float(full))
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


# ---- every method trains on a ViT ------------------------------------------------------------------


@pytest.mark.parametrize("name", list(METHODS))
def test_one_vit_step_changes_the_weights_and_keeps_the_loss_finite(name):
    m, cfg = _method(name, local_crops=2 if name == "byol-mc" else None, head_bn="dino" not in name)
    start = copy.deepcopy(m.state_dict())
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    views = make_views(images, METHODS[name].views(cfg), torch.Generator().manual_seed(0), channels_last=False)
    loss, logs = m(views)
    assert torch.isfinite(loss) and ("loss_local" in logs) == METHODS[name].co
    opt.zero_grad()
    loss.backward()
    assert all(p.grad is not None for mod in m.online_modules() for p in mod.parameters() if p.requires_grad)
    opt.step()
    if METHODS[name].momentum:
        m.momentum_update(0.9)
    after = m.state_dict()
    for key in ("encoder.backbone.blocks.0.attn.qkv.weight", "encoder.backbone.cls_token"):
        assert not torch.equal(start[key], after[key]), key
    if METHODS[name].momentum:
        assert not torch.equal(start["target_encoder.backbone.blocks.0.attn.qkv.weight"],
                               after["target_encoder.backbone.blocks.0.attn.qkv.weight"])


# ---- the training loop ---------------------------------------------------------------------------

VIT_TRAIN = {**TINY, **VIT_CFG, "arch": "vit_tiny", "batch_size": 16, "subset": 32, "dino_prototypes": 32,
             "warmup_epochs": 1.0, "epochs": 3, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.04,
             "weight_decay_end": 0.4, "clip_grad": 3.0}


@pytest.mark.parametrize("method", ["co-dino", pytest.param("co-byol", marks=pytest.mark.slow)])
def test_vit_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, method):
    """2 + 2 steps equal 4 straight; co-dino with DINO's ViT-S head settings (stochastic depth 0.1,
    trained row norms g) also checks the frozen last layer: 2 steps an epoch and --freeze-last-layer 1
    leave the prototypes and their g as they were for 2 steps (the teacher, an EMA of them, stays
    equal to them), and step 3 moves them."""
    base = {**VIT_TRAIN, "method": method, "out": str(tmp_path)}
    if method == "co-dino":
        base.update(head_bn=False, freeze_last_layer=1.0, local_crops=2, drop_path=0.1, norm_last_layer=False,
                    local_positions=5)  # 5 of the 16 tokens drawn each step: the resumed run draws the same
    train(TrainConfig(**{**base, "max_steps": 4}, run_name="straight"))
    train(TrainConfig(**{**base, "max_steps": 2}, run_name="resumed"))
    if method == "co-dino":
        two = torch.load(tmp_path / "resumed" / "state.pt", weights_only=True)["method"]
        assert torch.equal(two["head.prototypes"], two["target_head.prototypes"])
        assert torch.equal(two["head.prototypes_g"], torch.ones(32, 1)) and torch.equal(two["local.head.prototypes_g"],
                                                                                         torch.ones(32, 1))
        assert not torch.equal(two["head.mlp.0.weight"], two["target_head.mlp.0.weight"])  # the rest trains
    train(TrainConfig(**{**base, "max_steps": 4}, run_name="resumed", resume=True))
    a = load_file(str(tmp_path / "straight" / "encoder.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "encoder.safetensors"))
    assert a.keys() == b.keys() and "cls_token" in a and "pos_embed" in a  # timm names, no prefix
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = (torch.load(tmp_path / r / "state.pt", weights_only=True) for r in ("straight", "resumed"))
    assert all(torch.equal(sa["method"][k], sb["method"][k]) for k in sa["method"])
    if method == "co-dino":
        assert not torch.equal(sa["method"]["head.prototypes"], sa["method"]["target_head.prototypes"])
        assert not torch.equal(sa["method"]["head.prototypes_g"], torch.ones(32, 1))


def test_a_vit_run_records_patch_tokens_and_readout_and_coanalysis_loads_it(tmp_path):
    from coanalysis import load_encoder
    from co_ssl_train.checkpoint import read_meta

    run = train(TrainConfig(**{**VIT_TRAIN, "method": "co-dino", "head_bn": False, "max_steps": 2,
                               "global_readout": "avg"}, out=str(tmp_path), run_name="vit"))
    meta = read_meta(run)
    assert meta["arch"] == {"name": "vit_tiny", "kwargs": {"patch_size": 8, "img_size": 32, "readout": "avg",
                                                           "embed_dim": 24, "depth": 2, "num_heads": 2}}
    assert meta["encoder"]["prefix_tokens"] == 1 and meta["encoder"]["readout"] == "avg"
    assert meta["representation"]["kind"] == "readout" and meta["local_branch"]["stage"] == "blocks.1"
    state = torch.load(run / "state.pt", weights_only=True)["method"]
    trained = build_encoder("vit_tiny", meta["arch"]["kwargs"], mean=meta["normalization"]["mean"],
                            std=meta["normalization"]["std"])
    trained.backbone.load_state_dict({k.removeprefix("encoder.backbone."): v for k, v in state.items()
                                      if k.startswith("encoder.backbone.")})
    trained.eval()
    loaded = load_encoder(run)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_global(x), trained.forward_global(x), rtol=0, atol=0)
        torch.testing.assert_close(loaded.forward_local(x), trained.forward_local(x), rtol=0, atol=0)
        assert loaded.forward_local(x).shape == (3, 24, 4, 4)


@pytest.mark.parametrize("change, match", [
    ({"vit_patch_size": 5}, "must divide the 32 px"),
    ({"vit_dim": 25}, "multiple of --vit-heads"),
    ({"local_layer": "layer3", "method": "co-byol"}, "ResNet stage"),
    ({"mlp_after_pool": False, "method": "co-byol"}, "ResNet ablation"),
    ({"local_crop_size": 10, "local_crops": 2, "method": "dino"}, "multiple of --vit-patch-size"),
    ({"freeze_last_layer": 1.0, "method": "byol"}, "applies to dino and co-dino"),
    ({"clip_grad": -1.0}, "--clip-grad"),
    ({"arch": "resnet10", "vit_depth": 3}, "applies to ViTs"),
])
def test_invalid_vit_settings_are_refused_before_training(change, match):
    with pytest.raises(UserError, match=match):
        _cfg(change.pop("method", "co-dino"), **change)


def test_vit_patch_size_is_automatic_from_the_image_size():
    for size, patch in ((32, 4), (96, 8), (224, 16)):
        cfg = TrainConfig(arch="vit_small", dataset="synthetic").resolved(size)
        assert cfg.vit_patch_size == patch
    assert TrainConfig(arch="resnet18", dataset="synthetic").resolved(32).vit_patch_size == 0


def test_vit_recipes_name_a_source_for_every_setting():
    rows = recipe_settings("cifar10", "co-dino", "vit_small")
    settings = {flag: (value, source) for flag, value, source in rows}
    assert settings["--arch"][0] == "vit_small" and settings["--vit-patch-size"][0] == "4"
    assert settings["--optimizer"][0] == "adamw" and settings["--clip-grad"] == ("3.0", "DINO")
    assert settings["--weight-decay"][0] == "0.04" and settings["--weight-decay-end"][0] == "0.4"
    assert settings["--dino-teacher-temp"][0] == "0.07" and settings["--freeze-last-layer"][0] == "1"
    assert "--no-head-bn" in settings and "--local-weight" in settings
    assert settings["--local-grid"][0] == "4"  # the paper's CIFAR ResNet-18 map: 4x4 local vectors
    assert "--local-grid" not in dict((f, v) for f, v, _ in recipe_settings("cifar10", "dino", "vit_small"))
    big = dict((f, v) for f, v, _ in recipe_settings("imagenet100", "co-dino", "vit_base"))
    assert big["--dino-prototypes"] == "65536" and big["--vit-patch-size"] == "16" and big["--ema"] == "0.996"
    assert big["--local-grid"] == "7"
    for name in ("cifar10", "imagenet100"):
        for method in METHODS:
            rows = recipe_settings(name, method, "vit_small")
            assert all(source for _, _, source in rows), (name, method)
            from co_ssl_train.cli import build_parser
            build_parser().parse_args(["train", *recipe_args(name, method, "vit_small")])  # every flag exists
    with pytest.raises(UserError, match="no ViT variant"):
        recipe_settings("imagenet1k", "co-dino", "vit_small")


@pytest.mark.slow
def test_vit_kill_9_then_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    """co-dino on a tiny ViT with DINO's ViT-S head settings (stochastic depth, trained g), killed with
    SIGKILL at random moments of training (each kill lands after the run has checkpointed a new step and
    before its end: checked) and resumed each time, ends with exactly the weights, teacher, heads and
    optimizer state of a run that was never interrupted."""
    import json
    import random
    import subprocess
    import sys
    import time

    from co_ssl_train.checkpoint import load_run_encoder, load_state

    total = 32  # 256 images / 16 per batch * 2 epochs

    def args(name: str) -> list[str]:
        return [sys.executable, "-m", "co_ssl_train", "--method", "co-dino", "--dataset", "synthetic", "--arch",
                "vit_tiny", "--vit-patch-size", "8", "--vit-dim", "24", "--vit-depth", "2", "--vit-heads", "2",
                "--proj-hidden", "32", "--proj-dim", "16", "--dino-prototypes", "32", "--no-head-bn",
                "--drop-path", "0.1", "--local-positions", "5", "--no-norm-last-layer", "--optimizer", "adamw", "--lr", "1e-3",
                "--clip-grad", "3", "--freeze-last-layer", "1", "--batch-size", "16", "--subset", "256",
                "--epochs", "2", "--save-every", "1", "--no-progress", "--device", "cpu", "--threads", "1",
                "--out", str(tmp_path), "--run-name", name, "--resume"]

    def meta_step() -> int:
        try:
            return int(json.loads((run / "meta.json").read_text())["step"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return 0

    rng = random.Random(0)
    run = tmp_path / "k"
    done_steps = 0
    for _ in range(3):
        proc = subprocess.Popen(args("k"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while meta_step() <= done_steps and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))  # inside a step or a checkpoint write
        proc.kill()
        proc.wait()
        load_run_encoder(run)  # whatever the moment, the run directory loads
        step = int(load_state(run)["step"])
        assert done_steps < step < total, (done_steps, step)  # this process trained, and was killed mid-run
        done_steps = step
    for name in ("k", "straight"):
        done = subprocess.run(args(name), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    assert int(load_state(run)["step"]) == total
    a = load_file(str(tmp_path / "straight" / "encoder.safetensors"))
    b = load_file(str(run / "encoder.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = load_state(tmp_path / "straight"), load_state(run)
    assert sa["method"].keys() == sb["method"].keys() and "head.prototypes_g" in sa["method"]
    assert all(torch.equal(sa["method"][k], sb["method"][k]) for k in sa["method"])
    moments = [(sa["optimizer"]["state"][i], sb["optimizer"]["state"][i]) for i in sa["optimizer"]["state"]]
    assert moments and all(torch.equal(x[k], y[k]) for x, y in moments for k in x)  # AdamW's step and moments
    assert torch.equal(sa["rng"]["torch"], sb["rng"]["torch"])  # drop path's draws: the same stream
