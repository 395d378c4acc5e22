"""Compiled time loops for the LSTM, GRU and RNN cells (needs numba; used through :mod:`.fast` only).

Conventions are the NumPy loops': ``G`` (T, B, G*H) arrives holding ``W_x x<t> + b`` with the sigmoid
gates' columns halved (``z/2``), ``WhT`` is the packed (H, G*H) transpose of ``W_h`` with the same
columns halved, states are (T+1, B, H), rows still running at step t are the first ``sizes[t]``.
After the forward loop ``G`` holds the post-activation gates, as the NumPy loop leaves it.

Per step: ``G[t, :n] += a<t-1> @ WhT`` (beta = 1, no temporary), then one fused loop over the gates.
The product runs on weights packed once per sequence (:mod:`seqmodels.cells.fast_gemm`, 1.4-2x
OpenBLAS's rate at these shapes) when the sequence has at least ``PACK_MIN_STEPS`` steps, else as
one call of NumPy's own OpenBLAS ``cblas_?gemm``. ``σ(z) = (1 + tanh(z/2)) / 2`` as in NumPy;
``tanh`` is libm's in float64 and :func:`tanh32` in float32.

tanh32 — with ``y = -2|x|``, ``m = expm1(y)`` and ``e = exp(y)``: ``tanh|x| = -m / (2 + m)`` for
``|x| < 0.55`` and ``1 - 2e / (2 + m)`` beyond; ``expm1(y) = 2^k (p(r) + 1) - 1`` with ``y = k ln2 + r``,
``|r| <= ln2 / 2`` and ``p`` the degree-7 Taylor polynomial of ``expm1`` (k = 0 near 0 keeps small
values exact to rounding). Branch-free, so it vectorises; within 2.2 ulp of the exact value over all
float32 (tested against float64 ``np.tanh``).
"""

from __future__ import annotations

import ctypes
import math
import platform

import numpy as np

from ..core import blas as _blas
from ..core import workspace
from ..core.accel_kernels import exp_parts32, fma
from . import fast_gemm

try:
    import llvmlite.binding as _llvm
    import numba
    from numba import njit
    from numba.core import types
    from numba.extending import overload
except ImportError:          # importable without numba (documentation, doctests); fast.py then never calls in
    numba = None

    def njit(*args, **kwargs):
        return args[0] if args and callable(args[0]) else (lambda f: f)

    def overload(_):
        return lambda f: f

_ROW_MAJOR, _NO_TRANS = 101, 111
_FOUND: dict = {}


def gemm_functions() -> str:
    """Register NumPy's OpenBLAS ``cblas_sgemm``/``cblas_dgemm`` for the kernels; return the symbol.

    The kernels call them as external symbols (so numba can cache the compiled loops) with 64-bit
    integer arguments: right for NumPy's bundled ILP64 ``scipy_openblas64_``, and on x86-64 also for a
    32-bit-integer cblas (each argument takes a full register or 8-byte stack slot there). Raises
    RuntimeError when no usable symbol is found.
    """
    if _FOUND:
        return _FOUND["name"]
    found = _blas.cblas_gemm_symbols()
    if found is None:
        raise RuntimeError("NumPy's BLAS library was not found among the loaded libraries, or has no cblas_?gemm")
    path, sname, dname, ilp64 = found
    if not ilp64 and platform.machine().lower() not in ("x86_64", "amd64"):
        raise RuntimeError(f"{sname} in {path} takes 32-bit integers: only bound on x86-64")
    lib = ctypes.CDLL(path)
    for key, name in (("seqmodels_sgemm", sname), ("seqmodels_dgemm", dname)):
        _llvm.add_symbol(key, ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)
    _FOUND["name"] = sname
    return sname


def _gemm_type(real):
    i32, i64 = types.int32, types.int64
    return types.ExternalFunction("seqmodels_" + ("s" if real == types.float32 else "d") + "gemm", types.void(
        i32, i32, i32, i64, i64, i64, real, types.voidptr, i64, types.voidptr, i64, real, types.voidptr, i64))


if numba is not None:
    gemm_functions()
    _sgemm, _dgemm = _gemm_type(types.float32), _gemm_type(types.float64)


def gemm(C, A, B, m, n, k, lda, ldb, ldc, beta):   # pragma: no cover - replaced by the overload
    """``C[:m, :n] = A[:m, :k] @ B[:k, :n] + beta C`` on row-major pointers with leading dimensions.

    ``B`` 2-D: one ``cblas_?gemm`` call (``ldb`` its leading dimension); 3-D: B packed in panels by
    :func:`seqmodels.cells.fast_gemm.pack`, multiplied by the loops' own kernel (``ldb`` unused).
    """
    raise NotImplementedError


