"""The time loops' own GEMM: weights packed once per sequence, a register-tiled kernel per step.

Every step of a recurrence multiplies a few rows (the batch) by the same recurrent weights:
``(32 × 512) @ (512 × 2048)`` a hundred times per sequence. A general BLAS call re-reads and re-packs
all of the weights on every call (OpenBLAS: 87-97 GFLOP/s for that product on one core of the
benchmark machine, against 150 for a large GEMM). Here the weights are laid out once per sequence
and every step runs straight from that layout:

- **Panels** (:func:`pack`): ``B`` (K × N) becomes ``Bp[p, k, :] = B[k, p*NR:(p+1)*NR]``, zero-padded
  at the right edge. One panel row is two SIMD registers (NR = 32 float32 or 16 float64 lanes),
  and a panel is read front to back, so the hardware prefetcher streams it.
- **Micro-kernel** (:func:`_micro_kernel`): an MR × NR block of ``C`` (MR ≤ 8 rows) lives in 2·MR
  vector registers for a run of KC steps of ``k``; each step loads one panel row (two vectors),
  broadcasts one ``A`` value per row and issues 2·MR fused multiply-adds. It is written directly as
  LLVM vector IR (``<16 x float>`` / ``<8 x double>`` and ``llvm.fma``), so its shape does not depend on
  what the auto-vectoriser makes of a loop nest; LLVM lowers it to AVX-512 or, on older CPUs, pairs of
  AVX2 registers.
- **Blocking** (:func:`gemm_packed`): ``k`` in runs of KC = 256 (a run of a panel, 32 KiB in float32,
  stays in L1 while every block of rows uses it), then panels, then blocks of rows. The last panel,
  when N is not a multiple of NR, goes through a small tile so nothing past column N is touched.

Measured on the benchmark machine, one core, float32 (``python benchmarks/bench_gemm.py``):
``(32 × 512) @ (512 × 2048)`` 447 µs = 150 GFLOP/s against 695 µs for OpenBLAS's ``sgemm``;
``(32 × 128) @ (128 × 512)`` 25 µs against 40; ``(20 × 200) @ (200 × 800)`` 39 µs against 67.

Rounding: each entry of ``C`` is a sum over ``k`` in increasing order, with one fused multiply-add per
term, restarting from the stored ``C`` at every KC boundary: a different order from the BLAS's, so
results agree with it to rounding (tested against float64 NumPy).
"""

from __future__ import annotations

import numpy as np

try:
    from llvmlite import ir
    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic, overload
except ImportError:          # importable without numba (documentation); only fast_kernels calls in
    ir = None

    def njit(*args, **kwargs):
        return args[0] if args and callable(args[0]) else (lambda f: f)

    def intrinsic(f):
        return f

    def overload(_):
        return lambda f: f

__all__ = ["MR", "KC", "panel_width", "pack", "gemm_packed"]

MR = 8          # rows of C per register block
KC = 256        # steps of k per run over a panel
_LANES = {np.dtype(np.float32): 16, np.dtype(np.float64): 8}     # one 512-bit vector


def panel_width(dtype) -> int:
    """NR: the columns of one panel (two vectors of ``dtype``)."""
    return 2 * _LANES[np.dtype(dtype)]


def _micro_kernel(rows: int, double: bool):
    """``C[:rows, :NR] (+)= A[:rows, :kc] @ Bp[:kc, :NR]`` on raw pointers, C and A with leading dimensions.

    ``accumulate`` False starts from zero (C is only written), True from the stored C.
    """
    lanes = 8 if double else 16

    @intrinsic
    def kernel(typingctx, c_ptr, ldc, a_ptr, lda, b_ptr, kc, accumulate):
        sig = types.void(types.voidptr, types.int64, types.voidptr, types.int64, types.voidptr,
                         types.int64, types.boolean)

        def codegen(context, builder, signature, args):
            c_raw, ldc, a_raw, lda, b_raw, kc, accumulate = args
            real = ir.DoubleType() if double else ir.FloatType()
            vec, i64, i32 = ir.VectorType(real, lanes), ir.IntType(64), ir.IntType(32)
            ptr, vptr = real.as_pointer(), vec.as_pointer()
            c, a, b = (builder.bitcast(p, ptr) for p in (c_raw, a_raw, b_raw))
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]), f"llvm.fma.v{lanes}f{64 if double else 32}")
            const = lambda v: ir.Constant(i64, v)   # noqa: E731
            acc = [[cgutils.alloca_once(builder, vec) for _ in range(2)] for _ in range(rows)]

            def c_at(r, h):                        # &C[r, h*lanes] as a vector pointer
                return builder.bitcast(builder.gep(c, [builder.add(builder.mul(const(r), ldc), const(h * lanes))]), vptr)

            for r in range(rows):
                for h in range(2):
                    builder.store(ir.Constant(vec, None), acc[r][h])
            with builder.if_then(accumulate):
                for r in range(rows):
                    for h in range(2):
                        builder.store(builder.load(c_at(r, h), align=1), acc[r][h])
            undef = ir.Constant(vec, ir.Undefined)
            broadcast = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
            with cgutils.for_range(builder, kc) as loop:
                k = loop.index
                row = builder.mul(k, const(2 * lanes))
                bv = [builder.load(builder.bitcast(builder.gep(b, [builder.add(row, const(h * lanes))]), vptr),
                                   align=1) for h in range(2)]
                for r in range(rows):
                    x = builder.load(builder.gep(a, [builder.add(builder.mul(const(r), lda), k)]))
                    xv = builder.shuffle_vector(builder.insert_element(undef, x, ir.Constant(i32, 0)), undef, broadcast)
                    for h in range(2):
                        builder.store(builder.call(fma, [xv, bv[h], builder.load(acc[r][h])]), acc[r][h])
            for r in range(rows):
                for h in range(2):
                    builder.store(builder.load(acc[r][h]), c_at(r, h), align=1)
            return context.get_dummy_value()

        return sig, codegen

    return kernel


