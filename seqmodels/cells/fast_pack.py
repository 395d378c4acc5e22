"""Packing weights into the panels of :mod:`seqmodels.cells.fast_gemm`'s kernel (compiled, numba).

A panel is ``NR`` columns of the right operand, stored row after row: ``Bp[p, k, :] = B[k, p*NR:(p+1)*NR]``,
zero-padded at the right edge (see :func:`seqmodels.cells.fast_gemm.operand`). Every packer takes a range of
panels first, so :func:`seqmodels.core.accel.parallel_for` can share the work between threads.
"""

from __future__ import annotations

try:
    from numba import njit
except ImportError:          # importable without numba (documentation); only fast_gemm calls in

    def njit(*args, **kwargs):
        return args[0] if args and callable(args[0]) else (lambda f: f)

__all__ = ["pack_panels", "pack", "pack_rows_panels"]


@njit(nogil=True, cache=True)
def pack_panels(lo, hi, B, out):
    """Panels ``lo..hi-1`` of :func:`pack` (a range, so that threads can share the packing)."""
    K, N = B.shape
    NR = out.shape[2]
    for p in range(lo, hi):
        j0 = p * NR
        w = min(NR, N - j0)
        panel = out[p]
        for k in range(K):
            src, dst = B[k, j0:j0 + w], panel[k]
            for j in range(w):
                dst[j] = src[j]
            for j in range(w, NR):
                dst[j] = 0.0
    return 0


@njit(nogil=True, cache=True)
def pack(B, out):
    """``out[p, k, j] = B[k, p*NR + j]`` (zero past B's last column); ``out`` is (ceil(N/NR), K, NR)."""
    pack_panels(0, out.shape[0], B, out)


#: columns of a panel filled per pass of :func:`pack_rows_panels` (64 of them × NR stay in L1)
_PACK_K = 64


@njit(nogil=True, cache=True)
def pack_rows_panels(lo, hi, W, w, halve, half, out):
    """Panels ``lo..hi-1`` of :func:`pack` of ``Wᵀ`` cut into column blocks of width ``w``, read straight
    from the rows of ``W`` (N × K) — no transposed copy first. ``out`` is (blocks · P, K, NR) with P =
    ceil(w / NR) panels a block: panel q = b·P + p holds rows ``b·w + p·NR + j`` of W (zero where
    ``p·NR + j >= w``); rows below ``halve`` are multiplied by ``half`` (1/2: exact)."""
    NR, K = out.shape[2], W.shape[1]
    P = (w + NR - 1) // NR
    one = half + half
    for q in range(lo, hi):
        b, p = q // P, q % P
        panel = out[q]
        for k0 in range(0, K, _PACK_K):
            k1 = min(K, k0 + _PACK_K)
            dst = panel[k0:k1]
            for j in range(NR):
                c = p * NR + j
                if c < w:
                    r = b * w + c
                    row = W[r, k0:k1]
                    s = half if r < halve else one
                    for k in range(row.shape[0]):
                        dst[k, j] = row[k] * s
                else:
                    for k in range(k1 - k0):
                        dst[k, j] = 0.0
    return 0
