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

import numpy as np

__all__ = ["blas_info", "get_num_threads", "set_num_threads", "blas_threads", "step_threads", "set_step_threads",
           "gemm_add", "cblas_gemm_symbols"]

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


def check_threads(n) -> None:
    """Raise ConfigError unless ``n`` is a number of threads (an int >= 1) or None."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        from .errors import ConfigError
        raise ConfigError(f"n: expected a number of threads >= 1 or None, got {n!r}")


def set_step_threads(n: int | None) -> int | None:
    """Run the time loops' small per-step GEMMs on ``n`` BLAS threads (None: leave the BLAS alone);
    returns the previous setting. One thread keeps a step from waiting for a second core that
    another process holds."""
    check_threads(n)
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


# ------------------------------------------------------------------ C += A @ B without a temporary

_CBLAS_CANDIDATES = (("scipy_cblas_", "64_", True), ("cblas_", "64_", True),
                     ("scipy_cblas_", "", False), ("cblas_", "", False))


@lru_cache(maxsize=1)
def cblas_gemm_symbols():
    """``(library path, sgemm name, dgemm name, ilp64)`` of NumPy's BLAS's ``cblas_?gemm``, or None.

    NumPy's wheels bundle the 64-bit-integer ``scipy_openblas64_`` (``scipy_cblas_sgemm64_``); a
    NumPy built against a system OpenBLAS has the plain ``cblas_sgemm``.
    """
    info = blas_info()
    path = info["library"]
    if not path or path == "threadpoolctl":
        return None
    lib = ctypes.CDLL(path)
    for prefix, suffix, ilp64 in _CBLAS_CANDIDATES:
        names = (f"{prefix}sgemm{suffix}", f"{prefix}dgemm{suffix}")
        if all(hasattr(lib, n) for n in names):
            return path, names[0], names[1], ilp64
    return None


_ILP64 = [True]      # whether the bound cblas takes 64-bit sizes (else larger sizes fall back to NumPy)


@lru_cache(maxsize=1)
def _cblas():
    found = cblas_gemm_symbols()
    if found is None:
        return None
    path, sname, dname, ilp64 = found
    lib = ctypes.CDLL(path)
    idx = ctypes.c_int64 if ilp64 else ctypes.c_int
    _ILP64[0] = ilp64
    out = {}
    for dtype, name, real in ((np.dtype(np.float32), sname, ctypes.c_float),
                              (np.dtype(np.float64), dname, ctypes.c_double)):
        f = getattr(lib, name)
        f.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, idx, idx, idx, real, ctypes.c_void_p, idx,
                      ctypes.c_void_p, idx, real, ctypes.c_void_p, idx]
        f.restype = None
        out[dtype] = f
    return out


def _operand(x: np.ndarray):
    """(transpose flag, leading dimension) of a 2-D operand whose rows or columns are unit-stride, or None."""
    item = x.itemsize
    r, c = x.strides
    if c == item and r % item == 0 and r // item >= max(x.shape[1], 1):
        return 111, r // item                          # CblasNoTrans, row-major
    if r == item and c % item == 0 and c // item >= max(x.shape[0], 1):
        return 112, c // item                          # CblasTrans: a transposed row-major matrix
    return None


def gemm_add(C: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``C += A @ B`` in one BLAS call (``beta = 1``): no temporary product, no second pass over C.

    The gradient accumulations (``dW += dzᵀ x``) of every layer go through here. ``A``, ``B`` and
    ``C`` are 2-D of one float dtype; views such as ``dz.T`` or ``dW[:, H:]`` are passed as they are
    (transposed or strided operands become the BLAS's transpose flags and leading dimensions).
    Anything the BLAS cannot take directly — other dtypes, no unit stride, a BLAS without cblas —
    falls back to ``C += A @ B``. Returns ``C``.

    >>> C = np.ones((2, 2), np.float32)
    >>> gemm_add(C, np.eye(2, dtype=np.float32), np.full((2, 2), 2, np.float32)).tolist()
    [[3.0, 3.0], [3.0, 3.0]]
    """
    fns = _cblas()
    dtype = C.dtype
    ok = (fns is not None and dtype in fns and A.dtype == dtype and B.dtype == dtype and C.ndim == A.ndim == B.ndim == 2
          and A.shape[0] == C.shape[0] and B.shape[1] == C.shape[1] and A.shape[1] == B.shape[0]
          and C.flags.writeable)
    if ok:
        a, b, c = _operand(A), _operand(B), _operand(C)
        ok = (a is not None and b is not None and c is not None and c[0] == 111
              and not np.may_share_memory(C, A) and not np.may_share_memory(C, B)   # beta = 1 reads C
              and (_ILP64[0] or max(*C.shape, A.shape[1], a[1], b[1], c[1]) < 2 ** 31))
    if not ok:
        C += A @ B
        return C
    m, n, k = C.shape[0], C.shape[1], A.shape[1]
    if m and n:
        fns[dtype](101, a[0], b[0], m, n, k, 1.0, A.ctypes.data, a[1], B.ctypes.data, b[1], 1.0,
                   C.ctypes.data, c[1])
    return C