if ir is not None:
    _K32 = tuple(_micro_kernel(r, False) for r in range(1, MR + 1))
    _K64 = tuple(_micro_kernel(r, True) for r in range(1, MR + 1))


def _block(rows, c, ldc, a, lda, b, kc, accumulate, like):   # pragma: no cover - replaced by the overload
    """One micro-kernel call for ``rows`` (1..MR) rows of ``like``'s dtype."""
    raise NotImplementedError


@overload(_block)
def _block_impl(rows, c, ldc, a, lda, b, kc, accumulate, like):
    k1, k2, k3, k4, k5, k6, k7, k8 = _K32 if like.dtype == types.float32 else _K64

    def impl(rows, c, ldc, a, lda, b, kc, accumulate, like):
        if rows == 8:
            k8(c, ldc, a, lda, b, kc, accumulate)
        elif rows == 4:
            k4(c, ldc, a, lda, b, kc, accumulate)
        elif rows == 7:
            k7(c, ldc, a, lda, b, kc, accumulate)
        elif rows == 6:
            k6(c, ldc, a, lda, b, kc, accumulate)
        elif rows == 5:
            k5(c, ldc, a, lda, b, kc, accumulate)
        elif rows == 3:
            k3(c, ldc, a, lda, b, kc, accumulate)
        elif rows == 2:
            k2(c, ldc, a, lda, b, kc, accumulate)
        else:
            k1(c, ldc, a, lda, b, kc, accumulate)
    return impl


@njit(nogil=True, cache=True)
def pack(B, out):
    """``out[p, k, j] = B[k, p*NR + j]`` (zero past B's last column); ``out`` is (ceil(N/NR), K, NR)."""
    K, N = B.shape
    NR = out.shape[2]
    for p in range(out.shape[0]):
        j0 = p * NR
        w = min(NR, N - j0)
        panel = out[p]
        for k in range(K):
            src, dst = B[k, j0:j0 + w], panel[k]
            for j in range(w):
                dst[j] = src[j]
            for j in range(w, NR):
                dst[j] = 0.0


@njit(inline="always")
def gemm_packed(C, A, Bp, m, n, k, lda, ldc, beta):
    """``C[:m, :n] = A[:m, :k] @ B[:k, :n] + beta C`` (beta 0 or 1) with ``Bp`` = :func:`pack` of B.

    ``Bp`` may be a view ``Bp[:, k0:]`` (the product with rows k0.. of B); C and A are row-major
    with leading dimensions ``ldc`` and ``lda`` (in elements).
    """
    NR = Bp.shape[2]
    panels = min(Bp.shape[0], (n + NR - 1) // NR)
    item = Bp.itemsize
    sp = Bp.strides[0]
    b0, a0, c0 = Bp.ctypes.data, A.ctypes.data, C.ctypes.data
    tile = np.empty((MR, NR), C.dtype) if n % NR else np.empty((1, NR), C.dtype)
    t0 = tile.ctypes.data
    for kk in range(0, k, KC):
        kc = min(KC, k - kk)
        acc = beta != 0 or kk > 0
        for p in range(panels):
            j0 = p * NR
            w = min(NR, n - j0)
            b = b0 + p * sp + kk * NR * item
            for i0 in range(0, m, MR):
                rows = min(MR, m - i0)
                a = a0 + (i0 * lda + kk) * item
                if w == NR:
                    _block(rows, c0 + (i0 * ldc + j0) * item, ldc, a, lda, b, kc, acc, tile)
                    continue
                if acc:
                    for r in range(rows):
                        for j in range(w):
                            tile[r, j] = C[i0 + r, j0 + j]
                _block(rows, t0, NR, a, lda, b, kc, acc, tile)
                for r in range(rows):
                    for j in range(w):
                        C[i0 + r, j0 + j] = tile[r, j]
