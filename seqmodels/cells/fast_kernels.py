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

import math

import numpy as np

from ..core.accel_kernels import exp_parts32, fma
from . import fast_gemm
from .base import TransposedRows, packed_transpose
from .fast_gemm import (barrier, from_row, gemm_blocks, gemm_functions, operand, operand_of_rows, plan, run_parts,
                        share)

try:
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


@njit(inline="always")
def _propagate(da_all, dz, t, Wq, n, K, H, u0, u1, r0, r1, part, parts, meet, bar):
    """The end of a backward step: once every thread's share of ``dz<t>`` (K = G·H columns) is written,
    ``δa<t-1> = W_hᵀ dz<t>`` for this thread's units [u0, u1) and rows [r0, n), and the rows of [r0, r1)
    that had finished are zeroed (they must not reach the weight gradients; by one thread when the
    threads share the rows). False when the run failed (see barrier)."""
    if meet and not barrier(bar, parts):
        return False
    gemm_blocks(da_all[r0:], dz[t, r0:], Wq, max(n - r0, 0), K, K, H, 0.0, H, u0, u1)
    if part == 0 or not meet:
        for i in range(max(n, r0), r1):
            dz[t, i, :] = 0.0
    return True


# ------------------------------------------------------------------------------------------- LSTM
# Every loop takes (part, parts, by_rows, bar) last: it runs the hidden units [u0, u1) and batch rows
# [r0, r1) of share(), see fast_gemm; ``meet``: the threads split the units and meet at a barrier.
@njit(**_JIT)
def _lstm_forward(G, a, c, tc, Wq, sizes, P, peep, part, parts, by_rows, bar):
    T, B, GH = G.shape
    H = GH // 4
    u0, u1, r0, r1, meet = share(H, Wq.shape[-1], B, part, parts, by_rows)
    w, c0, c1 = (H, u0, u1) if meet else (GH, 0, GH)                # columns of the product, per block
    pu, pf, po = P[0, u0:u1], P[1, u0:u1], P[2, u0:u1]
    for t in range(T):
        n = min(sizes[t], r1)
        gemm_blocks(G[t, r0:], a[t, r0:], Wq, max(n - r0, 0), H, H, GH, 1.0, w, c0, c1)   # z += W_h a<t-1>
        for i in range(r0, n):
            z, cp, cn, th, ao = G[t, i], c[t, i, u0:u1], c[t + 1, i, u0:u1], tc[t, i, u0:u1], a[t + 1, i, u0:u1]
            u, f, o, cc = z[u0:u1], z[H + u0:H + u1], z[2 * H + u0:2 * H + u1], z[3 * H + u0:3 * H + u1]
            if peep:
                for j in range(u1 - u0):                             # + p * c<t-1> (P holds p/2)
                    u[j] += pu[j] * cp[j]
                    f[j] += pf[j] * cp[j]
                    o[j] += po[j] * cp[j]
            _sigmoid_halved(u, 0, u1 - u0)                           # Γu, Γf, Γo
            _sigmoid_halved(f, 0, u1 - u0)
            _sigmoid_halved(o, 0, u1 - u0)
            _tanh_inplace(cc, 0, u1 - u0)                            # c~
            for j in range(u1 - u0):
                cn[j] = u[j] * cc[j] + f[j] * cp[j]                  # c<t> = Γu c~ + Γf c<t-1>
            _tanh_into(cn, th, u1 - u0)
            for j in range(u1 - u0):
                ao[j] = o[j] * th[j]                                 # a<t> = Γo tanh(c<t>)
        if meet and not barrier(bar, parts):                         # a<t> complete before the next product
            return


