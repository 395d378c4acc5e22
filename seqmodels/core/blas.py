"""The BLAS behind NumPy: which library and kernels it uses, and how many threads it runs.

NumPy's wheels bundle OpenBLAS (``scipy_openblas``), which picks its kernels for the CPU at load time
(``corename``: ``SkylakeX`` = AVX-512, ``Haswell`` = AVX2, ...; the environment variable
``OPENBLAS_CORETYPE`` overrides the choice, but only when set before NumPy is imported) and runs every
GEMM on ``OPENBLAS_NUM_THREADS`` threads. This module finds the loaded library and calls its own
``openblas_set_num_threads`` through :mod:`ctypes` (or uses ``threadpoolctl`` when it is installed and
the library is another one), so the thread count can change at run time:

- big GEMMs (input projections over all steps, weight gradients) gain from every core;
- the small per-step GEMM ``a<t-1> @ W_hᵀ`` of a recurrent layer gains little from a second thread,
  and when the cores are busy with other processes a spinning OpenBLAS worker can stall it for
  milliseconds.

>>> from seqmodels.core import blas
>>> info = blas.blas_info()
>>> sorted(info) == ["corename", "library", "num_threads"]
True
>>> with blas.blas_threads(1):
...     inner = blas.get_num_threads()
>>> inner in (1, None)
True
"""

from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager
from functools import lru_cache

__all__ = ["blas_info", "get_num_threads", "set_num_threads", "blas_threads", "step_threads", "set_step_threads"]

_STEP = {"threads": None}


def _env_step_threads() -> int | None:
    value = os.environ.get("SEQMODELS_STEP_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) >= 1 else None


_STEP["threads"] = _env_step_threads()


def step_threads() -> int | None:
    """Threads for the per-step GEMMs of the recurrent time loops (None: whatever the BLAS uses).

    Set with :func:`set_step_threads` or the environment variable ``SEQMODELS_STEP_THREADS``. The
    big GEMMs before and after the loops (input projections, weight gradients) keep every thread.
    """
    return _STEP["threads"]


def set_step_threads(n: int | None) -> int | None:
    """Run the time loops' small per-step GEMMs on ``n`` BLAS threads (None: leave the BLAS alone);
    returns the previous setting. One thread keeps a step from waiting for a second core that
    another process holds."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        from .errors import ConfigError
        raise ConfigError(f"n: expected a number of threads >= 1 or None, got {n!r}")
    before = _STEP["threads"]
    _STEP["threads"] = n
    return before

# (set, get, corename) symbol names: numpy's 64-bit-integer scipy-openblas, its 32-bit twin, plain OpenBLAS
_SYMBOLS = (
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_", "scipy_openblas_get_corename64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads", "scipy_openblas_get_corename"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_", "openblas_get_corename64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads", "openblas_get_corename"),
)


def _loaded_libraries() -> list[str]:
    """Paths of the shared libraries mapped into this process whose name mentions a BLAS (Linux)."""
    import numpy  # noqa: F401  (loads the BLAS)

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if ".so" in line}
    except OSError:
        return []
    return sorted(p for p in paths if "blas" in os.path.basename(p).lower())


class _OpenBLAS:
    def __init__(self, path: str, lib, names):
        self.path = path
        self._set = getattr(lib, names[0])
        self._set.argtypes, self._set.restype = [ctypes.c_int], None
        self._get = getattr(lib, names[1])
        self._get.argtypes, self._get.restype = [], ctypes.c_int
        self._core = getattr(lib, names[2], None)
        if self._core is not None:
            self._core.argtypes, self._core.restype = [], ctypes.c_char_p

    def set(self, n: int) -> None:
        self._set(int(n))

    def get(self) -> int:
        return int(self._get())

    def corename(self) -> str | None:
        return None if self._core is None else self._core().decode()


@lru_cache(maxsize=1)
def _backend():
    """The OpenBLAS that NumPy loaded, a threadpoolctl controller, or None."""
    for path in _loaded_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for names in _SYMBOLS:
            if all(hasattr(lib, n) for n in names[:2]):
                return _OpenBLAS(path, lib, names)
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl


def get_num_threads() -> int | None:
    """Threads NumPy's BLAS uses now (None when the library could not be found)."""
    b = _backend()
    if b is None:
        return None
    if isinstance(b, _OpenBLAS):
        return b.get()
    infos = [i for i in b.threadpool_info() if i.get("user_api") == "blas"]
    return int(infos[0]["num_threads"]) if infos else None


def set_num_threads(n: int) -> int | None:
    """Make NumPy's BLAS use ``n`` threads from now on; return the previous count (None if unknown)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        from .errors import ConfigError
        raise ConfigError(f"n: expected a number of threads >= 1, got {n!r}")
    b = _backend()
    if b is None:
        return None
    before = get_num_threads()
    if isinstance(b, _OpenBLAS):
        b.set(n)
    else:
        b.threadpool_limits(limits=n, user_api="blas")
    return before


@contextmanager
def blas_threads(n: int | None):
    """Run a block with NumPy's BLAS on ``n`` threads (None: leave it alone), restoring it after."""
    if n is None:
        yield
        return
    before = set_num_threads(n)
    try:
        yield
    finally:
        if before is not None:
            set_num_threads(before)


def blas_info() -> dict:
    """``{"library": path or None, "corename": kernels in use or None, "num_threads": int or None}``."""
    b = _backend()
    if isinstance(b, _OpenBLAS):
        return {"library": b.path, "corename": b.corename(), "num_threads": b.get()}
    return {"library": None if b is None else "threadpoolctl", "corename": None, "num_threads": get_num_threads()}
