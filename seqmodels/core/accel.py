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
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import blas

__all__ = ["available", "is_enabled", "set_enabled", "kernels", "threads", "set_threads", "owns_threads", "in_part",
           "parallel_for", "on_threads", "matmul", "gemm_add", "zero", "why_unavailable"]

#: the one switch of every compiled path (the cells' loops read it too)
FLAG = {"on": os.environ.get("SEQMODELS_FAST", "1").strip().lower() not in ("0", "false", "no", "off"),
        "dtypes": (np.dtype(np.float32),)}
_pool: dict = {}
_local = threading.local()                          # .busy: this thread runs a part of a parallel call
#: seqmodels' own thread count (None: follow NumPy's BLAS), and the BLAS's count before set_threads
_OWN: dict = {"threads": None, "blas_before": None}
if hasattr(os, "register_at_fork"):                 # a forked child has the pool but not its threads
    os.register_at_fork(after_in_child=_pool.clear)

#: whether parallel calls go to seqmodels' own watching workers (core/team.py) rather than a thread pool
TEAM = {"on": os.environ.get("SEQMODELS_TEAM", "1").strip().lower() not in ("0", "false", "no", "off")}
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
    """How many threads seqmodels' parallel work uses: its own count when :func:`set_threads` gave one,
    else NumPy's BLAS's count (1 when unknown)."""
    own = _OWN["threads"]
    if own is not None:
        return own
    n = blas.get_num_threads()
    return max(1, n or 1)


def set_threads(n: int | None) -> int | None:
    """Run seqmodels on ``n`` threads of its own, NumPy's BLAS on one; returns the previous setting.

    With ``n`` set, every BLAS call runs single-threaded and seqmodels splits the work over its own
    threads: the big GEMMs (:func:`matmul`, :func:`gemm_add`) by rows or columns, the compiled time
    loops by batch rows or hidden units (and a pipelined stack, when switched on, its layers). OpenBLAS's
    own worker threads then
    never start, so none of them spins on a core that one of seqmodels' threads needs (on two cores,
    OpenBLAS's idle worker keeps the second core for ~7 ms after each call). ``None`` gives the BLAS
    back the thread count it had before and makes seqmodels follow it again. The command line's
    ``--threads`` calls this.
    """
    blas.check_threads(n)
    before = _OWN["threads"]
    if n is not None:
        if before is None:
            _OWN["blas_before"] = blas.get_num_threads()
        blas.set_num_threads(1)
    elif before is not None and _OWN["blas_before"]:
        blas.set_num_threads(_OWN["blas_before"])
    _OWN["threads"] = n
    return before


def in_part() -> bool:
    """True on a thread that runs one part of a parallel call (its work is not split again)."""
    return getattr(_local, "busy", False)


def owns_threads() -> bool:
    """True when seqmodels runs its parallel work on its own threads (:func:`set_threads` with n > 1)
    and the calling thread is not already one part of a parallel call."""
    own = _OWN["threads"]
    return own is not None and own > 1 and not in_part()