@njit(**_JIT)
def _lstm_backward(G, c, tc, Wq, sizes, P, da_all, dc_all, dout_t, has_dout, dz, part, parts, by_rows, bar):
    T, B, GH = G.shape
    H = GH // 4
    u0, u1, r0, r1, meet = share(H, Wq.shape[-1], B, part, parts, by_rows)
    one = np.float32(1.0)
    pu, pf, po = P[0, u0:u1], P[1, u0:u1], P[2, u0:u1]
    for t in range(T - 1, -1, -1):
        n = min(sizes[t], r1)
        for i in range(r0, n):
            z, d = G[t, i], dz[t, i]
            cp, th, da_r, dc_r = c[t, i, u0:u1], tc[t, i, u0:u1], da_all[i, u0:u1], dc_all[i, u0:u1]
            u, f, o, cc = z[u0:u1], z[H + u0:H + u1], z[2 * H + u0:2 * H + u1], z[3 * H + u0:3 * H + u1]
            du, df, do, dcc = d[u0:u1], d[H + u0:H + u1], d[2 * H + u0:2 * H + u1], d[3 * H + u0:3 * H + u1]
            dout = dout_t[t, i, u0:u1] if has_dout else da_r
            for j in range(u1 - u0):
                da = da_r[j] + dout[j] if has_dout else da_r[j]
                dc = dc_r[j] + da * ((one - th[j] * th[j]) * o[j])    # δc += δa Γo (1 - tanh²c)
                du[j] = (one - u[j]) * u[j] * cc[j] * dc             # dzΓu
                df[j] = (one - f[j]) * f[j] * cp[j] * dc             # dzΓf
                do[j] = (one - o[j]) * o[j] * th[j] * da             # dzΓo
                dcc[j] = (one - cc[j] * cc[j]) * u[j] * dc           # dzc~
                dc_r[j] = dc * f[j] + (pu[j] * du[j] + pf[j] * df[j] + po[j] * do[j])   # δc<t-1>
        if not _propagate(da_all, dz, t, Wq, n, GH, H, u0, u1, r0, r1, part, parts, meet, bar):
            return


# A loop over one time slice of a longer run (a pipelined stack, see seqmodels.layers.pipeline) gets
# buffers with a ``memo`` (Cell.time_slice): its weights are packed once for the whole run, and it runs
# on the calling thread alone (the pipeline's threads are the other cores).
def _plan(buf, hidden, batch, steps, dtype, gates) -> tuple[int, bool]:
    return (1, False) if getattr(buf, "memo", None) is not None else plan(hidden, batch, steps, dtype, gates)


def _pack(W, steps, blocks):
    if isinstance(W, TransposedRows):                  # packed from W's rows, transposed on the way
        if steps < fast_gemm.PACK_MIN_STEPS:           # too short to pack: the BLAS on the copy
            return packed_transpose(W.W, W.halve)
        return operand_of_rows(W.W, blocks, W.halve)
    return operand(W, steps, blocks)


def _operand(buf, key, W, steps, blocks=1):
    memo = getattr(buf, "memo", None)
    if memo is None:
        return _pack(W, steps, blocks)
    if key not in memo:
        memo[key] = _pack(W, memo["steps"], blocks)
    return memo[key]


def lstm_forward(cell, buf, WhT, sizes) -> bool:
    P = 0.5 * cell.peepholes(buf.G.dtype)
    parts, by_rows = _plan(buf, cell.hidden_size, buf.G.shape[1], len(sizes), WhT.dtype, 4)
    Wq = _operand(buf, "Wh", WhT, len(sizes), 1 if parts == 1 or by_rows else 4)
    run_parts(_lstm_forward, (buf.G, buf.a, buf.c, buf.tc, Wq, sizes, P, cell.peephole), parts, by_rows)
    return True


def _rows(W_h, dtype):
    """W_h when it can go to the BLAS as it is (rows contiguous), else None."""
    if W_h.dtype != dtype or W_h.strides[1] != W_h.itemsize or W_h.strides[0] % W_h.itemsize:
        return None
    return W_h


def lstm_backward(cell, buf, W_h, sizes, carry, dout_t, dz) -> bool:
    W = _rows(W_h, dz.dtype)
    if W is None:
        return False
    P = cell.peepholes(dz.dtype)
    has = dout_t is not None
    d = dout_t if has else np.zeros((1, 1, 1), dz.dtype)
    parts, by_rows = _plan(buf, cell.hidden_size, dz.shape[1], len(sizes), dz.dtype, 4)
    run_parts(_lstm_backward, (buf.G, buf.c, buf.tc, _operand(buf, "W", W, len(sizes)), sizes, P, carry[0], carry[1], d,
                               has, dz), parts, by_rows)
    return True