@overload(gemm)
def _gemm_impl(C, A, B, m, n, k, lda, ldb, ldc, beta):
    if B.ndim == 3:
        def impl(C, A, B, m, n, k, lda, ldb, ldc, beta):
            fast_gemm.gemm_packed(C, A, B, m, n, k, lda, ldc, beta)
    elif C.dtype == types.float32:
        def impl(C, A, B, m, n, k, lda, ldb, ldc, beta):
            _sgemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, np.float32(1.0), A.ctypes.data, lda,
                   B.ctypes.data, ldb, np.float32(beta), C.ctypes.data, ldc)
    else:
        def impl(C, A, B, m, n, k, lda, ldb, ldc, beta):
            _dgemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, 1.0, A.ctypes.data, lda,
                   B.ctypes.data, ldb, float(beta), C.ctypes.data, ldc)
    return impl


def from_row(B, k0):   # pragma: no cover - replaced by the overload
    """Rows ``k0:`` of the right operand ``B`` of :func:`gemm`, plain or packed."""
    raise NotImplementedError


@overload(from_row)
def _from_row_impl(B, k0):
    if B.ndim == 3:
        return lambda B, k0: B[:, k0:]
    return lambda B, k0: B[k0:]


#: sequences of at least this many steps run on packed weights (packing costs about one step's GEMM)
PACK_MIN_STEPS = 4


