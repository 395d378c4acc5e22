"""Compiled element-wise kernels of the training step (needs numba; used through :mod:`.accel` only).

Every kernel takes a range ``[lo, hi)`` first (rows or elements), releases the GIL and writes only its
part of the outputs, so :func:`seqmodels.core.accel.parallel_for` can run slices on several threads.

``exp32`` — ``exp(x)`` for float32 ``x <= 0`` without a libm call, so the loops vectorise: ``x = k ln2
+ r`` (``k = round(x / ln2)``, Cody–Waite split of ln2, ``|r| <= ln2 / 2``), ``exp(r) = 1 + expm1(r)``
with the degree-7 Taylor polynomial of ``expm1``, and ``2^k`` built from its exponent bits; below
``-87`` (where ``2^k`` would leave the normal range) it returns 0, and NaN for NaN. Within 2 ulp of
the exact value (tested against float64 ``np.exp``).

The cells' ``tanh32`` (:mod:`seqmodels.cells.fast_kernels`) is built on :func:`exp_parts32` and
:func:`fma` from here. numba's on-disk cache keys a compiled function on its own file only: after
editing those two, clear ``seqmodels/cells/__pycache__/*.nbi|*.nbc`` (a new release does it anyway).
"""

from __future__ import annotations

import numpy as np

try:
    import numba
    from numba import njit
    from numba.core import types
    from numba.extending import intrinsic
except ImportError:          # importable without numba (documentation); accel.py then never calls in
    numba = None

    def njit(*args, **kwargs):
        return args[0] if args and callable(args[0]) else (lambda f: f)

    def intrinsic(f):
        return f

_JIT = dict(nogil=True, cache=True, error_model="numpy")


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c with one rounding (LLVM's fma): explicit, so the kernels need no fast-math flags."""
    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return a(a, b, c), codegen


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.int32), codegen


@njit(inline="always")
def exp_parts32(y):
    """``(2^k, expm1(r))`` with ``y = k ln2 + r`` for float32 ``y`` in [-87, 0]: ``exp(y) = 2^k (1 + expm1(r))``
    and ``expm1(y) = 2^k expm1(r) + 2^k - 1`` (shared by :func:`exp32` and the cells' ``tanh32``)."""
    k = np.float32(np.int32(y * np.float32(1.4426950408889634) - np.float32(0.5)))   # round(y / ln2)
    r = fma(k, np.float32(-0.693145751953125), y)                     # Cody-Waite: ln2 = hi + lo
    r = fma(k, np.float32(-1.4286068203094173e-06), r)
    p = np.float32(1.0 / 5040.0)
    p = fma(p, r, np.float32(1.0 / 720.0))
    p = fma(p, r, np.float32(1.0 / 120.0))
    p = fma(p, r, np.float32(1.0 / 24.0))
    p = fma(p, r, np.float32(1.0 / 6.0))
    p = fma(p, r, np.float32(0.5))
    p = fma(p * r, r, r)                                               # expm1(r)
    s = _float32_from_bits((np.int32(k) + np.int32(127)) << np.int32(23))   # 2^k, k in [-126, 0]
    return s, p


@njit(inline="always")
def exp32(x):
    """float32 exp for x <= 0 (see the module docstring): branch-free, vectorisable, within 2 ulp."""
    s, p = exp_parts32(max(x, np.float32(-87.0)))
    e = fma(s, p, s)                                                   # 2^k (1 + expm1(r))
    return e if x > np.float32(-87.0) else (np.float32(0.0) if x <= np.float32(-87.0) else x)   # NaN stays


# Reductions vectorise only when the additions may be reordered: allowed here, for these two alone.
@njit(inline="never", fastmath={"reassoc", "nsz", "arcp", "contract"}, nogil=True, cache=True)
def _sum32(v):
    s = np.float32(0.0)
    for j in range(v.shape[0]):
        s += v[j]
    return s


@njit(inline="always")
def _max32(v, acc):
    """max(v) over 16 lanes of ``acc`` (a comparison chain per lane vectorises; one chain does not).
    NaNs are skipped here; they still reach the result through the exponentials."""
    n = v.shape[0]
    w = n // 16 * 16
    acc[:] = v[0]
    for j in range(0, w, 16):
        blk = v[j:j + 16]
        for lane in range(16):
            x = blk[lane]
            acc[lane] = x if x > acc[lane] else acc[lane]
    m = acc[0]
    for lane in range(16):
        m = acc[lane] if acc[lane] > m else m
    for j in range(w, n):
        m = v[j] if v[j] > m else m
    return m