# -------------------------------------------------------------------------------------------- GRU
@njit(**_JIT)
def _gru_forward(G, a, Wq, WcQ, sizes, variant, b_ca, ra, hc, tmp, part, parts, by_rows, bar):
    """variant 0: simplified [u, c]; 1: the notes' form (WcQ = packed W_caᵀ); 2: reset-after."""
    T, B, GH = G.shape
    H = GH // (2 if variant == 0 else 3)
    c0 = GH - H                                                       # first column of c~
    u0, u1, r0, r1, meet = share(H, Wq.shape[-1], B, part, parts, by_rows)
    h = u1 - u0
    N = c0 if variant == 1 else GH                                    # columns of the first product
    w, k0, k1 = (H, u0, u1) if meet else (N, 0, N)
    for t in range(T):
        n = min(sizes[t], r1)
        m = max(n - r0, 0)
        if variant == 2:
            gemm_blocks(tmp[r0:], a[t, r0:], Wq, m, H, H, GH, 0.0, w, k0, k1)   # W_h a<t-1> (u, r halved)
        else:
            gemm_blocks(G[t, r0:], a[t, r0:], Wq, m, H, H, GH, 1.0, w, k0, k1)
        for i in range(r0, n):
            z, ap = G[t, i], a[t, i, u0:u1]
            u, r, cc = z[u0:u1], z[H + u0:H + u1], z[c0 + u0:c0 + u1]
            if variant == 2:
                s = tmp[i]
                su, sr = s[u0:u1], s[H + u0:H + u1]
                for j in range(h):
                    u[j] += su[j]
                    r[j] += sr[j]
            _sigmoid_halved(u, 0, h)                                 # Γu (, Γr)
            if variant != 0:
                _sigmoid_halved(r, 0, h)
            if variant == 1:
                rai = ra[t, i, u0:u1]
                for j in range(h):
                    rai[j] = r[j] * ap[j]                            # Γr * c<t-1>
                continue
            if variant == 2:
                sc, hci = tmp[i, 2 * H + u0:2 * H + u1], hc[t, i, u0:u1]
                bc = b_ca[u0:u1]
                for j in range(h):
                    hci[j] = sc[j] + bc[j]                           # hc = W_ca c<t-1> + b_ca
                    cc[j] += r[j] * hci[j]                           # + Γr hc
            _tanh_inplace(cc, 0, h)                                  # c~
            ao = a[t + 1, i, u0:u1]
            for j in range(h):
                ao[j] = (cc[j] - ap[j]) * u[j] + ap[j]               # c<t> = c<t-1> + Γu (c~ - c<t-1>)
        if variant == 1:
            if meet and not barrier(bar, parts):                     # Γr * c<t-1> complete
                return
            gemm_blocks(G[t, r0:, c0:], ra[t, r0:], WcQ, m, H, H, GH, 1.0, H, u0, u1)   # + W_ca (Γr * c<t-1>)
            for i in range(r0, n):
                z, ap, ao = G[t, i], a[t, i, u0:u1], a[t + 1, i, u0:u1]
                u, cc = z[u0:u1], z[c0 + u0:c0 + u1]
                _tanh_inplace(cc, 0, h)
                for j in range(h):
                    ao[j] = (cc[j] - ap[j]) * u[j] + ap[j]
        if meet and not barrier(bar, parts):                         # a<t> complete
            return