def operand(B: np.ndarray, steps: int) -> np.ndarray:
    """The per-step right operand for a loop of ``steps``: ``B`` packed in panels, or as it is when short."""
    if steps < PACK_MIN_STEPS:
        return B
    K, N = B.shape
    NR = fast_gemm.panel_width(B.dtype)
    out = workspace.empty(((N + NR - 1) // NR, K, NR), B.dtype)
    fast_gemm.pack(B, out)
    return out


@njit(inline="always")
def tanh32(x):
    """float32 tanh (see the module docstring): branch-free, vectorisable, within 2.2 ulp."""
    y = np.float32(-2.0) * min(abs(x), np.float32(9.5))               # y in [-19, 0]
    s, p = exp_parts32(y)                                              # 2^k, expm1(r); k in [-28, 0]
    e = fma(s, p, s)                                                   # exp(y) = 2^k (expm1(r) + 1)
    m = fma(s, p, s - np.float32(1.0))                                # expm1(y) = 2^k expm1(r) + 2^k - 1
    d = np.float32(2.0) + m                                            # 1 + exp(y)
    # tanh|x| = -expm1(y) / (1 + exp(y)) near 0, (1 + exp(y) - 2 exp(y)) / (1 + exp(y)) further out
    t = (-m if y > np.float32(-1.1) else d - np.float32(2.0) * e) / d
    return t if x >= 0 else -t


def tanh_(x):   # pragma: no cover - replaced by the overload
    raise NotImplementedError


@overload(tanh_)
def _tanh_impl(x):
    if x == types.float32:
        return lambda x: tanh32(x)
    return lambda x: math.tanh(x)


_JIT = dict(nogil=True, cache=True, error_model="numpy")


# The element-wise loops run over a slice from index 0 with constants of the array's precision: a loop
# over range(lo, hi) keeps numba's negative-index wraparound in the body and float64 literals widen
# every float32 element, and either stops LLVM from vectorising (measured: 7 ns per element instead of
# 0.9). 1 and 1/2 are exact in float32, so the results are the same bits.
@njit(inline="always")
def _sigmoid_halved(v, lo, hi):
    """v[lo:hi] = (1 + tanh(v)) / 2 in place: σ of the doubled input (the gates arrive halved)."""
    w = v[lo:hi]
    for j in range(w.shape[0]):
        w[j] = (tanh_(w[j]) + np.float32(1.0)) * np.float32(0.5)


@njit(inline="always")
def _tanh_inplace(v, lo, hi):
    w = v[lo:hi]
    for j in range(w.shape[0]):
        w[j] = tanh_(w[j])


@njit(inline="always")
def _tanh_into(src, dst, count):
    for j in range(count):
        dst[j] = tanh_(src[j])


# ------------------------------------------------------------------------------------------- LSTM
@njit(**_JIT)
def _lstm_forward(G, a, c, tc, WhT, sizes, P, peep):
    T, _, GH = G.shape
    H = GH // 4
    for t in range(T):
        n = sizes[t]
        gemm(G[t], a[t], WhT, n, GH, H, H, GH, GH, 1.0)               # z += W_h a<t-1> (σ rows halved)
        for i in range(n):
            z, cp, cn, th, ao = G[t, i], c[t, i], c[t + 1, i], tc[t, i], a[t + 1, i]
            if peep:
                zu, zf, zo = z[:H], z[H:2 * H], z[2 * H:3 * H]
                pu, pf, po = P[0], P[1], P[2]
                for j in range(H):                                   # + p * c<t-1> (P holds p/2)
                    zu[j] += pu[j] * cp[j]
                    zf[j] += pf[j] * cp[j]
                    zo[j] += po[j] * cp[j]
            _sigmoid_halved(z, 0, 3 * H)                             # Γu, Γf, Γo
            _tanh_inplace(z, 3 * H, 4 * H)                           # c~
            u, f, o, cc = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
            for j in range(H):
                cn[j] = u[j] * cc[j] + f[j] * cp[j]                  # c<t> = Γu c~ + Γf c<t-1>
            _tanh_into(cn, th, H)
            for j in range(H):
                ao[j] = o[j] * th[j]                                 # a<t> = Γo tanh(c<t>)


@njit(**_JIT)
def _lstm_backward(G, c, tc, W, ldw, sizes, P, da_all, dc_all, dout_t, has_dout, dz):
    T, B, GH = G.shape
    H = GH // 4
    one = np.float32(1.0)
    pu, pf, po = P[0], P[1], P[2]
    for t in range(T - 1, -1, -1):
        n = sizes[t]
        for i in range(n):
            z, d, cp, th, da_r, dc_r = G[t, i], dz[t, i], c[t, i], tc[t, i], da_all[i], dc_all[i]
            u, f, o, cc = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
            du, df, do, dcc = d[:H], d[H:2 * H], d[2 * H:3 * H], d[3 * H:]
            dout = dout_t[t, i] if has_dout else da_r
            for j in range(H):
                da = da_r[j] + dout[j] if has_dout else da_r[j]
                dc = dc_r[j] + da * ((one - th[j] * th[j]) * o[j])    # δc += δa Γo (1 - tanh²c)
                du[j] = (one - u[j]) * u[j] * cc[j] * dc             # dzΓu
                df[j] = (one - f[j]) * f[j] * cp[j] * dc             # dzΓf
                do[j] = (one - o[j]) * o[j] * th[j] * da             # dzΓo
                dcc[j] = (one - cc[j] * cc[j]) * u[j] * dc           # dzc~
                dc_r[j] = dc * f[j] + (pu[j] * du[j] + pf[j] * df[j] + po[j] * do[j])   # δc<t-1>
        gemm(da_all, dz[t], W, n, H, GH, GH, ldw, H, 0.0)              # δa<t-1> = W_hᵀ dz
        for i in range(n, B):
            dz[t, i, :] = 0.0


def lstm_forward(cell, buf, WhT, sizes) -> bool:
    P = 0.5 * cell.peepholes(buf.G.dtype)
    _lstm_forward(buf.G, buf.a, buf.c, buf.tc, operand(WhT, len(sizes)), sizes, P, cell.peephole)
    return True


def _rows(W_h, dtype):
    """(W_h, its leading dimension) when W_h can go to the BLAS as it is, else (None, 0)."""
    if W_h.dtype != dtype or W_h.strides[1] != W_h.itemsize or W_h.strides[0] % W_h.itemsize:
        return None, 0
    return W_h, W_h.strides[0] // W_h.itemsize


def lstm_backward(cell, buf, W_h, sizes, carry, dout_t, dz) -> bool:
    W, ld = _rows(W_h, dz.dtype)
    if W is None:
        return False
    P = cell.peepholes(dz.dtype)
    has = dout_t is not None
    d = dout_t if has else np.zeros((1, 1, 1), dz.dtype)
    _lstm_backward(buf.G, buf.c, buf.tc, operand(W, len(sizes)), ld, sizes, P, carry[0], carry[1], d, has, dz)
    return True


# -------------------------------------------------------------------------------------------- GRU
@njit(**_JIT)
def _gru_forward(G, a, WhT, WcT, sizes, variant, b_ca, ra, hc, tmp):
    """variant 0: simplified [u, c]; 1: the notes' form (WcT = packed W_caᵀ); 2: reset-after."""
    T, _, GH = G.shape
    H = GH // (2 if variant == 0 else 3)
    c0 = GH - H                                                       # first column of c~
    for t in range(T):
        n = sizes[t]
        if variant == 2:
            gemm(tmp, a[t], WhT, n, GH, H, H, GH, GH, 0.0)            # W_h a<t-1> (u, r halved)
        else:
            gemm(G[t], a[t], WhT, n, c0 if variant == 1 else GH, H, H, WhT.shape[1], GH, 1.0)
        for i in range(n):
            z, ap = G[t, i], a[t, i]
            u, r, cc = z[:H], z[H:2 * H], z[c0:]
            if variant == 2:
                s = tmp[i]
                zur, sur = z[:2 * H], s[:2 * H]
                for j in range(2 * H):
                    zur[j] += sur[j]
            _sigmoid_halved(z, 0, c0)                                # Γu (, Γr)
            if variant == 1:
                rai = ra[t, i]
                for j in range(H):
                    rai[j] = r[j] * ap[j]                            # Γr * c<t-1>
                continue
            if variant == 2:
                sc, hci = tmp[i, 2 * H:], hc[t, i]
                for j in range(H):
                    hci[j] = sc[j] + b_ca[j]                         # hc = W_ca c<t-1> + b_ca
                    cc[j] += r[j] * hci[j]                           # + Γr hc
            _tanh_inplace(z, c0, GH)                                 # c~
            ao = a[t + 1, i]
            for j in range(H):
                ao[j] = (cc[j] - ap[j]) * u[j] + ap[j]               # c<t> = c<t-1> + Γu (c~ - c<t-1>)
        if variant == 1:
            gemm(G[t, :, c0:], ra[t], WcT, n, H, H, H, H, GH, 1.0)   # + W_ca (Γr * c<t-1>)
            for i in range(n):
                z, ap, ao = G[t, i], a[t, i], a[t + 1, i]
                _tanh_inplace(z, c0, GH)
                u, cc = z[:H], z[c0:]
                for j in range(H):
                    ao[j] = (cc[j] - ap[j]) * u[j] + ap[j]


@njit(**_JIT)
def _gru_backward(G, a, W, ldw, sizes, variant, hc, dhc, da_all, dout_t, has_dout, dz, S, dra):
    """S (B, 3H) scratch: [dzΓu, dzΓr, δhc] for the reset-after product; dra (B, H) scratch."""
    T, B, GH = G.shape
    H = GH // (2 if variant == 0 else 3)
    c0 = GH - H                                                       # column of c~ / dzc~
    one = np.float32(1.0)
    for t in range(T - 1, -1, -1):
        n = sizes[t]
        for i in range(n):
            z, d, ap, da_r = G[t, i], dz[t, i], a[t, i], da_all[i]
            u, r, cc = z[:H], z[H:2 * H], z[c0:]
            du, dr, dcc = d[:H], d[H:2 * H], d[c0:]
            dout = dout_t[t, i] if has_dout else da_r
            if variant == 2:
                hci, dhci, Su, Sr, Sh = hc[t, i], dhc[t, i], S[i, :H], S[i, H:2 * H], S[i, 2 * H:]
            else:
                hci = dhci = Su = Sr = Sh = da_r                     # unused
            for j in range(H):
                da = da_r[j] + dout[j] if has_dout else da_r[j]
                du[j] = (cc[j] - ap[j]) * ((one - u[j]) * u[j]) * da  # dzΓu
                dcc[j] = (one - cc[j] * cc[j]) * u[j] * da           # dzc~
                da_r[j] = (one - u[j]) * da                          # direct path δa (1 - Γu)
                if variant == 2:
                    dr[j] = (one - r[j]) * r[j] * hci[j] * dcc[j]    # dzΓr
                    dh = dcc[j] * r[j]                               # δhc
                    dhci[j] = dh
                    Su[j], Sr[j], Sh[j] = du[j], dr[j], dh
        if variant == 0:
            gemm(da_all, dz[t], W, n, H, GH, GH, ldw, H, 1.0)          # + W_hᵀ dz
        elif variant == 2:
            gemm(da_all, S, W, n, H, GH, GH, ldw, H, 1.0)              # + W_{u,r}ᵀ dz + W_caᵀ δhc
        else:
            gemm(dra, dz[t, :, c0:], from_row(W, 2 * H), n, H, H, GH, ldw, H, 0.0)   # δ(Γr c) = W_caᵀ dzc~
            for i in range(n):
                r, dr, ap, da_r, dri = G[t, i, H:2 * H], dz[t, i, H:2 * H], a[t, i], da_all[i], dra[i]
                for j in range(H):
                    dr[j] = (one - r[j]) * r[j] * ap[j] * dri[j]      # dzΓr
                    da_r[j] += r[j] * dri[j]
            gemm(da_all, dz[t], W, n, H, 2 * H, GH, ldw, H, 1.0)       # + W_{u,r}ᵀ [dzΓu, dzΓr]
        for i in range(n, B):
            dz[t, i, :] = 0.0
            if variant == 2:
                dhc[t, i, :] = 0.0


def _variant(cell) -> int:
    return 0 if cell.variant == "simplified" else (2 if cell.reset_after else 1)


def gru_forward(cell, buf, WhT, sizes, WcT=None) -> bool:
    G = buf.G
    v = _variant(cell)
    H, B = cell.hidden_size, G.shape[1]
    empty = np.zeros((1, 1, 1), G.dtype)
    b_ca = cell.P["b_ca"].astype(G.dtype, copy=False) if v == 2 else np.zeros(1, G.dtype)
    tmp = np.empty((B, 3 * H), G.dtype) if v == 2 else np.zeros((1, 1), G.dtype)
    _gru_forward(G, buf.a, operand(WhT, len(sizes)), operand(WcT, len(sizes)) if v == 1 else np.zeros((1, 1), G.dtype), sizes, v, b_ca,
                 buf.ra if v == 1 else empty, buf.hc if v == 2 else empty, tmp)
    return True


def gru_backward(cell, buf, W_h, sizes, carry, dout_t, dz) -> bool:
    W, ld = _rows(W_h, dz.dtype)
    if W is None:
        return False
    v = _variant(cell)
    H, B = cell.hidden_size, dz.shape[1]
    empty = np.zeros((1, 1, 1), dz.dtype)
    has = dout_t is not None
    S = np.empty((B, 3 * H), dz.dtype) if v == 2 else np.zeros((1, 1), dz.dtype)
    dra = np.empty((B, H), dz.dtype) if v == 1 else np.zeros((1, 1), dz.dtype)
    _gru_backward(buf.G, buf.a, operand(W, len(sizes)), ld, sizes, v, buf.hc if v == 2 else empty,
                  buf.dhc if v == 2 else empty, carry[0], dout_t if has else empty, has, dz, S, dra)
    return True


# -------------------------------------------------------------------------------------------- RNN
@njit(**_JIT)
def _rnn_forward(G, a, WhT, sizes, relu):
    T, _, H = G.shape
    zero = np.float32(0.0)
    for t in range(T):
        n = sizes[t]
        gemm(G[t], a[t], WhT, n, H, H, H, H, H, 1.0)                  # z<t> = W_ax x + b + W_aa a<t-1>
        for i in range(n):
            z, out = G[t, i], a[t + 1, i]
            if relu:
                for j in range(H):
                    out[j] = max(z[j], zero)
            else:
                _tanh_into(z, out, H)


@njit(**_JIT)
def _rnn_backward(a, W, ldw, sizes, relu, da_all, dout_t, has_dout, dz):
    T, B, H = dz.shape
    one, zero = np.float32(1.0), np.float32(0.0)
    for t in range(T - 1, -1, -1):
        n = sizes[t]
        for i in range(n):
            d, out, da_r = dz[t, i], a[t + 1, i], da_all[i]
            dout = dout_t[t, i] if has_dout else da_r
            for j in range(H):
                da = da_r[j] + dout[j] if has_dout else da_r[j]
                g = (one if out[j] > zero else zero) if relu else one - out[j] * out[j]
                d[j] = g * da                                         # dz = δa g'(z)
        gemm(da_all, dz[t], W, n, H, H, H, ldw, H, 0.0)                # δa<t-1> = W_aaᵀ dz
        for i in range(n, B):
            dz[t, i, :] = 0.0


def rnn_forward(cell, buf, WhT, sizes) -> bool:
    _rnn_forward(buf.G, buf.a, operand(WhT, len(sizes)), sizes, cell.activation == "relu")
    return True


def rnn_backward(cell, buf, W_h, sizes, carry, dout_t, dz) -> bool:
    W, ld = _rows(W_h, dz.dtype)
    if W is None:
        return False
    has = dout_t is not None
    d = dout_t if has else np.zeros((1, 1, 1), dz.dtype)
    _rnn_backward(buf.a, operand(W, len(sizes)), ld, sizes, cell.activation == "relu", carry[0], d, has, dz)
    return True


__all__ = ["tanh32", "gemm_functions", "lstm_forward", "lstm_backward", "gru_forward", "gru_backward",
           "rnn_forward", "rnn_backward", "numba"]
