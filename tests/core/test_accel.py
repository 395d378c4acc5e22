"""The compiled element-wise kernels of the training step equal the NumPy code they replace, on one
thread and split over several (the softmax cross-entropy, Adam, the scatter-add of rows, exp32)."""

import numpy as np
import pytest

from seqmodels.cells import fast
from seqmodels.core import accel, blas
from seqmodels.core.functional import softmax_cross_entropy
from seqmodels.core.scatter import scatter_add_rows
from seqmodels.training.optim import Adam

needs_numba = pytest.mark.skipif(not accel.available(), reason=f"numba unavailable: {accel.why_unavailable()}")


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request, monkeypatch):
    """Run on 1 and on 2 threads, the latter split even for small arrays."""
    monkeypatch.setattr(accel, "PARALLEL_MIN", 1)
    with blas.blas_threads(request.param):
        yield request.param


def test_parallel_for_covers_the_range_once(threads):
    seen = np.zeros(1000, np.int64)

    def mark(lo, hi):
        seen[lo:hi] += 1
        return hi - lo
    assert sum(accel.parallel_for(1000, mark)) == 1000
    assert (seen == 1).all()
    assert accel.parallel_for(0, lambda lo, hi: (lo, hi)) == [(0, 0)]
    parts = accel.parallel_for(1000, lambda lo, hi, part, x: (part, x), "x", with_part=True)
    assert parts == [(i, "x") for i in range(accel.parts_for(1000))] and len(parts) == threads


@needs_numba
def test_exp32_within_two_ulp():
    import numba

    from seqmodels.core.accel_kernels import exp32

    @numba.njit
    def run(x, out):
        for j in range(x.shape[0]):
            out[j] = exp32(x[j])
    x = np.concatenate([-np.geomspace(1e-30, 86.99, 200_000), np.linspace(-86.99, 0, 200_000), [0.0]]).astype(np.float32)
    out = np.empty_like(x)
    run(x, out)
    exact = np.exp(x.astype(np.float64))
    ulp = np.abs(out - exact) / np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert ulp.max() <= 2.0
    edge = np.array([-87.0, -100.0, -np.inf, np.nan], np.float32)
    out = np.empty_like(edge)
    run(edge, out)
    assert out[:3].tolist() == [0.0, 0.0, 0.0] and np.isnan(out[3])


@needs_numba
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_softmax_cross_entropy_kernel_matches_numpy(threads, reduction, rng, monkeypatch):
    calls = spy(monkeypatch, "softmax_xent_rows")
    logits = (rng.standard_normal((4, 9, 301)) * 4).astype(np.float32)
    logits[0, 0, :] = -50.0                            # a flat row
    logits[1, 2, 7] = 60.0                             # a dominant logit
    targets = rng.integers(0, 301, size=(4, 9))
    lengths = np.array([9, 3, 0, 6])
    for kw in ({}, {"lengths": lengths}):
        with fast.enabled(False):
            want_loss, want_grad = softmax_cross_entropy(logits, targets, reduction=reduction, **kw)
        loss, grad = softmax_cross_entropy(logits, targets, reduction=reduction, **kw)
        assert loss == pytest.approx(want_loss, rel=2e-6)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=2e-7)
        assert grad.dtype == np.float32
    assert calls


@needs_numba
@pytest.mark.parametrize("in_place", [False, True])
def test_softmax_rows_with_bias_and_its_gradient_sum_match_numpy(threads, in_place, rng, monkeypatch):
    from seqmodels.core.functional import softmax_xent_rows

    calls = spy(monkeypatch, "softmax_xent_rows")
    z = (rng.standard_normal((37, 301)) * 4).astype(np.float32)
    b = rng.standard_normal(301).astype(np.float32)
    y = rng.integers(0, 301, size=37)
    want_db = np.ones(301, np.float32)
    with fast.enabled(False):
        want_loss, want = softmax_cross_entropy(z + b, y, reduction="mean")
    want_db += want.sum(axis=0)
    db = np.ones(301, np.float32)
    zz = z.copy()
    loss, grad = softmax_xent_rows(zz, y, 1 / 37, bias=b, dbias=db, out=zz if in_place else None)
    assert loss == pytest.approx(want_loss, rel=2e-6)
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=2e-7)
    np.testing.assert_allclose(db, want_db, rtol=1e-5, atol=1e-6)
    assert (grad is zz) == in_place
    assert len(calls) == threads                         # the kernel ran, in one slice per thread