@njit(**_JIT)
def softmax_xent_rows(lo, hi, part, z, b, y, grad, scale, db):
    """Rows ``lo..hi-1`` of the softmax cross-entropy of the logits ``z + b`` (``b``: a bias of length V, or
    empty for none): ``grad[i] = (softmax(z[i] + b) - onehot(y[i])) * scale`` (``grad`` may be ``z``
    itself); with a non-empty ``db`` (parts, V), adds this slice's ``Σ_i grad[i]`` to ``db[part]`` while
    each row is still in cache. Returns ``Σ_i -log softmax(z[i] + b)[y[i]]`` (float64). A row whose max
    is not finite is shifted by 0 (as :func:`seqmodels.core.functional.softmax_cross_entropy` does): inf
    and NaN propagate."""
    total = 0.0
    V = z.shape[1]
    acc = np.empty(16, z.dtype)
    biased = b.shape[0] != 0
    in_place = z.ctypes.data == grad.ctypes.data
    for i in range(lo, hi):
        # every pass below reads and writes gi alone: a loop from one array into another that is the
        # same memory fails LLVM's run-time overlap check and runs scalar (measured 3x slower)
        zi = z[i]
        gi = grad[i]
        if in_place:
            if biased:
                for j in range(V):
                    gi[j] += b[j]
        elif biased:
            for j in range(V):
                gi[j] = zi[j] + b[j]
        else:
            for j in range(V):
                gi[j] = zi[j]
        t = y[i]
        z_t = gi[t]
        m = _max32(gi, acc)
        if np.isfinite(m):
            for j in range(V):
                gi[j] = exp32(gi[j] - m)
        else:                                           # an inf in the row: libm's exp, shift 0
            m = np.float32(0.0)
            for j in range(V):
                gi[j] = np.exp(gi[j])
        s = _sum32(gi)
        inv = scale / s
        for j in range(V):
            gi[j] *= inv
        gi[t] -= scale
        total += np.log(np.float64(s)) - np.float64(z_t - m)
        if db.shape[1] != 0:
            d = db[part]
            for j in range(V):
                d[j] += gi[j]
    return total


@njit(**_JIT)
def adam_update(lo, hi, p, g, m, v, b1c, b2, b2c, denom_scale, eps, step_size):
    """Elements ``lo..hi-1`` of the Adam step, the NumPy path's operations in its order (the same bits):
    ``m += (g - m)(1 - β1)``; ``v = v β2 + g² (1 - β2)``; ``p -= m / (√v · denom_scale + eps) · step_size``."""
    P, G, M, W = p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi]
    for j in range(P.shape[0]):
        gj = G[j]
        mj = M[j] + (gj - M[j]) * b1c
        vj = W[j] * b2 + (gj * gj) * b2c
        M[j] = mj
        W[j] = vj
        P[j] -= mj / (np.sqrt(vj) * denom_scale + eps) * step_size
    return 0


@njit(**_JIT)
def scatter_add_rows(lo, hi, target, idx, values):
    """Columns ``lo..hi-1`` of ``target[idx[n]] += values[n]`` for every n, in the order of n."""
    for n in range(idx.shape[0]):
        t = target[idx[n], lo:hi]
        v = values[n, lo:hi]
        for j in range(t.shape[0]):
            t[j] += v[j]
    return 0


@njit(**_JIT)
def fill_zero(lo, hi, x):
    """``x[lo:hi] = 0`` (x 1-D): a gradient cleared by several threads at once."""
    x[lo:hi] = 0
    return 0


# float64 sums of float32 squares may be reordered (vectorised): the order changes the result by a few
# float64 ulp, far below float32's, and NaN and inf still propagate (no "nnan"/"ninf" flags).
@njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc", "nsz", "contract"})
def sum_squares(lo, hi, x):
    """``Σ x[lo:hi]²`` of float32 elements, accumulated in float64 (no float32 overflow of big squares)."""
    w = x[lo:hi]
    s = 0.0
    for j in range(w.shape[0]):
        v = np.float64(w[j])
        s += v * v
    return s