@njit(**_JIT)
def _gru_backward(G, a, Wq, sizes, variant, hc, dhc, da_all, dout_t, has_dout, dz, S, dra, part, parts, by_rows,
                  bar):
    """S (2, B, 3H) scratch: [dzΓu, dzΓr, δhc] for the reset-after product, by step parity (a thread may
    fill the next step's while another still multiplies this one's); dra (B, H) scratch."""
    T, B, GH = G.shape
    H = GH // (2 if variant == 0 else 3)
    c0 = GH - H                                                       # column of c~ / dzc~
    u0, u1, r0, r1, meet = share(H, Wq.shape[-1], B, part, parts, by_rows)
    h = u1 - u0
    one = np.float32(1.0)
    for t in range(T - 1, -1, -1):
        n = min(sizes[t], r1)
        m = max(n - r0, 0)
        for i in range(r0, n):
            z, d, ap, da_r = G[t, i], dz[t, i], a[t, i, u0:u1], da_all[i, u0:u1]
            u, r, cc = z[u0:u1], z[H + u0:H + u1], z[c0 + u0:c0 + u1]
            du, dr, dcc = d[u0:u1], d[H + u0:H + u1], d[c0 + u0:c0 + u1]
            dout = dout_t[t, i, u0:u1] if has_dout else da_r
            if variant == 2:
                hci, dhci = hc[t, i, u0:u1], dhc[t, i, u0:u1]
                St = S[t % 2, i]
                Su, Sr, Sh = St[u0:u1], St[H + u0:H + u1], St[2 * H + u0:2 * H + u1]
            else:
                hci = dhci = Su = Sr = Sh = da_r                     # unused
            for j in range(h):
                da = da_r[j] + dout[j] if has_dout else da_r[j]
                du[j] = (cc[j] - ap[j]) * ((one - u[j]) * u[j]) * da  # dzΓu
                dcc[j] = (one - cc[j] * cc[j]) * u[j] * da           # dzc~
                da_r[j] = (one - u[j]) * da                          # direct path δa (1 - Γu)
                if variant == 2:
                    dr[j] = (one - r[j]) * r[j] * hci[j] * dcc[j]    # dzΓr
                    dh = dcc[j] * r[j]                               # δhc
                    dhci[j] = dh
                    Su[j], Sr[j], Sh[j] = du[j], dr[j], dh
        if meet and not barrier(bar, parts):                         # this step's dz complete
            return
        if variant == 0:
            gemm_blocks(da_all[r0:], dz[t, r0:], Wq, m, GH, GH, H, 1.0, H, u0, u1)          # + W_hᵀ dz
        elif variant == 2:
            gemm_blocks(da_all[r0:], S[t % 2, r0:], Wq, m, GH, GH, H, 1.0, H, u0, u1)   # + W_{u,r}ᵀ dz + W_caᵀ δhc
        else:
            gemm_blocks(dra[r0:], dz[t, r0:, c0:], from_row(Wq, 2 * H), m, H, GH, H, 0.0, H, u0, u1)  # W_caᵀ dzc~
            for i in range(r0, n):
                r, dr = G[t, i, H + u0:H + u1], dz[t, i, H + u0:H + u1]
                ap, da_r, dri = a[t, i, u0:u1], da_all[i, u0:u1], dra[i, u0:u1]
                for j in range(h):
                    dr[j] = (one - r[j]) * r[j] * ap[j] * dri[j]      # dzΓr
                    da_r[j] += r[j] * dri[j]
            if meet and not barrier(bar, parts):                     # dzΓr complete
                return
            gemm_blocks(da_all[r0:], dz[t, r0:], Wq, m, 2 * H, GH, H, 1.0, H, u0, u1)   # + W_{u,r}ᵀ [dzΓu, dzΓr]
        if part == 0 or not meet:
            for i in range(max(n, r0), r1):
                dz[t, i, :] = 0.0
                if variant == 2:
                    dhc[t, i, :] = 0.0


def _variant(cell) -> int:
    return 0 if cell.variant == "simplified" else (2 if cell.reset_after else 1)


