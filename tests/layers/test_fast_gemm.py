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
def test_loops_on_packed_weights_equal_loops_on_the_blas(name, rng, monkeypatch):
    """Sizes that cross every edge: H = 70 (no whole panel), backward K = 4H = 280 (past one KC run),
    11 rows (a block of 8 and one of 3), ragged lengths."""
    from seqmodels.cells import fast_kernels

    layer, x, _, s0, dout = problem(name, rng, B=11, T=7, D=5, H=70)
    lengths = np.array([7, 2, 4, 0, 1, 7, 7, 3, 5, 6, 7])
    s0 = random_state(layer, 11, rng)
    with fast.enabled(False):
        want = run(layer, x, lengths, s0, dout)
    wide = fast.enabled(True, dtypes=(np.float32, np.float64))
    with wide:
        monkeypatch.setattr(fast_kernels, "PACK_MIN_STEPS", 1)
        packed = run(layer, x, lengths, s0, dout)
        monkeypatch.setattr(fast_kernels, "PACK_MIN_STEPS", 10**9)
        blas = run(layer, x, lengths, s0, dout)
    assert_all_close(packed, want, rtol=1e-10, atol=1e-11)
    assert_all_close(blas, want, rtol=1e-10, atol=1e-11)


def test_short_sequences_keep_the_blas_and_long_ones_pack(rng):
    from seqmodels.cells import fast_kernels

    W = rng.standard_normal((6, 40))
    assert fast_kernels.operand(W, fast_kernels.PACK_MIN_STEPS - 1) is W
    P = fast_kernels.operand(W, fast_kernels.PACK_MIN_STEPS)
    assert P.ndim == 3 and P.shape[1] == 6
    np.testing.assert_array_equal(P.transpose(1, 0, 2).reshape(6, -1)[:, :40], W)
