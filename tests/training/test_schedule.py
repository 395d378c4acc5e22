"""Tests for seqmodels.training.schedule."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqmodels.core.errors import ConfigError, DTypeError, SeqModelsError
from seqmodels.training.optim import SGD
from seqmodels.training.schedule import (
    SCHEDULES,
    Constant,
    CosineDecay,
    ExponentialDecay,
    Schedule,
    StepDecay,
    make_schedule,
)

EXAMPLES = [
    Constant(0.1),
    StepDecay(0.1, step_size=3, gamma=0.5),
    ExponentialDecay(0.2, gamma=0.9, decay_steps=5),
    CosineDecay(0.3, total_steps=50, min_lr=0.01, warmup_steps=5),
]


def test_constant_and_step_decay_by_hand():
    assert [Constant(0.1)(t) for t in (0, 1, 10_000)] == [0.1, 0.1, 0.1]
    s = StepDecay(1.0, step_size=3, gamma=0.5)
    assert [s(t) for t in range(8)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert StepDecay(0.1, step_size=2)(4) == pytest.approx(0.001, rel=1e-12)   # default gamma 0.1


def test_exponential_decay_by_hand():
    s = ExponentialDecay(2.0, gamma=0.25, decay_steps=2)
    assert [s(t) for t in (0, 1, 2, 4)] == pytest.approx([2.0, 1.0, 0.5, 0.125], rel=1e-15)
    assert ExponentialDecay(1.0, gamma=0.9)(3) == pytest.approx(0.729, rel=1e-15)


def test_cosine_decay_by_hand():
    s = CosineDecay(1.0, total_steps=10)
    assert s(0) == 1.0
    assert s(5) == pytest.approx(0.5, abs=1e-15)
    assert s(10) == pytest.approx(0.0, abs=1e-15)
    assert s(2) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)), rel=1e-15)
    w = CosineDecay(1.0, total_steps=12, min_lr=0.2, warmup_steps=4)
    assert [w(t) for t in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert w(4) == 1.0
    assert w(8) == pytest.approx(0.6, rel=1e-15)           # halfway: min + (lr - min) / 2
    assert w(12) == pytest.approx(0.2, rel=1e-15) and w(1000) == pytest.approx(0.2, rel=1e-15)


@settings(max_examples=50, deadline=None)
@given(st.floats(1e-5, 10), st.integers(1, 200), st.integers(0, 199), st.floats(0, 1))
def test_cosine_bounds_and_monotone_after_warmup(lr, total, warmup, frac):
    warmup = warmup % total
    s = CosineDecay(lr, total_steps=total, min_lr=lr * frac, warmup_steps=warmup)
    values = [s(t) for t in range(total + 3)]
    assert all(0 < v <= lr * (1 + 1e-12) for v in values[:total])
    assert all(v >= lr * frac * (1 - 1e-12) for v in values[warmup:])
    assert all(b <= a * (1 + 1e-12) for a, b in zip(values[warmup:], values[warmup + 1:]))
    assert all(b >= a for a, b in zip(values[:warmup], values[1:warmup]))


@pytest.mark.parametrize("schedule", EXAMPLES, ids=lambda s: s.name)
def test_json_round_trip(schedule):
    d = json.loads(json.dumps(schedule.to_dict()))
    assert d["name"] == schedule.name
    back = Schedule.from_dict(d)
    assert back == schedule and type(back) is type(schedule)
    assert type(schedule).from_dict(d) == schedule
    assert [back(t) for t in range(60)] == [schedule(t) for t in range(60)]
    assert make_schedule(**d) == schedule


def test_numpy_scalars_are_normalised_for_json():
    s = StepDecay(np.float32(0.5), step_size=np.int64(3), gamma=np.float64(0.5))
    assert json.dumps(s.to_dict()) == '{"name": "step", "lr": 0.5, "step_size": 3, "gamma": 0.5}'
    assert type(s.step_size) is int


def test_frozen_and_registry():
    with pytest.raises(dataclasses.FrozenInstanceError):
        EXAMPLES[0].lr = 1.0
    assert SCHEDULES == {"constant": Constant, "step": StepDecay, "exponential": ExponentialDecay,
                         "cosine": CosineDecay}
    assert all(cls.name == name for name, cls in SCHEDULES.items())


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Constant(0.0), "lr"),
        (lambda: Constant(float("nan")), "lr"),
        (lambda: Constant("x"), "lr"),
        (lambda: StepDecay(0.1, step_size=0), "step_size"),
        (lambda: StepDecay(0.1, step_size=2, gamma=0.0), "gamma"),
        (lambda: StepDecay(0.1, step_size=2, gamma=1.5), "gamma"),
        (lambda: ExponentialDecay(0.1, gamma=-0.5), "gamma"),
        (lambda: ExponentialDecay(0.1, gamma=0.5, decay_steps=0), "decay_steps"),
        (lambda: CosineDecay(0.1, total_steps=0), "total_steps"),
        (lambda: CosineDecay(0.1, total_steps=10, warmup_steps=10), "warmup_steps"),
        (lambda: CosineDecay(0.1, total_steps=10, min_lr=0.2), "min_lr"),
        (lambda: CosineDecay(0.1, total_steps=10, min_lr=-0.1), "min_lr"),
    ],
)
def test_invalid_fields(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_invalid_types_and_steps():
    with pytest.raises(DTypeError, match="step_size"):
        StepDecay(0.1, step_size=1.5)
    with pytest.raises(ConfigError, match="step"):
        Constant(0.1)(-1)
    with pytest.raises(DTypeError, match="step"):
        Constant(0.1)(1.5)


def test_make_schedule_and_from_dict_errors():
    with pytest.raises(ConfigError, match="'linear'"):
        make_schedule("linear", lr=0.1)
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['decay'\]"):
        make_schedule("step", lr=0.1, step_size=2, decay=0.5)
    with pytest.raises(ConfigError, match=r"missing required field\(s\) \['step_size'\]"):
        make_schedule("step", lr=0.1)
    with pytest.raises(ConfigError, match="'name'"):
        Schedule.from_dict({"lr": 0.1})
    with pytest.raises(ConfigError, match="'constant'"):
        StepDecay.from_dict({"name": "constant", "lr": 0.1})
    with pytest.raises(SeqModelsError):
        Schedule.from_dict({"name": "constant", "lr": -1})


def test_schedule_drives_optimizer_to_zero():
    p, g = np.zeros(1), np.ones(1)
    schedule = CosineDecay(0.5, total_steps=4)
    opt = SGD({"w": p}, {"w": g}, lr=schedule(0))
    for t in range(5):
        opt.lr = schedule(t)
        opt.step()
    expected = -sum(schedule(t) for t in range(5))
    assert opt.lr == 0.0
    assert p[0] == pytest.approx(expected, rel=1e-15)
