"""The optional accelerator: the cells' time loops compiled with numba (``pip install seqmodels[fast]``).

Each loop becomes one compiled call for the whole sequence: per step, one GEMM on the recurrent
weights packed once per sequence (:mod:`seqmodels.cells.fast_gemm`; accumulating into the gate
buffer: ``G[t] += a<t-1> W_hᵀ``) and one fused pass over the gates, instead of a dozen NumPy calls
and their Python overhead. The arithmetic is the
NumPy loops' (same equations, same buffers, same order of operations per element), so results agree
to rounding: float32 to a few ulp of float32 (a vectorisable ``tanh`` within 2.2 ulp of the exact
value, see :mod:`seqmodels.cells.fast_kernels`). Only float32 runs compiled by default; float64 (for
gradient checks) stays on the NumPy loops unless :func:`enabled` widens the dtypes — the tests run
the kernels in float64 too and require agreement with NumPy to a few float64 ulp.

Used automatically when numba is importable and NumPy's BLAS is OpenBLAS; off with the environment
variable ``SEQMODELS_FAST=0`` or :func:`set_enabled(False) <set_enabled>`. Without numba everything
runs in NumPy, unchanged.

>>> from seqmodels.cells import fast
>>> isinstance(fast.available(), bool)
True
>>> with fast.enabled(False):
...     fast.is_enabled()
False
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..core import accel

__all__ = ["available", "is_enabled", "set_enabled", "enabled", "run", "why_unavailable"]

_flag = accel.FLAG         # one switch for the time loops and the training step's element-wise kernels


def _load_loops():
    from . import fast_kernels
    if fast_kernels.numba is None:
        raise ImportError("numba is not installed (pip install 'seqmodels[fast]')")
    fast_kernels.gemm_functions()                  # raises when NumPy's BLAS has no cblas we can call
    return fast_kernels


_LOOPS = accel.OptionalModule(_load_loops)
set_enabled = accel.set_enabled                    # the one switch (see seqmodels.core.accel)


# numba installed and NumPy's BLAS bound / why not / and not switched off (see accel.OptionalModule)
available, why_unavailable, is_enabled = _LOOPS.available, _LOOPS.why, _LOOPS.is_enabled


@contextmanager
def enabled(flag: bool, dtypes=None):
    """``with enabled(False): ...`` runs a block on the NumPy loops (tests compare the two).

    ``dtypes`` (e.g. ``(np.float32, np.float64)``) widens the dtypes the compiled loops take for the
    block; by default only float32 runs compiled, float64 (gradient checks, diagnostics) stays on the
    NumPy loops so that its results do not depend on whether numba is installed.
    """
    before, before_dtypes = set_enabled(flag), _flag["dtypes"]
    if dtypes is not None:
        _flag["dtypes"] = tuple(np.dtype(d) for d in dtypes)
    try:
        yield
    finally:
        set_enabled(before)
        _flag["dtypes"] = before_dtypes


def compiled(dtype):
    """The compiled kernels module when the loops are on, available and take ``dtype``; else None."""
    return _LOOPS.for_dtype(dtype)


def run(name: str, cell, *args) -> bool:
    """Run the compiled version of loop ``name`` (e.g. ``"lstm_forward"``) if possible.

    Returns False (the caller then runs its NumPy loop) when switched off, unavailable, or the
    arrays are not of an enabled dtype (float32 by default).
    """
    k = _LOOPS.for_dtype(args[0].G.dtype)
    return k is not None and getattr(k, name)(cell, *args)