@needs_numba
def test_softmax_cross_entropy_kernel_propagates_inf_and_nan(threads):
    z = np.zeros((3, 5), np.float32)
    z[1, 2] = np.nan
    z[2, 3] = np.inf
    with fast.enabled(False), np.errstate(invalid="ignore"):
        want, _ = softmax_cross_entropy(z, np.array([0, 0, 0]))
        want_grad = softmax_cross_entropy(z, np.array([0, 0, 0]))[1]
    loss, grad = softmax_cross_entropy(z, np.array([0, 0, 0]))
    assert np.isnan(want) and np.isnan(loss)
    np.testing.assert_array_equal(grad, want_grad)                   # NaN where NumPy has NaN, the rest equal
    assert grad[2].tolist()[:3] == [-1.0, 0.0, 0.0] and np.isnan(grad[2, 3])


def spy(monkeypatch, name):
    """Count the calls of compiled kernel ``name`` (a test must not compare NumPy with NumPy)."""
    from seqmodels.core import accel_kernels

    calls = []
    real = getattr(accel_kernels, name)
    monkeypatch.setattr(accel_kernels, name, lambda *a: calls.append(1) or real(*a))
    return calls


def test_float64_stays_on_numpy_for_the_loss_even_when_widened(rng):
    logits = rng.standard_normal((3, 4, 7))
    targets = rng.integers(0, 7, (3, 4))
    with fast.enabled(False):
        want = softmax_cross_entropy(logits, targets)
    with fast.enabled(True, dtypes=(np.float32, np.float64)):
        got = softmax_cross_entropy(logits, targets)
    assert got[0] == want[0] and np.array_equal(got[1], want[1])


@needs_numba
def test_adam_kernel_gives_the_numpy_update_bit_for_bit(threads, rng, monkeypatch):
    shapes = {"W": (300, 41), "b": (41,), "E": (7, 3)}
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    results = []
    for on in (False, True):
        p = {k: v.copy() for k, v in params.items()}
        g = {k: np.zeros_like(v) for k, v in p.items()}
        opt = Adam(p, g, lr=1e-2, betas=(0.8, 0.99), eps=1e-6)
        calls = spy(monkeypatch, "adam_update")
        with fast.enabled(on):
            for step in range(4):
                for k in g:
                    g[k][...] = np.random.default_rng(step).standard_normal(g[k].shape)
                opt.step()
        results.append(p)
        assert bool(calls) == on
    for k in shapes:
        assert np.array_equal(results[0][k], results[1][k]), k
        assert not np.array_equal(results[1][k], params[k])


@needs_numba
def test_scatter_kernel_matches_add_at(threads, rng, monkeypatch):
    calls = spy(monkeypatch, "scatter_add_rows")
    for V, N, D in ((7, 300, 33), (2000, 50, 5)):
        idx = rng.integers(0, V, N)
        values = rng.standard_normal((N, D)).astype(np.float32)
        target = rng.standard_normal((V, D)).astype(np.float32)
        want = target.astype(np.float64)
        np.add.at(want, idx, values.astype(np.float64))
        scatter_add_rows(target, idx, values)
        np.testing.assert_allclose(target, want, rtol=1e-5, atol=1e-5)
    assert calls
    with pytest.raises(ValueError):
        scatter_add_rows(np.zeros((3, 2), np.float32), np.array([1]), np.ones((1, 3), np.float32))
    with pytest.raises(IndexError):
        scatter_add_rows(np.zeros((3, 2), np.float32), np.array([3]), np.ones((1, 2), np.float32))


def _child_runs_parallel_for():
    seen = np.zeros(100, np.int64)

    def mark(lo, hi):
        seen[lo:hi] += 1
    accel.parallel_for(100, mark)
    raise SystemExit(0 if (seen == 1).all() else 3)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_parallel_for_works_in_a_forked_child(threads):
    import multiprocessing

    accel.parallel_for(100, lambda lo, hi: None)          # the parent's pool exists (2 threads)
    child = multiprocessing.get_context("fork").Process(target=_child_runs_parallel_for)
    child.start()
    child.join(timeout=30)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
