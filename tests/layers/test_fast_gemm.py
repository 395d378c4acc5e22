"""The compiled loops' own GEMM on packed weights: equal to NumPy's product to rounding for every
shape edge (rows not a multiple of the register block, columns not a multiple of a panel, k past a
KC run, k offsets into the packed rows), C written only where it should be, and the loops give the
same results whether they run on packed weights or on the BLAS."""

import numpy as np
import pytest

from seqmodels.cells import fast

from .helpers import random_state
from .test_fast_paths import assert_all_close, problem, run

pytestmark = pytest.mark.skipif(not fast.available(), reason=f"numba path unavailable: {fast.why_unavailable()}")

SHAPES = [  # m, k, n, k0 (rows of B skipped)
    (1, 1, 1, 0), (1, 3, 5, 0), (3, 17, 32, 0), (8, 256, 32, 0), (9, 300, 70, 0),
    (16, 257, 64, 3), (17, 600, 33, 100), (32, 128, 512, 0), (20, 200, 200, 0),
]


@pytest.fixture(scope="module")
def kernels():
    import numba

    from seqmodels.cells import fast_gemm

    @numba.njit
    def product(C, A, Bp, m, n, k, beta):
        fast_gemm.gemm_packed(C, A, Bp, m, n, k, A.strides[0] // A.itemsize, C.strides[0] // C.itemsize, beta)

    def pack(B):
        NR = fast_gemm.panel_width(B.dtype)
        out = np.full((-(-B.shape[1] // NR), B.shape[0], NR), np.nan, B.dtype)   # padding must be written
        fast_gemm.pack(B, out)
        return out

    return product, pack


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("m, k, n, k0", SHAPES)
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_packed_product_equals_numpy(kernels, m, k, n, k0, beta, dtype, rtol, rng):
    product, pack = kernels
    A = rng.standard_normal((m + 2, k + 5)).astype(dtype)[1:m + 1, 2:k + 2]     # strided views
    B = rng.standard_normal((k0 + k, n)).astype(dtype)
    C = rng.standard_normal((m + 3, n + 7)).astype(dtype)
    before = C.copy()
    view = C[1:m + 1, 3:n + 3]
    if beta == 0:
        view[...] = np.nan                                                       # must not be read
    want = A.astype(np.float64) @ B[k0:].astype(np.float64) + (beta * before[1:m + 1, 3:n + 3] if beta else 0)
    product(view, A, pack(B)[:, k0:], m, n, k, beta)
    scale = np.abs(A).astype(np.float64) @ np.abs(B[k0:]).astype(np.float64) + np.abs(before[1:m + 1, 3:n + 3])
    assert np.all(np.abs(view - want) <= rtol * scale)
    outside = np.ones(C.shape, bool)
    outside[1:m + 1, 3:n + 3] = False
    np.testing.assert_array_equal(C[outside], before[outside])                  # nothing else touched


def test_pack_lays_out_panels_and_zero_pads(kernels, rng):
    _, pack = kernels
    B = rng.standard_normal((5, 40)).astype(np.float32)                          # NR = 32: two panels
    P = pack(B)
    assert P.shape == (2, 5, 32)
    np.testing.assert_array_equal(P[0], B[:, :32])
    np.testing.assert_array_equal(P[1, :, :8], B[:, 32:])
    assert np.all(P[1, :, 8:] == 0)


@pytest.mark.parametrize("name", ["lstm", "lstm-peephole", "gru-full", "gru-simplified", "gru-reset-after",
                                  "rnn-tanh", "rnn-relu-identity"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_loops_on_packed_weights_equal_loops_on_the_blas(name, threads, rng, monkeypatch):
    """Sizes that cross every edge: H = 70 (no whole panel; 1-3 threads get 70, 32 + 38 or 16 + 32 + 22
    units), backward K = 4H = 280 (past one KC run), 11 rows (a block of 8 and one of 3), ragged lengths."""
    from seqmodels.cells import fast_gemm
    from seqmodels.core import accel

    layer, x, _, s0, dout = problem(name, rng, B=11, T=7, D=5, H=70)
    lengths = np.array([7, 2, 4, 0, 1, 7, 7, 3, 5, 6, 7])
    s0 = random_state(layer, 11, rng)
    with fast.enabled(False):
        want = run(layer, x, lengths, s0, dout)
    monkeypatch.setattr(accel, "threads", lambda: threads)
    monkeypatch.setattr(fast_gemm, "SPLIT_MIN_UNITS", 1)
    monkeypatch.setitem(fast_gemm._NAP, "v", True)
    assert fast_gemm.parts_for(70, 7, np.float64) == threads
    with fast.enabled(True, dtypes=(np.float32, np.float64)):
        monkeypatch.setattr(fast_gemm, "PACK_MIN_STEPS", 1)
        packed = run(layer, x, lengths, s0, dout)
        monkeypatch.setattr(fast_gemm, "PACK_MIN_STEPS", 10**9)
        blas = run(layer, x, lengths, s0, dout)
    assert_all_close(packed, want, rtol=1e-10, atol=1e-11)
    assert_all_close(blas, want, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("name", ["lstm", "lstm-peephole", "gru-reset-after", "gru-full", "gru-simplified", "rnn-tanh"])
def test_float32_loops_split_over_threads_give_the_same_bits(name, rng, monkeypatch):
    """Each thread computes its units exactly as one thread would: the same bits for 1, 2 and 3 threads,
    and the NumPy loops' results to float32 rounding (amplified through 9 steps of random weights)."""
    from seqmodels.cells import fast_gemm
    from seqmodels.core import accel

    monkeypatch.setattr(fast_gemm, "SPLIT_MIN_UNITS", 1)
    monkeypatch.setitem(fast_gemm._NAP, "v", True)
    layer, x, lengths, s0, dout = problem(name, rng, B=5, T=9, D=8, H=96, dtype=np.float32)
    s0 = tuple(s.astype(np.float32) for s in s0) if isinstance(s0, tuple) else s0.astype(np.float32)
    with fast.enabled(False):
        want = run(layer, x, lengths, s0, dout)
    got = {}
    for threads in (1, 2, 3):
        monkeypatch.setattr(accel, "threads", lambda threads=threads: threads)
        assert fast_gemm.parts_for(96, 9, np.float32) == threads                 # 3 panels of 32 units
        with fast.enabled(True):
            got[threads] = run(layer, x, lengths, s0, dout)
    for threads in (2, 3):
        for i, (a, b) in enumerate(zip(got[threads], got[1])):
            np.testing.assert_array_equal(a, b, err_msg=f"output {i}, {threads} threads")
    for i, (g, w) in enumerate(zip(got[1], want)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * np.abs(w).max(), err_msg=f"output {i}")


def test_a_thread_that_never_arrives_is_an_error_not_a_hang():
    import ctypes

    import numba

    from seqmodels.cells import fast_gemm

    @numba.njit
    def wait(addr):
        return fast_gemm.barrier(addr, 2)

    bar = np.zeros(3, np.int64)
    bar[2] = 1                                                       # the run was marked failed
    assert not wait(bar.ctypes.data)
    bar[:] = [1, 0, 0]                                               # the other thread is already waiting
    assert wait(bar.ctypes.data) and list(bar) == [0, 1, 0]          # last arrival: released, count reset

    def lost(*args):
        (ctypes.c_int64 * 3).from_address(args[-1])[2] = 1

    with pytest.raises(RuntimeError, match="never reached its barrier"):
        fast_gemm.run_parts(lost, (), 1)


def test_short_sequences_keep_the_blas_and_long_ones_pack_per_block(rng):
    from seqmodels.cells import fast_gemm

    W = rng.standard_normal((6, 40))
    assert fast_gemm.operand(W, fast_gemm.PACK_MIN_STEPS - 1) is W
    whole = fast_gemm.operand(W, fast_gemm.PACK_MIN_STEPS)
    assert whole.shape == (1, 3, 6, 16)                                  # float64: panels of 16
    np.testing.assert_array_equal(whole[0].transpose(1, 0, 2).reshape(6, -1)[:, :40], W)
    gates = fast_gemm.operand(W, fast_gemm.PACK_MIN_STEPS, blocks=2)     # each block starts a panel
    assert gates.shape == (2, 2, 6, 16)
    for b in range(2):
        np.testing.assert_array_equal(gates[b].transpose(1, 0, 2).reshape(6, -1)[:, :20], W[:, 20 * b:20 * (b + 1)])


def test_loops_split_only_when_it_pays(monkeypatch):
    from seqmodels.cells import fast_gemm
    from seqmodels.core import accel

    monkeypatch.setattr(accel, "threads", lambda: 2)
    monkeypatch.setitem(fast_gemm._NAP, "v", True)
    assert fast_gemm.parts_for(512, 100, np.float32) == 2
    assert fast_gemm.parts_for(200, 100, np.float32) == 1                      # a step too small
    assert fast_gemm.parts_for(512, fast_gemm.PACK_MIN_STEPS - 1, np.float32) == 1
    monkeypatch.setitem(fast_gemm._NAP, "v", False)                            # OpenBLAS threads spin
    assert fast_gemm.parts_for(512, 100, np.float32) == 1
    monkeypatch.setattr(accel, "threads", lambda: 1)
    monkeypatch.setitem(fast_gemm._NAP, "v", True)
    assert fast_gemm.parts_for(512, 100, np.float32) == 1


def test_openblas_idle_threads_count_as_napping_only_with_a_short_timeout(monkeypatch):
    from seqmodels.cells import fast_gemm

    monkeypatch.setattr(fast_gemm._blas, "blas_info", lambda: {"library": "/x/libscipy_openblas64_.so"})
    for value, naps in [("24", True), ("4", True), ("25", False), ("28", False), ("junk", False)]:
        monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", value)
        assert fast_gemm.blas_workers_nap() is naps
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT")
    assert not fast_gemm.blas_workers_nap()
    monkeypatch.setattr(fast_gemm._blas, "blas_info", lambda: {"library": "/x/libmkl_rt.so"})
    assert fast_gemm.blas_workers_nap()


@pytest.mark.parametrize("name", ["lstm", "lstm-peephole", "gru-reset-after", "gru-full", "gru-simplified", "rnn-tanh",
                                  "rnn-relu-identity"])
@pytest.mark.parametrize("reverse", [False, True])
def test_float32_loops_split_by_batch_rows_give_the_same_bits(name, reverse, rng, monkeypatch):
    """On seqmodels' own threads a loop too narrow to split by units takes batch rows per thread (no
    barrier): every row is computed exactly as on one thread, ragged lengths and initial states included,
    for 2 and 3 threads (26 rows: parts of 13 and 8/9/9 rows, register blocks of 8, 4, 1)."""
    from seqmodels.cells import fast_gemm
    from seqmodels.core import accel

    B, T, H = 26, 9, 40
    layer, x, _, _, dout = problem(name, rng, reverse, B=B, T=T, D=8, H=H, dtype=np.float32)
    lengths = rng.integers(0, T + 1, B)
    lengths[:3] = T
    s0 = random_state(layer, B, rng)
    s0 = tuple(s.astype(np.float32) for s in s0) if isinstance(s0, tuple) else s0.astype(np.float32)
    seen = []
    real_run_parts = fast_gemm.run_parts
    from seqmodels.cells import fast_kernels
    monkeypatch.setattr(fast_kernels, "run_parts",
                        lambda loop, args, parts, by_rows=False: (seen.append((parts, by_rows)),
                                                                   real_run_parts(loop, args, parts, by_rows)))
    before = accel.set_threads(1)
    try:
        with fast.enabled(True):
            want = run(layer, x, lengths, s0, dout)
        assert set(seen) == {(1, False)}
        for threads in (2, 3):
            seen.clear()
            accel.set_threads(threads)
            assert fast_gemm.plan(H, B, T, np.float32) == (threads, True)
            with fast.enabled(True):
                got = run(layer, x, lengths, s0, dout)
            assert set(seen) == {(threads, True)}
            for i, (a, b) in enumerate(zip(got, want)):
                np.testing.assert_array_equal(a, b, err_msg=f"output {i}, {threads} threads")
    finally:
        accel.set_threads(before)


def test_loops_split_by_rows_only_on_own_threads_and_with_rows_enough(monkeypatch):
    from seqmodels.cells import fast_gemm
    from seqmodels.core import accel

    before = accel.set_threads(None)
    try:
        assert fast_gemm.plan(128, 32, 64, np.float32) == (1, False)                       # following the BLAS
        accel.set_threads(2)
        assert fast_gemm.plan(128, 32, 64, np.float32) == (2, True)
        assert fast_gemm.plan(128, 2 * fast_gemm.ROWS_MIN - 1, 64, np.float32) == (1, False)   # too few rows
        assert fast_gemm.plan(128, 32, fast_gemm.PACK_MIN_STEPS - 1, np.float32) == (1, False)
        assert fast_gemm.plan(512, 32, 64, np.float32, 4) == (2, True)      # 4 MiB of weights: still by rows
        assert fast_gemm.plan(1024, 32, 64, np.float32, 4) == (2, False)    # 16 MiB: each thread its units
        assert fast_gemm.plan(1024, 32, 64, np.float64, 1) == (2, False)    # (8 MiB in float64)
        assert fast_gemm.plan(512, 16, 64, np.float32, 1) == (2, False)     # one register block a thread: units
        assert fast_gemm.plan(128, 16, 64, np.float32, 1) == (2, True)      # ...unless too narrow to split
        accel.set_threads(1)
        assert fast_gemm.plan(128, 32, 64, np.float32) == (1, False)
    finally:
        accel.set_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packing_from_rows_equals_packing_the_halved_transpose(threads, dtype, rng, monkeypatch):
    """operand_of_rows(W, blocks, halve) is operand(Wᵀ with its first `halve` columns halved), bit for bit: for
    blocks of widths that are and are not whole panels, split over threads or not (big enough to split)."""
    from seqmodels.cells import fast_gemm
    from seqmodels.core import accel

    before = accel.set_threads(threads)
    monkeypatch.setattr(accel, "PARALLEL_MIN", 1)                       # split even these small ones
    try:
        steps = fast_gemm.PACK_MIN_STEPS
        for N, K, blocks, halve in [(4 * 70, 33, 4, 3 * 70), (3 * 96, 130, 3, 2 * 96), (40, 7, 1, 0), (64, 5, 2, 64)]:
            W = rng.standard_normal((N, K)).astype(dtype)
            T = np.ascontiguousarray(W.T)
            T[:, :halve] *= 0.5
            want = fast_gemm.operand(T, steps, blocks)
            got = fast_gemm.operand_of_rows(W, blocks, halve)
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    finally:
        accel.set_threads(before)