def gru_forward(cell, buf, WhT, sizes, WcT=None) -> bool:
    G = buf.G
    v = _variant(cell)
    H, B, T = cell.hidden_size, G.shape[1], len(sizes)
    empty = np.zeros((1, 1, 1), G.dtype)
    b_ca = cell.P["b_ca"].astype(G.dtype, copy=False) if v == 2 else np.zeros(1, G.dtype)
    tmp = np.empty((B, 3 * H), G.dtype) if v == 2 else np.zeros((1, 1), G.dtype)
    parts, by_rows = _plan(buf, H, B, T, G.dtype, 3)
    Wq = _operand(buf, "Wh", WhT, T, 1 if parts == 1 or by_rows else WhT.shape[1] // H)
    WcQ = _operand(buf, "Wc", WcT, T) if v == 1 else np.zeros((1, 1), G.dtype)
    run_parts(_gru_forward, (G, buf.a, Wq, WcQ, sizes, v, b_ca, buf.ra if v == 1 else empty,
                             buf.hc if v == 2 else empty, tmp), parts, by_rows)
    return True


def gru_backward(cell, buf, W_h, sizes, carry, dout_t, dz) -> bool:
    W = _rows(W_h, dz.dtype)
    if W is None:
        return False
    v = _variant(cell)
    H, B, T = cell.hidden_size, dz.shape[1], len(sizes)
    empty = np.zeros((1, 1, 1), dz.dtype)
    has = dout_t is not None
    S = np.empty((2, B, 3 * H), dz.dtype) if v == 2 else np.zeros((1, 1, 1), dz.dtype)
    dra = np.empty((B, H), dz.dtype) if v == 1 else np.zeros((1, 1), dz.dtype)
    run_parts(_gru_backward, (buf.G, buf.a, _operand(buf, "W", W, T), sizes, v, buf.hc if v == 2 else empty,
                              buf.dhc if v == 2 else empty, carry[0], dout_t if has else empty, has, dz, S, dra),
              *_plan(buf, H, B, T, dz.dtype, 3))
    return True


# -------------------------------------------------------------------------------------------- RNN
@njit(**_JIT)
def _rnn_forward(G, a, Wq, sizes, relu, part, parts, by_rows, bar):
    T, B, H = G.shape
    u0, u1, r0, r1, meet = share(H, Wq.shape[-1], B, part, parts, by_rows)
    zero = np.float32(0.0)
    for t in range(T):
        n = min(sizes[t], r1)
        gemm_blocks(G[t, r0:], a[t, r0:], Wq, max(n - r0, 0), H, H, H, 1.0, H, u0, u1)   # z<t> += W_aa a<t-1>
        for i in range(r0, n):
            z, out = G[t, i, u0:u1], a[t + 1, i, u0:u1]
            if relu:
                for j in range(u1 - u0):
                    out[j] = max(z[j], zero)
            else:
                _tanh_into(z, out, u1 - u0)
        if meet and not barrier(bar, parts):
            return


@njit(**_JIT)
def _rnn_backward(a, Wq, sizes, relu, da_all, dout_t, has_dout, dz, part, parts, by_rows, bar):
    T, B, H = dz.shape
    u0, u1, r0, r1, meet = share(H, Wq.shape[-1], B, part, parts, by_rows)
    one, zero = np.float32(1.0), np.float32(0.0)
    for t in range(T - 1, -1, -1):
        n = min(sizes[t], r1)
        for i in range(r0, n):
            d, out, da_r = dz[t, i, u0:u1], a[t + 1, i, u0:u1], da_all[i, u0:u1]
            dout = dout_t[t, i, u0:u1] if has_dout else da_r
            for j in range(u1 - u0):
                da = da_r[j] + dout[j] if has_dout else da_r[j]
                g = (one if out[j] > zero else zero) if relu else one - out[j] * out[j]
                d[j] = g * da                                         # dz = δa g'(z)
        if not _propagate(da_all, dz, t, Wq, n, H, H, u0, u1, r0, r1, part, parts, meet, bar):
            return


def rnn_forward(cell, buf, WhT, sizes) -> bool:
    args = (buf.G, buf.a, _operand(buf, "Wh", WhT, len(sizes)), sizes, cell.activation == "relu")
    run_parts(_rnn_forward, args, *_plan(buf, cell.hidden_size, buf.G.shape[1], len(sizes), WhT.dtype, 1))
    return True


def rnn_backward(cell, buf, W_h, sizes, carry, dout_t, dz) -> bool:
    W = _rows(W_h, dz.dtype)
    if W is None:
        return False
    has = dout_t is not None
    d = dout_t if has else np.zeros((1, 1, 1), dz.dtype)
    args = (buf.a, _operand(buf, "W", W, len(sizes)), sizes, cell.activation == "relu", carry[0], d, has, dz)
    run_parts(_rnn_backward, args, *_plan(buf, cell.hidden_size, dz.shape[1], len(sizes), dz.dtype, 1))
    return True


__all__ = ["tanh32", "gemm_functions", "lstm_forward", "lstm_backward", "gru_forward", "gru_backward",
           "rnn_forward", "rnn_backward", "numba"]
