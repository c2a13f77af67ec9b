"""The per-step schedules at known points: step 0, the end of warm-up, the last step."""

from __future__ import annotations

import math

import pytest

from co_ssl_train.schedules import cosine, ema_momentum, warmup_cosine


def test_warmup_cosine_at_step_zero_the_end_of_warmup_and_the_end():
    lr = warmup_cosine(1.0, 0.1, total_steps=100, warmup_steps=10)
    assert lr.shape == (100,)
    assert lr[0] == pytest.approx(0.1)  # the first of 10 linear steps from 0 to 1
    assert lr[9] == pytest.approx(1.0)  # the end of warm-up reaches the base value
    assert lr[10] == pytest.approx(1.0)  # the cosine starts at the base value
    assert lr[55] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 45 / 90)))  # the half-way point: 0.55
    assert lr[99] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 89 / 90)))
    assert 0.1 < lr[99] < 0.101  # just above the final value, never below it
    assert all(a >= b for a, b in zip(lr[10:].tolist(), lr[11:].tolist()))


def test_warmup_cosine_without_warmup_and_with_a_warmup_longer_than_training():
    assert warmup_cosine(2.0, 0.0, 4)[0] == pytest.approx(2.0)
    lr = warmup_cosine(1.0, 0.0, total_steps=4, warmup_steps=10, warmup_start=0.2)
    assert lr.tolist() == pytest.approx([0.4, 0.6, 0.8, 1.0])  # warm-up clipped to the run


def test_cosine_and_the_ema_momentum_rise_from_base_towards_the_end():
    assert cosine(0.04, 0.04, 7).tolist() == pytest.approx([0.04] * 7)
    wd = cosine(0.04, 0.4, 10)
    assert wd[0] == pytest.approx(0.04) and wd[5] == pytest.approx(0.22)
    m = ema_momentum(0.99, 1000)
    assert m[0] == pytest.approx(0.99)
    assert m[500] == pytest.approx(0.995)  # BYOL: 1 - (1 - 0.99) (cos(pi / 2) + 1) / 2
    assert m[999] == pytest.approx(1 - 0.01 * (math.cos(math.pi * 999 / 1000) + 1) / 2)
    assert m[999] < 1.0
    assert ema_momentum(0.9, 3, end=0.9).tolist() == pytest.approx([0.9] * 3)
