"""The recycled scratch memory and the accumulating GEMM that the training step's hot paths use."""

import threading

import numpy as np
import pytest

from seqmodels.core import blas
from seqmodels.core.workspace import Workspace, workspace


def test_a_buffer_still_referenced_is_never_handed_out_again():
    ws = Workspace()
    a = ws.empty((4, 5), np.float32)
    a[...] = 7.0
    b = ws.empty((4, 5), np.float32)
    b[...] = 1.0
    assert not np.shares_memory(a, b)
    assert (a == 7.0).all()


def test_a_view_keeps_its_buffer_alive():
    ws = Workspace()
    a = ws.empty((10, 10), np.float64)
    view = a[3:, 2]
    del a
    b = ws.empty((10, 10), np.float64)
    assert not np.shares_memory(view, b)
    del view
    c = ws.empty((100,), np.float64)
    assert not np.shares_memory(b, c)


def test_freed_memory_is_reused_for_any_shape_and_dtype_that_fits():
    ws = Workspace()
    a = ws.empty((8, 16), np.float64)
    ptr = a.__array_interface__["data"][0]
    del a
    b = ws.empty((16, 8), np.float32)                 # half the bytes: same block
    assert b.__array_interface__["data"][0] == ptr
    assert b.flags.c_contiguous and b.shape == (16, 8) and b.dtype == np.float32
    assert b.__array_interface__["data"][0] % 64 == 0
    z = ws.zeros((3, 3), np.int64)
    assert (z == 0).all()


def test_a_much_larger_free_block_is_not_used_for_a_small_request():
    ws = Workspace()
    big = ws.empty((1 << 20,), np.uint8)
    ptr = big.__array_interface__["data"][0]
    del big
    small = ws.empty((16,), np.uint8)
    assert small.__array_interface__["data"][0] != ptr


def test_the_number_of_kept_blocks_is_bounded():
    ws = Workspace(max_buffers=3)
    for n in range(1, 10):
        ws.empty((n * 1000,), np.float32)
    assert len(ws._raw) <= 3
    held = [ws.empty((100,), np.float32) for _ in range(5)]   # all in use: more than the cap is fine
    assert len({h.__array_interface__["data"][0] for h in held}) == 5
    del held
    ws.empty((10,), np.float32)                               # once they are free, back under the cap
    assert len(ws._raw) <= 3
    ws.clear()
    assert ws.held_bytes() == 0


def test_each_thread_has_its_own_workspace():
    seen = []
    t = threading.Thread(target=lambda: seen.append(workspace()))
    t.start()
    t.join()
    assert seen[0] is not workspace()


@pytest.fixture
def blas_calls(monkeypatch):
    """Counts the calls that reach the BLAS (the tests below must not pass on the NumPy fallback alone)."""
    real = blas._cblas()
    if real is None:
        pytest.skip("NumPy's BLAS has no cblas_?gemm we can call")
    calls = []
    spied = {k: (lambda *a, f=f: calls.append(1) or f(*a)) for k, f in real.items()}
    monkeypatch.setattr(blas, "_cblas", lambda: spied)
    return calls


def _layouts(X, rng):
    """X as: itself, a transposed copy's transpose, a view with padded rows, and a padded transpose."""
    m, n = X.shape
    padded = np.zeros((m, n + 3), X.dtype)
    padded[:, :n] = X
    padded_t = np.zeros((n, m + 2), X.dtype)
    padded_t[:, :m] = X.T
    return [X, np.ascontiguousarray(X.T).T, padded[:, :n], padded_t[:, :m].T]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_add_matches_numpy_for_views_and_transposes(dtype, blas_calls):
    rng = np.random.default_rng(0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for m, k, n in ((5, 7, 3), (64, 300, 17), (1, 1, 1), (0, 3, 2), (3, 0, 2)):
        A = rng.standard_normal((m, k)).astype(dtype)
        B = rng.standard_normal((k, n)).astype(dtype)
        for a in _layouts(A, rng):
            for b in _layouts(B, rng) + [np.repeat(B, 2, axis=1)[:, ::2]]:
                big = rng.standard_normal((m + 2, n + 5)).astype(dtype)
                around = big.copy()
                C = big[1:m + 1, 2:n + 2]                            # a strided view, written in place
                expect = C.astype(np.float64) + A.astype(np.float64) @ B.astype(np.float64)
                out = blas.gemm_add(C, a, b)
                assert out is C
                np.testing.assert_allclose(C, expect, rtol=tol, atol=tol * max(k, 1))
                around[1:m + 1, 2:n + 2] = C
                assert np.array_equal(big, around)                   # nothing outside the view written
    assert len(blas_calls) >= 40                                       # the BLAS path ran (all but the fallbacks)


def test_gemm_add_with_a_transposed_or_overlapping_output_is_still_right(blas_calls):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((6, 4))
    B = rng.standard_normal((4, 5))
    C = np.zeros((5, 6)).T                                             # column-major C: NumPy fallback
    blas.gemm_add(C, A, B)
    np.testing.assert_allclose(C, A @ B, rtol=1e-12)
    Z = rng.standard_normal((8, 8))
    W = rng.standard_normal((8, 8))
    expect = Z + Z @ W
    blas.gemm_add(Z, Z, W)                                             # C is also A: must not be read mid-product
    np.testing.assert_allclose(Z, expect, rtol=1e-12)


def test_gemm_add_falls_back_for_mixed_dtypes():
    C = np.zeros((2, 2), np.float64)
    blas.gemm_add(C, np.eye(2, dtype=np.float32), np.full((2, 2), 3.0))
    assert C.tolist() == [[3.0, 3.0], [3.0, 3.0]]
