"""Batched device augmentation: identity settings give the input back, and parameters are per image."""

from __future__ import annotations

import torch

from co_ssl_train.data.augment import ViewAugment, augment_batch, byol_views

IDENTITY = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grey_p=0.0, blur_p=0.0, solarize_p=0.0)


def _images(n=8, size=32):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def test_identity_settings_return_the_images():
    x = _images()
    out = augment_batch(x, ViewAugment(32, **IDENTITY), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x.float() / 255, atol=1e-5, rtol=0)


def test_certain_flip_mirrors_every_image():
    x = _images()
    out = augment_batch(x, ViewAugment(32, **{**IDENTITY, "flip_p": 1.0}), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x.float().flip(-1) / 255, atol=1e-5, rtol=0)


def test_certain_grey_and_solarize_follow_their_formulas():
    x = _images()
    grey = augment_batch(x, ViewAugment(32, **{**IDENTITY, "grey_p": 1.0}), torch.Generator().manual_seed(0))
    expected = (x.float() / 255 * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    torch.testing.assert_close(grey, expected.expand_as(grey), atol=1e-5, rtol=0)
    sol = augment_batch(x, ViewAugment(32, **{**IDENTITY, "solarize_p": 1.0}), torch.Generator().manual_seed(0))
    xf = x.float() / 255
    torch.testing.assert_close(sol, torch.where(xf >= 0.5, 1 - xf, xf), atol=1e-5, rtol=0)


def test_parameters_differ_per_image():
    x = _images(1).expand(16, -1, -1, -1).contiguous()  # 16 copies of one image
    v1, _ = byol_views(32, blur=True)
    out = augment_batch(x, v1, torch.Generator().manual_seed(0))
    distinct = {tuple(o.flatten()[:64].tolist()) for o in out}
    assert len(distinct) == 16


def test_same_seed_same_views_and_range():
    x = _images()
    for view in byol_views(32, blur=True):
        a = augment_batch(x, view, torch.Generator().manual_seed(3))
        b = augment_batch(x, view, torch.Generator().manual_seed(3))
        assert torch.equal(a, b)
        assert a.shape == (8, 3, 32, 32) and a.min() >= 0 and a.max() <= 1


def test_blur_keeps_constant_images_constant():
    x = torch.full((4, 3, 32, 32), 100, dtype=torch.uint8)
    out = augment_batch(x, ViewAugment(32, **{**IDENTITY, "blur_p": 1.0}), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, torch.full_like(out, 100 / 255), atol=1e-5, rtol=0)


def test_each_random_choice_is_drawn_per_image():
    """With probability 0.5, a batch of copies of one image must come out partly transformed and partly
    not: one parameter set for the whole batch would transform all copies or none."""
    x = _images(1).expand(64, -1, -1, -1).contiguous()
    plain = x.float() / 255
    for option in ("flip_p", "grey_p", "solarize_p"):
        out = augment_batch(x, ViewAugment(32, **{**IDENTITY, option: 0.5}), torch.Generator().manual_seed(0))
        changed = (out - plain).flatten(1).abs().amax(1) > 1e-4
        assert 10 < int(changed.sum()) < 54, option
    jitter = augment_batch(x, ViewAugment(32, **{**IDENTITY, "jitter_p": 1.0}), torch.Generator().manual_seed(0))
    assert len({round(float(v), 4) for v in jitter.mean(dim=(1, 2, 3))}) == 64  # a brightness/contrast per image
    crops = augment_batch(x, ViewAugment(32, **{**IDENTITY, "scale": (0.1, 0.5)}), torch.Generator().manual_seed(0))
    assert len({tuple(c.flatten()[:32].tolist()) for c in crops}) == 64


def test_repeated_batches_get_independent_views():
    """Multi-crop and BagSSL augment the batch repeated `count` times in one call: every copy differs."""
    from co_ssl_train.batches import make_views

    x = _images(4)
    views = make_views(x, [(ViewAugment(12, scale=(0.05, 0.4)), 3)], torch.Generator().manual_seed(0),
                       channels_last=False)
    assert len(views) == 3 and all(v.shape == (4, 3, 12, 12) for v in views)
    assert not torch.equal(views[0], views[1]) and not torch.equal(views[1], views[2])
