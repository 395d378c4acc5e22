"""Learning-rate schedules: frozen dataclasses, ``schedule(step) -> lr`` for ``step = 0, 1, 2, ...``.

The training loop sets ``optimizer.lr = schedule(step)`` before each update. Every schedule
round-trips through JSON with ``to_dict()`` / ``Schedule.from_dict(d)``; ``make_schedule(name, **kw)``
builds one by its registry name.

>>> s = make_schedule("step", lr=0.1, step_size=10, gamma=0.5)
>>> s(0), s(9), s(10), s(25)
(0.1, 0.1, 0.05, 0.025)
>>> Schedule.from_dict(s.to_dict()) == s
True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from seqmodels.core.errors import ConfigError, check_choice, check_positive_int

__all__ = ["Schedule", "Constant", "StepDecay", "ExponentialDecay", "CosineDecay", "SCHEDULES",
           "make_schedule"]


def _float(name: str, value, low: float, high: float = math.inf, *, low_open: bool = True) -> float:
    """``value`` as a finite float in (low, high] (or [low, high] with ``low_open=False``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    ok = math.isfinite(v) and (v > low if low_open else v >= low) and v <= high
    if isinstance(value, bool) or not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{']' if math.isfinite(high) else ')'}"
        raise ConfigError(f"{name}: expected a finite number in {interval}, got {value!r}")
    return v


@dataclass(frozen=True)
class Schedule:
    """Base class. Subclasses set ``name`` and implement ``_lr(step)``."""

    name: ClassVar[str] = ""

    def __call__(self, step: int) -> float:
        """The learning rate for 0-based ``step`` (an integer >= 0)."""
        return self._lr(check_positive_int("step", step, allow_zero=True))

    def _lr(self, step: int) -> float:
        raise NotImplementedError

    def _set(self, field: str, value) -> None:
        object.__setattr__(self, field, value)          # normalise a field of a frozen instance

    def to_dict(self) -> dict[str, Any]:
        """JSON-able ``{"name": ..., <fields>}``."""
        return {"name": self.name, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Schedule:
        """Inverse of :meth:`to_dict`; on a subclass, ``d["name"]`` must be that subclass's name."""
        if not isinstance(d, Mapping) or "name" not in d:
            raise ConfigError(f"schedule: expected a mapping with a 'name' key, got {d!r}")
        kw = dict(d)
        name = kw.pop("name")
        if cls is not Schedule and name != cls.name:
            raise ConfigError(f"schedule name: expected {cls.name!r} for {cls.__name__}, got {name!r}")
        return make_schedule(name, **kw)


@dataclass(frozen=True)
class Constant(Schedule):
    """``lr_t = lr``.

    >>> Constant(0.01)(1000)
    0.01
    """

    name: ClassVar[str] = "constant"
    lr: float

    def __post_init__(self):
        self._set("lr", _float("lr", self.lr, 0.0))

    def _lr(self, step):
        return self.lr


@dataclass(frozen=True)
class StepDecay(Schedule):
    """``lr_t = lr · gamma ^ floor(t / step_size)``.

    >>> StepDecay(1.0, step_size=2, gamma=0.5)(5)
    0.25
    """

    name: ClassVar[str] = "step"
    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        self._set("lr", _float("lr", self.lr, 0.0))
        self._set("step_size", check_positive_int("step_size", self.step_size))
        self._set("gamma", _float("gamma", self.gamma, 0.0, 1.0))

    def _lr(self, step):
        return self.lr * self.gamma ** (step // self.step_size)


@dataclass(frozen=True)
class ExponentialDecay(Schedule):
    """``lr_t = lr · gamma ^ (t / decay_steps)`` (smooth; multiplied by ``gamma`` every ``decay_steps``).

    >>> ExponentialDecay(1.0, gamma=0.25, decay_steps=2)(1)
    0.5
    """

    name: ClassVar[str] = "exponential"
    lr: float
    gamma: float
    decay_steps: int = 1

    def __post_init__(self):
        self._set("lr", _float("lr", self.lr, 0.0))
        self._set("gamma", _float("gamma", self.gamma, 0.0, 1.0))
        self._set("decay_steps", check_positive_int("decay_steps", self.decay_steps))

    def _lr(self, step):
        return self.lr * self.gamma ** (step / self.decay_steps)


@dataclass(frozen=True)
class CosineDecay(Schedule):
    """Linear warmup, then half a cosine from ``lr`` down to ``min_lr`` at ``total_steps``.

    ``t < W``:  ``lr_t = lr · (t + 1) / W``   (``W = warmup_steps``; reaches ``lr`` at ``t = W - 1``)
    ``t >= W``: ``lr_t = min_lr + ½ (lr - min_lr) (1 + cos(π · min(1, (t - W) / (total_steps - W))))``

    >>> s = CosineDecay(1.0, total_steps=10, warmup_steps=2)
    >>> s(0), s(1), s(2), s(6), s(10), s(99)
    (0.5, 1.0, 1.0, 0.5, 0.0, 0.0)
    """

    name: ClassVar[str] = "cosine"
    lr: float
    total_steps: int
    min_lr: float = 0.0
    warmup_steps: int = 0

    def __post_init__(self):
        self._set("lr", _float("lr", self.lr, 0.0))
        self._set("total_steps", check_positive_int("total_steps", self.total_steps))
        self._set("min_lr", _float("min_lr", self.min_lr, 0.0, self.lr, low_open=False))
        self._set("warmup_steps", check_positive_int("warmup_steps", self.warmup_steps, allow_zero=True))
        if self.warmup_steps >= self.total_steps:
            raise ConfigError(f"warmup_steps: expected fewer than total_steps={self.total_steps}, "
                              f"got {self.warmup_steps}")

    def _lr(self, step):
        W = self.warmup_steps
        if step < W:
            return self.lr * (step + 1) / W                          # linear warmup
        progress = min(1.0, (step - W) / (self.total_steps - W))
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))


SCHEDULES: dict[str, type[Schedule]] = {
    "constant": Constant, "step": StepDecay, "exponential": ExponentialDecay, "cosine": CosineDecay,
}


def make_schedule(name: str, **kw) -> Schedule:
    """Build the schedule registered as ``name`` (a key of ``SCHEDULES``) from keyword fields.

    >>> make_schedule("cosine", lr=0.1, total_steps=100, warmup_steps=10)(9)
    0.1
    """
    check_choice("schedule", name, tuple(SCHEDULES))
    cls = SCHEDULES[name]
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(kw) - set(fields))
    if unknown:
        raise ConfigError(f"{name} schedule: unknown field(s) {unknown}; expected some of {fields}")
    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in kw and f.default is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{name} schedule: missing required field(s) {missing}")
    return cls(**kw)
