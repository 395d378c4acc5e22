"""The fast paths equal the plain ones: optimised NumPy loops ≡ the per-step equations (step/step_back),
the optional numba loops ≡ the NumPy loops (float64 to rounding, float32 to float32 rounding), the lean
generation step ≡ one step of forward; and the BLAS thread control round-trips."""

import numpy as np
import pytest

import seqmodels as sm
from seqmodels.cells import fast
from seqmodels.cells.base import Cell, chunks_backwards
from seqmodels.core import blas

from .helpers import CELLS, make, random_state

needs_numba = pytest.mark.skipif(not fast.available(), reason=f"numba path unavailable: {fast.why_unavailable()}")


def run(layer, x, lengths, s0, dout, dstate=None):
    layer.zero_grad()
    out, final, cache = layer.forward(x, lengths, s0)
    dx, d0 = layer.backward(dout, cache, dstate)
    flat = lambda s: [np.asarray(p) for p in (s if isinstance(s, tuple) else (s,))]  # noqa: E731
    return [out, *flat(final), dx, *flat(d0), *(g.copy() for g in layer.grads.values())]


def problem(name, rng, reverse=False, B=5, T=6, D=3, H=4, dtype=np.float64):
    layer = make(name, D, H, reverse=reverse)
    if dtype != np.float64:
        layer = type(layer)(**layer.config(), dtype=dtype, seed=0)
        for k, v in make(name, D, H, reverse=reverse).params.items():
            layer.params[k] = v.astype(dtype)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    lengths = np.array([6, 2, 4, 0, 1])[:B]
    s0 = random_state(layer, B, rng)
    dout = rng.standard_normal((B, T, H)).astype(dtype)
    return layer, x, lengths, s0, dout


def assert_all_close(got, want, **tol):
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, err_msg=f"output {i}", **tol)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reverse", [False, True])
def test_numpy_loops_equal_the_step_equations(name, reverse, rng, monkeypatch):
    layer, x, lengths, s0, dout = problem(name, rng, reverse)
    dstate = random_state(layer, 5, rng)
    with fast.enabled(False):
        got = run(layer, x, lengths, s0, dout, dstate)
        cls = type(layer.cell)
        monkeypatch.setattr(cls, "forward_loop", Cell.forward_loop)      # step() one step at a time
        monkeypatch.setattr(cls, "backward_loop", Cell.backward_loop)    # step_back() one step at a time
        want = run(layer, x, lengths, s0, dout, dstate)
    assert_all_close(got, want, rtol=1e-11, atol=1e-13)


def test_numpy_loops_handle_missing_output_gradient(rng, monkeypatch):
    layer, x, lengths, s0, _ = problem("lstm-peephole", rng)
    dstate = random_state(layer, 5, rng)
    with fast.enabled(False):
        got = run(layer, x, lengths, s0, None, dstate)
        monkeypatch.setattr(type(layer.cell), "backward_loop", Cell.backward_loop)
        want = run(layer, x, lengths, s0, None, dstate)
    assert_all_close(got, want, rtol=1e-11, atol=1e-13)


@needs_numba
@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reverse", [False, True])
def test_numba_loops_equal_numpy_loops_in_float64(name, reverse, rng):
    layer, x, lengths, s0, dout = problem(name, rng, reverse)
    dstate = random_state(layer, 5, rng)
    with fast.enabled(False):
        want = run(layer, x, lengths, s0, dout, dstate)
    with fast.enabled(True, dtypes=(np.float32, np.float64)):
        got = run(layer, x, lengths, s0, dout, dstate)
        got_no_dout = run(layer, x, lengths, s0, None, dstate)
    with fast.enabled(False):
        want_no_dout = run(layer, x, lengths, s0, None, dstate)
    assert_all_close(got, want, rtol=1e-12, atol=1e-14)
    assert_all_close(got_no_dout, want_no_dout, rtol=1e-12, atol=1e-14)


@needs_numba
@pytest.mark.parametrize("name", ["lstm", "lstm-peephole", "gru-full", "gru-reset-after", "rnn-tanh"])
def test_numba_loops_equal_numpy_loops_in_float32(name, rng):
    layer, x, lengths, s0, dout = problem(name, rng, B=5, T=6, D=8, H=16, dtype=np.float32)
    s0 = tuple(s.astype(np.float32) for s in s0) if isinstance(s0, tuple) else s0.astype(np.float32)
    with fast.enabled(False):
        want = run(layer, x, lengths, s0, dout)
    with fast.enabled(True):
        got = run(layer, x, lengths, s0, dout)
    assert_all_close(got, want, rtol=2e-5, atol=2e-6)


