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

import ctypes
import os
import platform

import numpy as np

from ..core import accel, workspace
from ..core import blas as _blas
from .fast_pack import pack, pack_panels, pack_rows_panels

try:
    import llvmlite.binding as _llvm
    from llvmlite import ir
    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic, overload

    from ..core.atomics import SPIN_BEFORE_YIELD
    from ..core.atomics import atomic_add as _atomic_add, atomic_load as _atomic_load, sched_yield as _sched_yield
except ImportError:          # importable without numba (documentation); only fast_kernels calls in
    ir = None

    def njit(*args, **kwargs):
        return args[0] if args and callable(args[0]) else (lambda f: f)

    def intrinsic(f):
        return f

    def overload(_):
        return lambda f: f

__all__ = ["MR", "KC", "PACK_MIN_STEPS", "panel_width", "pack", "pack_panels", "pack_rows_panels",
           "operand_of_rows", "gemm_packed", "gemm", "gemm_blocks", "from_row",
           "operand", "split", "share", "barrier", "parts_for", "plan",
           "run_parts", "gemm_functions"]

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
                at = builder.add(builder.mul(const(r), ldc), const(h * lanes))
                return builder.bitcast(builder.gep(c, [at]), vptr)

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
    _K32 = tuple(_micro_kernel(r, False) for r in (1, 2, 4, 8))
    _K64 = tuple(_micro_kernel(r, True) for r in (1, 2, 4, 8))


def _block(rows, c, ldc, a, lda, b, kc, accumulate, like):   # pragma: no cover - replaced by the overload
    """``rows`` (1..MR) rows of ``like``'s dtype, as kernels of 8, 4, 2 and 1 rows (its binary digits)."""
    raise NotImplementedError


@overload(_block)
def _block_impl(rows, c, ldc, a, lda, b, kc, accumulate, like):
    k1, k2, k4, k8 = _K32 if like.dtype == types.float32 else _K64

    def impl(rows, c, ldc, a, lda, b, kc, accumulate, like):
        cs, as_ = ldc * like.itemsize, lda * like.itemsize         # bytes from one row to the next
        if rows & 8:
            k8(c, ldc, a, lda, b, kc, accumulate)
        r = rows & 8
        if rows & 4:
            k4(c + r * cs, ldc, a + r * as_, lda, b, kc, accumulate)
        r += rows & 4
        if rows & 2:
            k2(c + r * cs, ldc, a + r * as_, lda, b, kc, accumulate)
        r += rows & 2
        if rows & 1:
            k1(c + r * cs, ldc, a + r * as_, lda, b, kc, accumulate)
    return impl


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
    tile = np.empty((MR if n % NR else 0, NR), C.dtype)               # only the last panel's edge needs it
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
                    _block(rows, c0 + (i0 * ldc + j0) * item, ldc, a, lda, b, kc, acc, C)
                    continue
                if acc:
                    for r in range(rows):
                        for j in range(w):
                            tile[r, j] = C[i0 + r, j0 + j]
                _block(rows, t0, NR, a, lda, b, kc, acc, C)
                for r in range(rows):
                    for j in range(w):
                        C[i0 + r, j0 + j] = tile[r, j]


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


if ir is not None:
    gemm_functions()
    _sgemm, _dgemm = _gemm_type(types.float32), _gemm_type(types.float64)


def gemm(C, A, B, m, n, k, lda, ldb, ldc, beta):   # pragma: no cover - replaced by the overload
    """``C[:m, :n] = A[:m, :k] @ B[:k, :n] + beta C`` on row-major pointers with leading dimensions.

    One ``cblas_?gemm`` call of NumPy's BLAS (``ldb``: B's leading dimension); the loops' products on
    packed weights go through :func:`gemm_blocks`.
    """
    raise NotImplementedError