def parallel_for(n: int, fn, *args, cost: int | None = None, with_part: bool = False,
                 parts: int | None = None) -> list:
    """``fn(lo, hi, *args)`` over ``[0, n)`` cut into one slice per thread; returns their results.

    ``fn`` must release the GIL (a ``nogil`` compiled kernel) and write disjoint parts of its
    outputs for disjoint ranges. The calling thread runs the first slice itself; work of fewer than
    ``PARALLEL_MIN`` elements (``cost``, default ``n``) or one thread runs in one call. With
    ``with_part`` the slice's index comes third, ``fn(lo, hi, part, *args)``, for per-thread partial
    results (``part < parts_for(n, cost)``, or ``parts`` when the caller counted them already: its
    per-part buffers then have exactly that many rows, whatever the thread count is by now).
    """
    k = parts_for(n, cost) if parts is None else parts
    bounds = [n * i // k for i in range(k + 1)]
    return _on_threads(fn, [(bounds[i], bounds[i + 1], *((i,) if with_part else ()), *args) for i in range(k)])


def zero(arrays) -> None:
    """Fill every array of ``arrays`` with zeros in place; big contiguous ones are cleared by all of
    seqmodels' threads at once (the PTB benchmark's 17 MB of gradients: 2.0 -> 0.8 ms on 2 threads)."""
    for a in arrays:
        k = kernels(a.dtype) if a.size >= PARALLEL_MIN and a.flags.c_contiguous else None
        if k is None or parts_for(a.size) == 1:
            a.fill(0)
        else:
            parallel_for(a.size, k.fill_zero, a.reshape(-1))


def on_threads(k: int, fn, *args) -> list:
    """``fn(i, *args)`` for i in ``range(k)``, each on its own thread at the same time (the caller's is
    i = 0); returns their results, or raises the first call's exception after all have returned."""
    return _on_threads(fn, [(i, *args) for i in range(k)])


def _on_threads(fn, calls: list) -> list:
    k = len(calls)
    if k == 1:
        return [fn(*calls[0])]
    team = _team(k - 1)
    if team is not None:
        out = team.run(fn, calls)
        if out is not None:
            return out
    pool = _pool.get(k)
    if pool is None:
        pool = _pool[k] = ThreadPoolExecutor(max_workers=k - 1, thread_name_prefix="seqmodels")
    futures = [pool.submit(_as_part, fn, *c) for c in calls[1:]]
    try:
        first = _as_part(fn, *calls[0])
    finally:
        rest = [f.exception() for f in futures]              # every thread has returned
    for e in rest:
        if e is not None:
            raise e
    return [first] + [f.result() for f in futures]


def _team(workers: int):
    """The :class:`~seqmodels.core.team.Team` of at least ``workers`` threads (one team, grown when a call
    needs more), or None without the compiled kernels or with ``SEQMODELS_TEAM=0``."""
    team = _pool.get("team")
    if team is not None and team.workers >= workers:
        return team
    if not TEAM["on"] or not is_enabled():
        return None
    from .team import Team
    if team is not None:
        team.close()
    team = _pool["team"] = Team(workers, _as_part)
    return team


def _as_part(fn, *args):
    """``fn(*args)`` marked as one part of a parallel call: work it starts is not split again (the pool's
    threads are all taken, and waiting for one of them from inside it could never end)."""
    before = getattr(_local, "busy", False)
    _local.busy = True
    try:
        return fn(*args)
    finally:
        _local.busy = before


def parts_for(n: int, cost: int | None = None) -> int:
    """How many slices :func:`parallel_for` cuts ``n`` items of work ``cost`` into."""
    k = 1 if in_part() else min(threads(), n)
    return 1 if k <= 1 or (n if cost is None else cost) < PARALLEL_MIN else k


# ------------------------------------------------------------------ GEMMs split over seqmodels' threads
#: multiply-adds from which a GEMM is split over seqmodels' own threads (~0.05 ms on one core; handing
#: a part to another thread costs ~0.01-0.03 ms)
GEMM_SPLIT_MIN = 1 << 22
_ROW_ALIGN = 16                  # parts of rows start at multiples of this (whole register blocks)


def _gemm_cuts(m: int, n: int, k: int) -> tuple[str, list[int]] | None:
    """How to cut ``C (m × n) = A (m × k) @ B (k × n)`` over seqmodels' threads: ("rows" or "cols",
    boundaries), or None to make one call (not owning the threads, or too small to pay).

    The longer side of C is cut: each part is then the widest product OpenBLAS gets. Measured for PTB's
    output layer (one thread per half, ms): logits (700 × 200) @ (200 × 10000) by columns 10.7, by rows
    11.3; ``dx`` as (200 × 10000) @ (10000 × 700) by columns 11.4, by rows 12.2."""
    if not owns_threads() or m * n * k < GEMM_SPLIT_MIN:
        return None
    parts = threads()
    axis, size = ("rows", m) if m >= n else ("cols", n)
    cuts = sorted({min(size, (size * i // parts + _ROW_ALIGN // 2) // _ROW_ALIGN * _ROW_ALIGN)
                   for i in range(1, parts)} | {0, size})
    return (axis, cuts) if len(cuts) > 2 else None


def _pieces(how, A, B, C, bias=None):
    axis, cuts = how
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        if axis == "rows":
            yield A[lo:hi], B, C[lo:hi], bias
        else:
            yield A, B[:, lo:hi], C[:, lo:hi], None if bias is None else bias[lo:hi]


def _product(A, B, C, bias):
    np.matmul(A, B, out=C)
    if bias is not None:
        C += bias


def _matmul_piece(i, pieces):
    _product(*pieces[i])


def _gemm_add_piece(i, pieces):
    A, B, C, _ = pieces[i]
    blas.gemm_add(C, A, B)


def matmul(A: np.ndarray, B: np.ndarray, out: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """``out = A @ B (+ bias)`` for 2-D arrays: one NumPy call, or split by rows/columns of ``out`` over
    seqmodels' own threads when it owns them (:func:`set_threads`) and the product is big enough to gain.
    The parts are the same products on fewer rows, so the result does not depend on the split; each
    thread adds ``bias`` (broadcast over the rows) to its own part while it is still in cache."""
    how = _gemm_cuts(A.shape[0], B.shape[1], A.shape[1])
    if how is None:
        _product(A, B, out, bias)
        return out
    pieces = list(_pieces(how, A, B, out, bias))
    _on_threads(_matmul_piece, [(i, pieces) for i in range(len(pieces))])
    return out


def gemm_add(C: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``C += A @ B`` (:func:`seqmodels.core.blas.gemm_add`), split like :func:`matmul`."""
    how = _gemm_cuts(A.shape[0], B.shape[1], A.shape[1])
    if how is None:
        return blas.gemm_add(C, A, B)
    pieces = list(_pieces(how, A, B, C))
    _on_threads(_gemm_add_piece, [(i, pieces) for i in range(len(pieces))])
    return C