@needs_numba
def test_float32_tanh_is_within_2_5_ulp_everywhere():
    import numba

    from seqmodels.cells.fast_kernels import tanh32

    @numba.njit
    def apply(x, y):
        for i in range(x.size):
            y[i] = tanh32(x[i])

    grid = np.linspace(-12, 12, 400_001, dtype=np.float32)
    tiny = (10.0 ** np.linspace(-40, 1, 20_001)).astype(np.float32)
    x = np.concatenate([grid, tiny, -tiny, np.array([0.0, np.inf, -np.inf], np.float32)])
    y = np.empty_like(x)
    apply(x, y)
    exact = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(y - exact) / ulp) <= 2.5
    assert y[-2] == 1.0 and y[-1] == -1.0


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("batch", [1, 3])
def test_generation_step_equals_one_step_of_forward(name, batch, rng):
    layer = make(name)
    s0 = random_state(layer, batch, rng)
    x = rng.standard_normal((batch, 3))
    _, want, _ = layer.forward(x[:, None, :], state=s0)
    got = layer.step(x, s0)
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
    ids = rng.integers(0, 3, size=batch)
    _, want_ids, _ = layer.forward(ids[:, None], state=s0)
    got_ids = layer.step(ids, s0)
    for g, w in zip(got_ids if isinstance(got_ids, tuple) else (got_ids,),
                    want_ids if isinstance(want_ids, tuple) else (want_ids,)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_generation_step_does_not_modify_the_given_state(rng):
    layer = make("lstm")
    s0 = random_state(layer, 1, rng)
    before = [s.copy() for s in s0]
    layer.step(rng.standard_normal((1, 3)), s0)
    for b, s in zip(before, s0):
        np.testing.assert_array_equal(b, s)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("inputs", ["vectors", "ids", "embedded ids"])
def test_stepper_equals_forward_over_a_whole_sequence(name, batch, inputs, rng):
    layer, T = make(name), 7
    s0 = random_state(layer, batch, rng)
    E = rng.standard_normal((3, 3)) if inputs == "embedded ids" else None
    ids = rng.integers(0, 3, size=(batch, T))
    x = rng.standard_normal((batch, T, 3)) if inputs == "vectors" else ids
    out, final, _ = layer.forward(x if E is None else E[ids], state=s0)
    step = sm.layers.Stepper(layer, batch, s0, embedding=E)
    for t in range(T):
        s = step(x[:, t])
        a = s[0] if isinstance(s, tuple) else s
        np.testing.assert_allclose(a, out[:, t], rtol=1e-12, atol=1e-14, err_msg=f"step {t}")
    for g, w in zip(s if isinstance(s, tuple) else (s,), final if isinstance(final, tuple) else (final,)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("on", [False, True])
def test_stepper_in_float32_runs_the_loops_of_forward(name, on, rng):
    if on and not fast.available():
        pytest.skip(f"numba path unavailable: {fast.why_unavailable()}")
    layer, x, _, s0, _ = problem(name, rng, dtype=np.float32)
    with fast.enabled(on):
        out, _, _ = layer.forward(x, state=s0)
        step = sm.layers.Stepper(layer, x.shape[0], s0)
        got = [np.array(s[0] if isinstance(s, tuple) else s) for s in (step(x[:, t]) for t in range(x.shape[1]))]
    np.testing.assert_allclose(np.stack(got, axis=1), out, rtol=2e-5, atol=2e-6)


def test_stepper_leaves_the_layer_and_the_given_state_alone(rng):
    layer = make("lstm")
    s0 = random_state(layer, 2, rng)
    before = [s.copy() for s in s0] + [p.copy() for p in layer.params.values()]
    step = sm.layers.Stepper(layer, 2, s0)
    for _ in range(3):
        step(np.array([0, 2]))
    after = list(s0) + list(layer.params.values())
    for b, a in zip(before, after):
        np.testing.assert_array_equal(b, a)


def test_chunks_cover_every_step_once_from_the_end():
    for steps, per in [(0, 10), (1, 1 << 30), (7, 1 << 17), (100, 1)]:
        got = list(chunks_backwards(steps, per))
        covered = [t for t0, t1 in got for t in range(t0, t1)]
        assert sorted(covered) == list(range(steps))
        assert [t0 for t0, _ in got] == sorted((t0 for t0, _ in got), reverse=True)


def test_blas_threads_round_trip():
    before = blas.get_num_threads()
    if before is None:
        pytest.skip("NumPy's BLAS could not be found")
    with blas.blas_threads(1):
        assert blas.get_num_threads() == 1
    assert blas.get_num_threads() == before
    with pytest.raises(sm.ConfigError):
        blas.set_num_threads(0)


def test_fast_switch_restores_its_setting():
    before = fast.is_enabled()
    with fast.enabled(False):
        assert not fast.is_enabled()
    assert fast.is_enabled() == before


def test_step_threads_do_not_change_results(rng):
    layer, x, lengths, s0, dout = problem("gru-reset-after", rng)
    want = run(layer, x, lengths, s0, dout)
    before = blas.set_step_threads(1)
    try:
        assert blas.step_threads() == 1
        got = run(layer, x, lengths, s0, dout)
    finally:
        blas.set_step_threads(before)
    assert blas.step_threads() == before
    assert_all_close(got, want, rtol=1e-12, atol=1e-14)
    with pytest.raises(sm.ConfigError):
        blas.set_step_threads(0)
