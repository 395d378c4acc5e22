"""Optimisers: update parameter arrays in place from their gradients.

An optimiser holds a ``params`` mapping and a ``grads`` mapping (same keys, same shapes; a model's
``params`` / ``grads``). ``step()`` reads each gradient array as it is *now* and writes into each
parameter array in place, because parameters are views into fused weight matrices; the mappings are
looked up again at every step, so a model that swaps an array in its mapping is followed. Gradients
are never modified (weight decay goes through a scratch buffer). Slot arrays (momentum, running
averages) have their parameter's dtype. Update rules and defaults follow PyTorch's, written with
``g`` for the gradient after weight decay and ``t`` for the 1-based step count.

>>> import numpy as np
>>> W = np.ones((2, 3)); dW = np.full((2, 3), 0.5)
>>> opt = make_optimizer("sgd", {"W": W}, {"W": dW}, lr=0.1)
>>> opt.step()
>>> W[0].tolist()
[0.95, 0.95, 0.95]
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np

from seqmodels.core import accel
from seqmodels.core.errors import CheckpointError, ConfigError, DTypeError, ShapeError, check_choice

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSProp", "Adam", "OPTIMIZERS", "make_optimizer"]

STATE_VERSION = 1


def _check(name: str, value, low: float, high: float = math.inf, *, closed_low: bool = True) -> float:
    """``value`` as a finite float in [low, high) (or (low, high) with ``closed_low=False``)."""
    try:
        v = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and (v >= low if closed_low else v > low) and v < high):
        interval = f"{'[' if closed_low else '('}{low}, {high})"
        raise ConfigError(f"{name}: expected a finite number in {interval}, got {value!r}")
    return v


def _check_lr(value, *, allow_zero: bool = False) -> float:
    return _check("lr", value, 0.0, closed_low=allow_zero)


def _check_arrays(params, grads) -> tuple[str, ...]:
    """Validate the two mappings once; return the keys in order."""
    for name, m in (("params", params), ("grads", grads)):
        if not isinstance(m, Mapping):
            raise DTypeError(f"{name}: expected a mapping of name -> np.ndarray, got {type(m).__name__}")
    keys = tuple(params)
    if not keys:
        raise ConfigError("params: expected at least one parameter, got an empty mapping")
    missing, extra = [k for k in keys if k not in grads], [k for k in grads if k not in params]
    if missing or extra:
        raise ConfigError(f"grads: expected the same keys as params; missing {missing}, unexpected {extra}")
    for k in keys:
        p, g = params[k], grads[k]
        for name, a in ((f"params[{k!r}]", p), (f"grads[{k!r}]", g)):
            if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
                what = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
                raise DTypeError(f"{name}: expected a floating-point np.ndarray, got {what}")
        if not p.flags.writeable:
            raise ConfigError(f"params[{k!r}]: expected a writeable array (updates are in place), got a read-only one")
        if g.shape != p.shape:
            raise ShapeError(f"grads[{k!r}]: expected shape {p.shape} (the parameter's), got {g.shape}")
    return keys


class Optimizer:
    """Base class: validation, scratch buffers, the step loop and checkpoint state.

    Subclasses set ``name``, validate their hyperparameters, then call ``Optimizer.__init__``;
    they implement ``_slot_names()``, ``hyperparameters()`` and ``_update(p, g, tmp, slots)``.

    Attributes: ``lr`` (settable; a schedule may set it to any finite value >= 0),
    ``weight_decay`` (L2: ``g = grad + weight_decay * p``), ``step_count`` (steps taken).
    """

    name: ClassVar[str] = ""
    _decoupled: bool = False    # True: weight decay shrinks p directly instead of adding λ p to g

    def __init__(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray], lr: float,
                 weight_decay: float = 0.0) -> None:
        self._keys = _check_arrays(params, grads)
        self._params, self._grads = params, grads
        self._lr = _check_lr(lr)
        self.weight_decay = _check("weight_decay", weight_decay, 0.0)
        self.step_count = 0
        self._shapes = {k: params[k].shape for k in self._keys}
        self._slots = {s: {k: np.zeros(params[k].shape, params[k].dtype) for k in self._keys}
                       for s in self._slot_names()}
        self._slots_of = {k: [slot[k] for slot in self._slots.values()] for k in self._keys}
        self._scratch = self._make_scratch(params)
        self.average, self._avg, self.average_applied = 0.0, None, False

    def _make_scratch(self, params) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Two flat buffers per dtype, sized for the largest parameter; per-key shaped views."""
        size: dict[np.dtype, int] = {}
        for k in self._keys:
            size[params[k].dtype] = max(size.get(params[k].dtype, 0), params[k].size)
        flat = {dt: (np.empty(n, dt), np.empty(n, dt)) for dt, n in size.items()}
        views = {}
        for k in self._keys:
            p = params[k]
            a, b = flat[p.dtype]
            views[k] = (a[:p.size].reshape(p.shape), b[:p.size].reshape(p.shape))
        return views

    # -- hyperparameters
    @property
    def lr(self) -> float:
        """The learning rate used by the next ``step()``."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _check_lr(value, allow_zero=True)

    def _slot_names(self) -> tuple[str, ...]:
        return ()

    def hyperparameters(self) -> dict[str, Any]:
        """JSON-able constructor keywords: ``make_optimizer(name, p, g, **opt.hyperparameters())``."""
        hyper = {"lr": self._lr, "weight_decay": self.weight_decay}
        if self._avg is not None:
            hyper["average"] = self.average
        return hyper

    # -- the update
    def zero_grad(self) -> None:
        """Fill every gradient array with zeros, in place."""
        accel.zero(self._grads[k] for k in self._keys)

    def step(self) -> None:
        """Apply one update to every parameter, in place (``step_count`` += 1 first)."""
        self.step_count += 1
        self._begin_step()
        wd = self.weight_decay
        shrink = 1.0 - self._lr * wd
        for k in self._keys:
            p, g = self._params[k], self._grads[k]
            if p.shape != self._shapes[k] or g.shape != p.shape:
                raise ShapeError(f"params/grads[{k!r}]: expected shape {self._shapes[k]}, "
                                 f"got {p.shape} / {g.shape}")
            tmp, tmp2 = self._scratch[k]
            if wd and self._decoupled:
                p *= shrink                             # p ← p (1 - lr λ)
            elif wd:
                np.multiply(p, wd, out=tmp)
                tmp += g                                # g = grad + λ p
                g = tmp
            self._update(p, g, tmp2, self._slots_of[k])
        if self._avg is not None:
            d = min(self.average, (1.0 + self.step_count) / (10.0 + self.step_count))
            for k in self._keys:
                avg, tmp = self._avg[k], self._scratch[k][0]
                np.subtract(self._params[k], avg, out=tmp)
                tmp *= 1.0 - d
                avg += tmp                              # avg ← d avg + (1 - d) p

    def _begin_step(self) -> None:
        """Per-step scalars (bias corrections) computed once, before the per-parameter loop."""

    def _update(self, p: np.ndarray, g: np.ndarray, tmp: np.ndarray, slots: list[np.ndarray]) -> None:
        raise NotImplementedError

    # -- weight averaging (Polyak / exponential moving average of the weights)
    def enable_average(self, decay: float) -> None:
        """Keep an exponential moving average of the weights, updated after every step:
        ``avg ← d avg + (1 - d) p`` with ``d = min(decay, (1 + t) / (10 + t))`` at step t (early steps
        follow the weights closely instead of remembering the random start). The average usually scores
        better and varies less from evaluation to evaluation than the weights themselves; see
        :meth:`averaged` and :meth:`apply_average`."""
        self.average = _check("average", decay, 0.0, 1.0, closed_low=False)
        if self.average >= 1.0:
            raise ConfigError(f"average: expected a decay in (0, 1), e.g. 0.999, got {decay!r}")
        self._avg = {k: self._params[k].copy() for k in self._keys}

    @contextmanager
    def averaged(self):
        """Within the block the parameters hold the averaged weights (no-op without averaging)."""
        if self._avg is None:
            yield
            return
        self._swap_average()
        try:
            yield
        finally:
            self._swap_average()

    def apply_average(self) -> None:
        """Leave the averaged weights in the parameters (the end of training); the optimiser keeps the
        trained weights, and :meth:`resume_weights` puts them back to continue training exactly."""
        if self._avg is not None and not self.average_applied:
            self._swap_average()
            self.average_applied = True

    def resume_weights(self) -> None:
        """Undo :meth:`apply_average` (called when training continues)."""
        if self._avg is not None and self.average_applied:
            self._swap_average()
            self.average_applied = False

    def _swap_average(self) -> None:
        for k in self._keys:
            p, avg, tmp = self._params[k], self._avg[k], self._scratch[k][0]
            np.copyto(tmp, p)
            np.copyto(p, avg)
            np.copyto(avg, tmp)

    # -- checkpoints
    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Copies of the slot arrays named ``"<slot>.<param key>"`` (e.g. ``"m.layers.0.W_f"``) and
        JSON-able metadata ``{"name", "version", "step", "hyper"}``."""
        arrays = {f"{s}.{k}": a.copy() for s, slot in self._all_slots().items() for k, a in slot.items()}
        meta = {"name": self.name, "version": STATE_VERSION, "step": self.step_count,
                "hyper": self.hyperparameters()}
        if self._avg is not None:
            meta["average_applied"] = self.average_applied
        return arrays, meta

    def _all_slots(self) -> dict[str, dict[str, np.ndarray]]:
        return self._slots if self._avg is None else {**self._slots, "average": self._avg}

    def load_state_dict(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Restore slot arrays, ``step_count`` and ``lr`` from :meth:`state_dict` output.

        Strict: the optimiser name, the set of array names and every shape must match, otherwise
        :class:`CheckpointError` naming the key; nothing is changed unless everything matches.
        Other hyperparameters come from the constructor (rebuild with ``meta["hyper"]`` to reuse them).
        """
        if not isinstance(meta, Mapping) or meta.get("name") != self.name:
            got = meta.get("name") if isinstance(meta, Mapping) else meta
            raise CheckpointError(f"optimizer state: expected name {self.name!r}, got {got!r}")
        step = meta.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise CheckpointError(f"optimizer state 'step': expected an integer >= 0, got {step!r}")
        hyper = meta.get("hyper", {})
        lr = hyper.get("lr", self._lr) if isinstance(hyper, Mapping) else self._lr
        try:
            lr = _check_lr(lr, allow_zero=True)
        except ConfigError as e:
            raise CheckpointError(f"optimizer state 'hyper.lr': {e}") from None
        expected = {f"{s}.{k}": a for s, slot in self._all_slots().items() for k, a in slot.items()}
        missing = sorted(set(expected) - set(arrays))
        unexpected = sorted(set(arrays) - set(expected))
        if missing or unexpected:
            raise CheckpointError(f"optimizer state: missing arrays {missing}, unexpected arrays {unexpected}")
        for key, slot in expected.items():
            a = np.asarray(arrays[key])
            if a.shape != slot.shape:
                raise CheckpointError(f"optimizer state {key!r}: expected shape {slot.shape}, got {a.shape}")
            if a.dtype.kind != "f":
                raise CheckpointError(f"optimizer state {key!r}: expected floating dtype, got {a.dtype}")
        for key, slot in expected.items():
            np.copyto(slot, arrays[key], casting="same_kind")
        self.step_count, self._lr = step, lr
        self.average_applied = self._avg is not None and bool(meta.get("average_applied", False))

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({len(self._keys)} params, {hyper})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    Without momentum: ``p ← p - lr g``. With momentum μ: ``v ← μ v + g`` then
    ``p ← p - lr v``, or with ``nesterov=True`` ``p ← p - lr (g + μ v)``. Slot: ``"momentum"`` (v).

    >>> W, dW = np.zeros(2), np.ones(2)
    >>> opt = SGD({"W": W}, {"W": dW}, lr=0.5, momentum=0.9)
    >>> opt.step(); opt.step(); W.tolist()
    [-1.45, -1.45]
    """

    name = "sgd"

    def __init__(self, params, grads, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        self.momentum = _check("momentum", momentum, 0.0, 1.0)
        if nesterov and self.momentum == 0:
            raise ConfigError("nesterov: expected momentum > 0 with nesterov=True, got momentum=0")
        self.nesterov = bool(nesterov)
        super().__init__(params, grads, lr, weight_decay)

    def _slot_names(self):
        return ("momentum",) if self.momentum else ()

    def hyperparameters(self):
        return {**super().hyperparameters(), "momentum": self.momentum, "nesterov": self.nesterov}

    def _update(self, p, g, tmp, slots):
        lr, mu = self._lr, self.momentum
        if not mu:
            np.multiply(g, lr, out=tmp)
            p -= tmp                                    # p ← p - lr g
            return
        (v,) = slots
        v *= mu
        v += g                                          # v ← μ v + g
        if self.nesterov:
            np.multiply(v, mu, out=tmp)
            tmp += g                                    # g + μ v
            tmp *= lr
        else:
            np.multiply(v, lr, out=tmp)
        p -= tmp                                        # p ← p - lr (g + μ v)  |  p - lr v


class Adagrad(Optimizer):
    """Adagrad: ``G ← G + g²``; ``p ← p - lr g / (√G + eps)``. Slot: ``"sum"`` (G).

    >>> W, dW = np.zeros(1), np.full(1, 2.0)
    >>> opt = Adagrad({"W": W}, {"W": dW}, lr=0.1); opt.step(); W.round(6).tolist()
    [-0.1]
    """

    name = "adagrad"

    def __init__(self, params, grads, lr: float, eps: float = 1e-10, weight_decay: float = 0.0) -> None:
        self.eps = _check("eps", eps, 0.0, closed_low=False)
        super().__init__(params, grads, lr, weight_decay)

    def _slot_names(self):
        return ("sum",)

    def hyperparameters(self):
        return {**super().hyperparameters(), "eps": self.eps}

    def _update(self, p, g, tmp, slots):
        (G,) = slots
        np.multiply(g, g, out=tmp)
        G += tmp                                        # G ← G + g²
        np.sqrt(G, out=tmp)
        tmp += self.eps                                 # √G + eps
        np.divide(g, tmp, out=tmp)
        tmp *= self._lr
        p -= tmp                                        # p ← p - lr g / (√G + eps)


class RMSProp(Optimizer):
    """RMSProp: ``s ← ρ s + (1 - ρ) g²``; ``u = g / (√s + eps)``; ``p ← p - lr u``, or with
    momentum μ ``b ← μ b + u``; ``p ← p - lr b``. Slots: ``"square_avg"`` (s), ``"momentum"`` (b).

    >>> W, dW = np.zeros(1), np.ones(1)
    >>> opt = RMSProp({"W": W}, {"W": dW}, lr=0.01, rho=0.75); opt.step(); W.round(6).tolist()
    [-0.02]
    """

    name = "rmsprop"

    def __init__(self, params, grads, lr: float, rho: float = 0.9, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        self.rho = _check("rho", rho, 0.0, 1.0)
        self.eps = _check("eps", eps, 0.0, closed_low=False)
        self.momentum = _check("momentum", momentum, 0.0, 1.0)
        super().__init__(params, grads, lr, weight_decay)

    def _slot_names(self):
        return ("square_avg", "momentum") if self.momentum else ("square_avg",)

    def hyperparameters(self):
        return {**super().hyperparameters(), "rho": self.rho, "eps": self.eps, "momentum": self.momentum}

    def _update(self, p, g, tmp, slots):
        s = slots[0]
        s *= self.rho
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - self.rho
        s += tmp                                        # s ← ρ s + (1 - ρ) g²
        np.sqrt(s, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)                      # u = g / (√s + eps)
        if self.momentum:
            b = slots[1]
            b *= self.momentum
            b += tmp                                    # b ← μ b + u
            np.multiply(b, self._lr, out=tmp)
        else:
            tmp *= self._lr
        p -= tmp                                        # p ← p - lr b  |  p - lr u


class Adam(Optimizer):
    """Adam (Kingma & Ba): ``m ← β1 m + (1 - β1) g``; ``v ← β2 v + (1 - β2) g²``;
    ``p ← p - (lr / (1 - β1^t)) m / (√v / √(1 - β2^t) + eps)``. Slots: ``"m"``, ``"v"``.

    ``weight_decay`` is L2 added to the gradient (PyTorch ``Adam``); with
    ``decoupled_weight_decay=True`` it is AdamW's ``p ← p (1 - lr λ)`` before the update instead.

    >>> W, dW = np.zeros(1), np.full(1, 3.0)
    >>> opt = Adam({"W": W}, {"W": dW}, lr=0.1); opt.step(); W.round(6).tolist()
    [-0.1]
    """

    name = "adam"

    def __init__(self, params, grads, lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False) -> None:
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ConfigError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        self.betas = (_check("betas[0]", betas[0], 0.0, 1.0), _check("betas[1]", betas[1], 0.0, 1.0))
        self.eps = _check("eps", eps, 0.0, closed_low=False)
        self.decoupled_weight_decay = self._decoupled = bool(decoupled_weight_decay)
        super().__init__(params, grads, lr, weight_decay)
        self._step_size = self._denom_scale = 1.0

    def _slot_names(self):
        return ("m", "v")

    def hyperparameters(self):
        return {**super().hyperparameters(), "betas": list(self.betas), "eps": self.eps,
                "decoupled_weight_decay": self.decoupled_weight_decay}

    def _begin_step(self):
        t = self.step_count
        b1, b2 = self.betas
        self._step_size = self._lr / (1.0 - b1 ** t)                 # lr / (1 - β1^t)
        self._denom_scale = 1.0 / math.sqrt(1.0 - b2 ** t)           # 1 / √(1 - β2^t)

    def _update(self, p, g, tmp, slots):
        m, v = slots
        b1, b2 = self.betas
        kernels = accel.kernels(p.dtype)
        if kernels is not None and all(a.dtype == p.dtype and a.flags.c_contiguous for a in (p, g, m, v)):
            f = p.dtype.type                            # the constants as NumPy casts them: the same bits
            accel.parallel_for(p.size, kernels.adam_update, p.reshape(-1), g.reshape(-1), m.reshape(-1),
                               v.reshape(-1), f(1.0 - b1), f(b2), f(1.0 - b2), f(self._denom_scale), f(self.eps),
                               f(self._step_size))      # one pass over p, g, m, v (the lines below: nine)
            return
        np.subtract(g, m, out=tmp)
        tmp *= 1.0 - b1
        m += tmp                                        # m ← β1 m + (1 - β1) g
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        v += tmp                                        # v ← β2 v + (1 - β2) g²
        np.sqrt(v, out=tmp)
        tmp *= self._denom_scale
        tmp += self.eps                                 # √v̂ + eps, v̂ = v / (1 - β2^t)
        np.divide(m, tmp, out=tmp)
        tmp *= self._step_size
        p -= tmp                                        # p ← p - lr m̂ / (√v̂ + eps)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSProp, "adam": Adam}


def make_optimizer(name: str, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray],
                   **kw) -> Optimizer:
    """Build the optimiser registered as ``name`` (a key of ``OPTIMIZERS``) with keywords ``kw``.

    Unknown names or keywords raise :class:`ConfigError` listing what is accepted.

    >>> W, dW = np.zeros(1), np.ones(1)
    >>> make_optimizer("adam", {"W": W}, {"W": dW}, lr=1e-3, betas=[0.8, 0.99])
    Adam(1 params, lr=0.001, weight_decay=0.0, betas=[0.8, 0.99], eps=1e-08, decoupled_weight_decay=False)
    """
    check_choice("optimizer", name, tuple(OPTIMIZERS))
    cls = OPTIMIZERS[name]
    kw = dict(kw)
    average = kw.pop("average", None)
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("params", "grads")] + ["average"]
    unknown = sorted(set(kw) - set(accepted))
    if unknown:
        raise ConfigError(f"{name} optimizer: unknown option(s) {unknown}; expected some of {accepted}")
    if "lr" not in kw:
        raise ConfigError(f"{name} optimizer: lr is required, got no lr")
    opt = cls(params, grads, **kw)
    if average is not None:
        opt.enable_average(average)
    return opt
