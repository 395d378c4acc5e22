"""The optional accelerator's switch, and the training step's element-wise work spread over the cores.

``pip install seqmodels[fast]`` (numba) compiles the hot loops: the cells' time loops
(:mod:`seqmodels.cells.fast`) and, here, the element-wise passes of a training step that NumPy makes
in many sweeps over memory on one core — the softmax cross-entropy over the logits (max, exp, sum,
log and gradient of a row in one pass over it) and the Adam update (one pass over ``p, g, m, v``).
These kernels release the GIL, and :func:`parallel_for` runs them over as many threads as NumPy's
BLAS uses (``--threads``), in slices of the rows/elements: at PTB sizes (V = 10,000) the softmax and
the optimiser are a third of a step and would otherwise stay on one core while the GEMMs use all.

One switch covers every compiled path: on when numba is importable, off with ``SEQMODELS_FAST=0`` or
:func:`set_enabled(False) <set_enabled>`; float32 only by default (float64 — gradient checks — stays
on NumPy unless :func:`seqmodels.cells.fast.enabled` widens the dtypes). Without numba everything
runs in NumPy, unchanged, and the tests require both to agree.

>>> isinstance(available(), bool)
True
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import blas

__all__ = ["available", "is_enabled", "set_enabled", "kernels", "parallel_for", "on_threads", "why_unavailable"]

#: the one switch of every compiled path (the cells' loops read it too)
FLAG = {"on": os.environ.get("SEQMODELS_FAST", "1").strip().lower() not in ("0", "false", "no", "off"),
        "dtypes": (np.dtype(np.float32),)}
_pool: dict = {}
if hasattr(os, "register_at_fork"):                 # a forked child has the pool but not its threads
    os.register_at_fork(after_in_child=_pool.clear)

#: elements below which a kernel runs on the calling thread alone (a thread hand-off costs ~20 µs)
PARALLEL_MIN = 1 << 17


class OptionalModule:
    """A compiled-kernel module imported on first use; remembers why it could not be (no numba, no BLAS)."""

    def __init__(self, load):
        self._load = load
        self._tried = False
        self._module = self._why = None

    def get(self):
        """The module, or None when it cannot be loaded here."""
        if not self._tried:
            self._tried = True
            try:
                self._module = self._load()
            except Exception as e:                  # ImportError, or numba/the BLAS failing to start
                self._why = f"{type(e).__name__}: {e}"
        return self._module

    def available(self) -> bool:
        """True when the module can be loaded here (numba installed, NumPy's BLAS bound)."""
        return self.get() is not None

    def why(self) -> str | None:
        self.get()
        return self._why

    def is_enabled(self) -> bool:
        """Switched on (:data:`FLAG`) and loadable."""
        return FLAG["on"] and self.get() is not None

    def for_dtype(self, dtype):
        """The module when switched on, loadable and ``dtype`` is one the compiled paths take; else None."""
        if not FLAG["on"] or np.dtype(dtype) not in FLAG["dtypes"]:
            return None
        return self.get()


def _load_elementwise():
    from . import accel_kernels
    if accel_kernels.numba is None:
        raise ImportError("numba is not installed (pip install 'seqmodels[fast]')")
    return accel_kernels


_ELEMENTWISE = OptionalModule(_load_elementwise)


# the element-wise kernels' state, as for every optional module (see OptionalModule)
available, why_unavailable, is_enabled = _ELEMENTWISE.available, _ELEMENTWISE.why, _ELEMENTWISE.is_enabled


def set_enabled(flag: bool) -> bool:
    """Switch every compiled path on or off for this process; returns the previous setting."""
    before = FLAG["on"]
    FLAG["on"] = bool(flag)
    return before


def kernels(dtype):
    """The compiled element-wise kernels when on, available and ``dtype`` is enabled; else None."""
    return _ELEMENTWISE.for_dtype(dtype)


def threads() -> int:
    """How many threads the element-wise kernels use: NumPy's BLAS's count (1 when unknown)."""
    n = blas.get_num_threads()
    return max(1, n or 1)


def parallel_for(n: int, fn, *args, cost: int | None = None, with_part: bool = False) -> list:
    """``fn(lo, hi, *args)`` over ``[0, n)`` cut into one slice per thread; returns their results.

    ``fn`` must release the GIL (a ``nogil`` compiled kernel) and write disjoint parts of its
    outputs for disjoint ranges. The calling thread runs the first slice itself; work of fewer than
    ``PARALLEL_MIN`` elements (``cost``, default ``n``) or one thread runs in one call. With
    ``with_part`` the slice's index comes third, ``fn(lo, hi, part, *args)``, for per-thread partial
    results (``part < parts_for(n, cost)``).
    """
    k = parts_for(n, cost)
    bounds = [n * i // k for i in range(k + 1)]
    calls = [(bounds[i], bounds[i + 1], *((i,) if with_part else ()), *args) for i in range(k)]
    if k == 1:
        return [fn(*calls[0])]
    return _on_threads(fn, calls)


def on_threads(k: int, fn, *args) -> list:
    """``fn(i, *args)`` for i in ``range(k)``, each on its own thread at the same time (the caller's is
    i = 0); returns their results, or raises the first call's exception after all have returned."""
    return _on_threads(fn, [(i, *args) for i in range(k)])


def _on_threads(fn, calls: list) -> list:
    k = len(calls)
    if k == 1:
        return [fn(*calls[0])]
    pool = _pool.get(k)
    if pool is None:
        pool = _pool[k] = ThreadPoolExecutor(max_workers=k - 1, thread_name_prefix="seqmodels")
    futures = [pool.submit(fn, *c) for c in calls[1:]]
    try:
        first = fn(*calls[0])
    finally:
        rest = [f.exception() for f in futures]              # every thread has returned
    for e in rest:
        if e is not None:
            raise e
    return [first] + [f.result() for f in futures]


def parts_for(n: int, cost: int | None = None) -> int:
    """How many slices :func:`parallel_for` cuts ``n`` items of work ``cost`` into."""
    k = min(threads(), n)
    return 1 if k <= 1 or (n if cost is None else cost) < PARALLEL_MIN else k