@overload(gemm)
def _gemm_impl(C, A, B, m, n, k, lda, ldb, ldc, beta):
    if C.dtype == types.float32:
        def impl(C, A, B, m, n, k, lda, ldb, ldc, beta):
            _sgemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, np.float32(1.0), A.ctypes.data, lda,
                   B.ctypes.data, ldb, np.float32(beta), C.ctypes.data, ldc)
    else:
        def impl(C, A, B, m, n, k, lda, ldb, ldc, beta):
            _dgemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, 1.0, A.ctypes.data, lda,
                   B.ctypes.data, ldb, float(beta), C.ctypes.data, ldc)
    return impl


def gemm_blocks(C, A, B, m, k, lda, ldc, beta, width, c0, c1):   # pragma: no cover - replaced by the overload
    """For every block of ``width`` columns (one per gate): ``C[:m, b*width + c0 : b*width + c1] (+)= A @ B[:k, same]``.

    ``B`` packed by :func:`operand` (4-D: blocks, panels, K, NR; ``c0`` a multiple of NR) or plain 2-D
    (one block, all of it: ``c0 = 0``, ``c1 = width``, one ``cblas_?gemm`` call).
    """
    raise NotImplementedError


@overload(gemm_blocks)
def _gemm_blocks_impl(C, A, B, m, k, lda, ldc, beta, width, c0, c1):
    if B.ndim == 2:
        def impl(C, A, B, m, k, lda, ldc, beta, width, c0, c1):
            gemm(C, A, B, m, width, k, lda, B.strides[0] // B.itemsize, ldc, beta)
    else:
        def impl(C, A, B, m, k, lda, ldc, beta, width, c0, c1):
            NR = B.shape[3]
            for b in range(B.shape[0]):
                gemm_packed(C[:, b * width + c0:], A, B[b, c0 // NR:], m, c1 - c0, k, lda, ldc, beta)
    return impl


def from_row(B, k0):   # pragma: no cover - replaced by the overload
    """Rows ``k0:`` of the right operand of :func:`gemm_blocks`, plain or packed."""
    raise NotImplementedError


@overload(from_row)
def _from_row_impl(B, k0):
    if B.ndim == 4:
        return lambda B, k0: B[:, :, k0:]
    return lambda B, k0: B[k0:]


#: sequences of at least this many steps run on packed weights (packing costs about one step's GEMM)
PACK_MIN_STEPS = 4


def operand(B: np.ndarray, steps: int, blocks: int = 1) -> np.ndarray:
    """The per-step right operand of a loop of ``steps``: ``B`` (K × N) packed as ``blocks`` equal column
    blocks (one per gate, so that a thread's share of every gate starts on a panel), or ``B`` as it is
    when the sequence is too short to pay for the packing. Big operands are packed by all of
    seqmodels' threads (``accel.parallel_for``)."""
    if steps < PACK_MIN_STEPS:
        return B
    K, N = B.shape
    w = N // blocks
    NR = panel_width(B.dtype)
    out = workspace.empty((blocks, (w + NR - 1) // NR, K, NR), B.dtype)
    for b in range(blocks):
        accel.parallel_for(out.shape[1], pack_panels, B[:, b * w:(b + 1) * w], out[b], cost=out[b].size)
    return out


def operand_of_rows(W: np.ndarray, blocks: int = 1, halve: int = 0) -> np.ndarray:
    """The packing of :func:`operand` for ``Wᵀ`` with its first ``halve`` columns halved, in one pass from the
    rows of ``W`` (N × K).

    The recurrent weights reach the loops this way: the transposing copy and the packing of
    :func:`operand` were two passes (measured, (2048 × 512) float32 on one thread: 1.9 + 1.45 ms).
    """
    N, K = W.shape
    w = N // blocks
    NR = panel_width(W.dtype)
    P = (w + NR - 1) // NR
    out = workspace.empty((blocks, P, K, NR), W.dtype)
    accel.parallel_for(blocks * P, pack_rows_panels, W, w, halve, W.dtype.type(0.5), out.reshape(blocks * P, K, NR),
                       cost=out.size)
    return out


# ------------------------------------------------------------------------------------------ threads
# A loop split over threads gives each thread a range of hidden units (every gate's columns for them):
# its part of each step's product and all the element-wise work for those units. A step's product
# needs the whole previous state, so the threads meet at a barrier once per step (twice for the
# notes' GRU). The barrier spins on two counters with atomic operations; a thread that waits far
# longer than any step takes (YIELD_LIMIT yields, seconds) marks the run failed and every thread
# returns, so a lost thread is an error, never a hang.
#
# The wait reads the counter in a tight loop without the x86 ``pause`` hint: under a hypervisor a
# vCPU that executes ``pause`` for more than a few thousand cycles is taken off its core (pause-loop
# exiting), and every step's wait then costs tens of microseconds. Measured on this 2-vCPU machine,
# the per-step product of a loop split over 2 threads (B = 32, 4 gates, 640 steps), µs per step:
# H = 256: 98 with ``pause``, 67 without, 60 with no barrier at all; H = 128: 26, 22, 19.

#: yields after which a thread waiting at a barrier gives up (its partner was lost)
YIELD_LIMIT = 1 << 22


@njit(inline="always")
def barrier(bar, parts):
    """Wait until all ``parts`` threads have arrived (``bar``: address of 3 int64 — arrivals, generation,
    failed). False when the run failed (a thread never came): the caller returns at once."""
    gen = _atomic_load(bar + 8)
    if _atomic_add(bar, 1) == parts - 1:          # the last to arrive resets the count and releases
        _atomic_add(bar, -parts)
        _atomic_add(bar + 8, 1)
        return True
    spins = 0
    while _atomic_load(bar + 8) == gen:
        spins += 1
        if spins >= SPIN_BEFORE_YIELD:                # long wait: let another thread have this core
            if _atomic_load(bar + 16) != 0:
                return False
            _sched_yield()
            if spins >= SPIN_BEFORE_YIELD + YIELD_LIMIT:
                _atomic_add(bar + 16, 1)
                return False
    return True


@njit(inline="always")
def split(H, NR, part, parts):
    """Hidden units ``[u0, u1)`` of thread ``part`` of ``parts``: near-equal ranges cut at multiples of NR."""
    if parts == 1:
        return 0, H
    u0 = 0 if part == 0 else min(H, (H * part // parts + NR // 2) // NR * NR)
    u1 = H if part == parts - 1 else min(H, (H * (part + 1) // parts + NR // 2) // NR * NR)
    return u0, u1


@njit(inline="always")
def share(H, NR, B, part, parts, by_rows):
    """``(u0, u1, r0, r1, meet)``: the hidden units and batch rows of thread ``part`` of ``parts``, and
    whether the threads must meet at a barrier every step (only when they share the rows: split by units).

    Split by rows, each thread runs the whole recurrence for its rows (a row's step needs only its own
    previous state), so the threads never wait for each other.
    """
    if by_rows:
        return 0, H, B * part // parts, B * (part + 1) // parts, False
    u0, u1 = split(H, NR, part, parts)
    return u0, u1, 0, B, parts > 1


#: hidden units from which a loop is split over threads. Below, a step's work is too small for a barrier
#: per step to pay (no gain at H = 128), and a short loop (PTB: 35 steps of H = 200, ~3 ms) lies inside
#: the window in which OpenBLAS's threads still spin after the step's last BLAS call (slower: 80 -> 94 ms
#: per PTB step). Measured gain at H = 512, 2 threads: char512-1 LSTM step 181 -> 128-149 ms.
SPLIT_MIN_UNITS = 256


def blas_workers_nap() -> bool:
    """True unless NumPy's OpenBLAS keeps its idle threads spinning for long (``OPENBLAS_THREAD_TIMEOUT``
    unset or above 24, i.e. more than 2^24 cycles, ~7 ms), which starves a split loop's second thread
    (measured, char512-1 LSTM on 2 threads: 260 ms per step at OpenBLAS's default 2^28, 128-133 ms at
    2^18-2^24; at 2^18-2^22 OpenBLAS's own threads wake too often: char128-1 12 -> 18 ms)."""
    if "openblas" not in str(_blas.blas_info().get("library", "")).lower():
        return True
    try:
        return int(os.environ.get("OPENBLAS_THREAD_TIMEOUT", "28")) <= 24
    except ValueError:
        return False


def parts_for(hidden: int, steps: int, dtype) -> int:
    """Threads for a loop split by hidden units: seqmodels' thread count (``accel.threads``) when the
    weights get packed, the layer has at least SPLIT_MIN_UNITS units and OpenBLAS's idle threads nap
    (:func:`blas_workers_nap`); else 1."""
    p = 1 if accel.in_part() else accel.threads()
    if p <= 1 or steps < PACK_MIN_STEPS or hidden < SPLIT_MIN_UNITS or not _workers_nap():
        return 1
    return max(1, min(p, hidden // panel_width(dtype)))


_NAP: dict = {}


def _workers_nap() -> bool:
    if accel.owns_threads():                          # the BLAS runs on one thread: no worker of its own
        return True
    if "v" not in _NAP:
        _NAP["v"] = blas_workers_nap()
    return _NAP["v"]


def plan(hidden: int, batch: int, steps: int, dtype, gates: int = 1) -> tuple[int, bool]:
    """``(threads, by_rows)`` for a loop of a cell with ``gates`` blocks of recurrent weights.

    When seqmodels runs on threads of its own (``accel.set_threads``, the BLAS on one thread, so no idle
    BLAS worker holds a core): by batch rows — no barrier per step — when every thread gets at least two
    register blocks of rows and the packed recurrent weights, which every thread then reads whole each
    step, are at most ROWS_WEIGHTS_MAX. Else by hidden units when :func:`parts_for` says so; else, on
    own threads, by rows (at least ROWS_MIN a thread); else one thread.
    """
    rows = min(accel.threads(), batch // ROWS_MIN) if accel.owns_threads() and steps >= PACK_MIN_STEPS else 1
    weights = gates * hidden * hidden * np.dtype(dtype).itemsize
    if rows > 1 and batch // rows >= 2 * ROWS_MIN and weights <= ROWS_WEIGHTS_MAX:
        return rows, True
    parts = parts_for(hidden, steps, dtype)
    if parts > 1:
        return parts, False
    return (rows, True) if rows > 1 else (1, False)


#: fewest batch rows per thread of a loop split by rows (one register block of the per-step product)
ROWS_MIN = MR
#: the largest packed recurrent weights a loop is split by rows for (measured, 2 threads, B = 32, ms per
#: training step by units -> by rows: H = 256 LSTM 68.0 -> 63.4 ms, GRU 62.7 -> 53.5; H = 512 (4 MiB for an LSTM)
#: RNN 38.1 -> 36.5, GRU 105.7 -> 101.4, LSTM 130.3 -> 129.1; H = 1024 (12-16 MiB) LSTM 215.5 -> 220.0,
#: GRU 163.4 -> 168.0: there each thread is better off reading only its share of the weights)
ROWS_WEIGHTS_MAX = 4 << 20


def _run_part(part, loop, args, parts, by_rows, bar):
    return loop(*args, part, parts, by_rows, bar.ctypes.data)


def run_parts(loop, args: tuple, parts: int, by_rows: bool = False) -> None:
    """``loop(*args, part, parts, by_rows, barrier)`` on ``parts`` threads at once (the caller's thread is
    part 0); ``by_rows``: the threads take batch rows (no barrier), else hidden units (see :func:`share`)."""
    bar = np.zeros(3, np.int64)
    if parts == 1:
        loop(*args, 0, 1, False, bar.ctypes.data)
    else:
        accel.on_threads(parts, _run_part, loop, args, parts, by_rows, bar)    # all at once: the barrier needs it
    if bar[2]:
        raise RuntimeError(f"a thread of a {parts}-thread recurrent loop never reached its barrier; "
                           "run with one BLAS thread (seqmodels.core.blas.set_num_threads(1)) to avoid it")
