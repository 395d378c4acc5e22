"""The pipelined stack (:mod:`seqmodels.layers.pipeline`) gives the layer-by-layer results: outputs,
final states, input and initial-state gradients and every parameter gradient, for every cell, with
lengths, initial states, dropout and mixed stacks; in float64 on the NumPy loops (to float64
rounding) and in float32 on the compiled loops; a failing thread raises its own error."""

import numpy as np
import pytest

import seqmodels as sm
from seqmodels.cells import fast
from seqmodels.core import blas
from seqmodels.core.errors import ConfigError
from seqmodels.core.functional import dropout_mask
from seqmodels.layers import pipeline
from seqmodels.models.language_model import LanguageModel
from seqmodels.text import Vocabulary

from .helpers import CELLS, random_state, randomise

needs_numba = pytest.mark.skipif(not fast.available(), reason=f"numba path unavailable: {fast.why_unavailable()}")


@pytest.fixture
def mode():
    """Restore the pipeline's mode after the test."""
    before = pipeline.get_mode()
    yield pipeline.set_mode
    pipeline.set_mode(before)


def build(kinds, dtype, d=5, h=8, dropout=0.0, seed=0):
    layers = []
    for i, kind in enumerate(kinds):
        if kind == "dense":
            layers.append(sm.Dense(h, h, dtype=dtype, seed=seed + i))
        elif kind == "bi":
            layers.append(sm.Bidirectional(sm.LSTM(h, h // 2, dtype=dtype, seed=seed + i), merge="concat"))
        else:
            layer = CELLS[kind.removesuffix("-rev")](d if i == 0 else h, h, dtype=dtype, seed=seed + i,
                                                     reverse=kind.endswith("-rev"))
            layers.append(randomise(layer, seed + i) if dtype == np.float64 else layer)
    stack = sm.Stack(layers, dropout=dropout, seed=seed + 99)
    stack.training = True
    return stack


def walk(stack, x, lengths=None, states=None, dstates=None, dout_seed=3, embedding=None):
    """The definition the stack must meet: each layer's own forward (batch-first outputs, zero past the
    lengths, dropout drawn after each layer but the last), then each layer's own backward from the top."""
    rng = np.random.default_rng(7)
    n = len(stack.layers)
    states, dstates = states or (None,) * n, dstates or (None,) * n
    for g in stack.grads.values():
        g[...] = 0
    h, finals, caches, masks = x, [], [], []
    for i, layer in enumerate(stack.layers):
        extra = {"embedding": embedding} if i == 0 and embedding is not None else {}
        h, final, cache = layer.forward(h, lengths, states[i], **extra)
        finals.append(final)
        caches.append(cache)
        mask = None
        if stack.dropout and i < n - 1:
            mask = dropout_mask(h.shape, stack.dropout, rng, h.dtype)
            h = h * mask
        masks.append(mask)
    d = np.random.default_rng(dout_seed).standard_normal(h.shape).astype(h.dtype)
    d0 = [None] * n
    for i in range(n - 1, -1, -1):
        if masks[i] is not None:
            d = d * masks[i]
        d, d0[i] = stack.layers[i].backward(d, caches[i], dstates[i])
    grads = {k: v.copy() for k, v in stack.grads.items()}
    return dict(h=h.copy(), finals=tuple(finals), dx=None if d is None else d.copy(), d0=tuple(d0), grads=grads)


def run(stack, on, x, lengths=None, states=None, dstates=None, dout_seed=3, embedding=None):
    """The stack's own forward and backward, the pipeline on or off: everything that comes out, and the
    groups of layers handed over time-major (with their thread counts)."""
    pipeline.set_mode("on" if on else "off")
    stack.rng = np.random.default_rng(7)                  # the walk's dropout masks
    for g in stack.grads.values():
        g[...] = 0
    h, finals, cache = stack.forward(x, lengths, states, embedding=embedding)
    dout = np.random.default_rng(dout_seed).standard_normal(h.shape).astype(h.dtype)
    dx, d0 = stack.backward(dout, cache, dstates)
    grads = {k: v.copy() for k, v in stack.grads.items()}
    return dict(h=h.copy(), finals=finals, dx=None if dx is None else dx.copy(), d0=d0, grads=grads), cache[2]


def flat(s):
    if s is None:
        return []
    if isinstance(s, np.ndarray):
        return [s]
    return [a for part in s for a in flat(part)]


def assert_same(a, b, rtol, atol):
    np.testing.assert_allclose(b["h"], a["h"], rtol=rtol, atol=atol)
    if a["dx"] is None or b["dx"] is None:
        assert a["dx"] is None and b["dx"] is None
    else:
        np.testing.assert_allclose(b["dx"], a["dx"], rtol=rtol, atol=atol)
    for u, v in zip(flat(a["finals"]), flat(b["finals"]), strict=True):
        np.testing.assert_allclose(v, u, rtol=rtol, atol=atol)
    for u, v in zip(flat(a["d0"]), flat(b["d0"]), strict=True):
        np.testing.assert_allclose(v, u, rtol=rtol, atol=atol)
    assert a["grads"].keys() == b["grads"].keys()
    for k in a["grads"]:
        np.testing.assert_allclose(b["grads"][k], a["grads"][k], rtol=rtol, atol=atol, err_msg=k)


@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize("case", ["plain", "lengths+states", "dropout"])
def test_pipelined_stack_equals_layer_by_layer_float64(kind, case, mode, rng):
    stack = build([kind] * 3, np.float64, dropout=0.3 if case == "dropout" else 0.0)
    x = rng.standard_normal((4, 19, 5))
    lengths = states = dstates = None
    if case == "lengths+states":
        lengths = np.array([19, 7, 0, 12])
        states = tuple(random_state(l, 4, rng) for l in stack.layers)
        dstates = tuple(random_state(l, 4, rng) for l in stack.layers)
    want = walk(stack, x, lengths, states, dstates)
    for on in (False, True):
        got, groups = run(stack, on, x, lengths, states, dstates)
        assert [(i, j) for i, j, *_ in groups] == [(0, 3)]
        assert (groups[0][2] > 1) if on else (groups[0][2] == 1)         # side by side, or one after another
        assert_same(want, got, rtol=1e-11, atol=1e-12)
        if case == "lengths+states":
            assert np.all(got["h"][2] == 0) and np.all(got["h"][1, 7:] == 0)   # past each length: zero


def test_the_condition_variable_hand_off_gives_the_same(mode, rng, monkeypatch):
    """Without the compiled spin wait the threads meet on a condition variable (the spin wait must not run)."""
    real_init = pipeline._Progress.__init__

    def forbidden(*args):
        raise AssertionError("the spin wait ran")

    def no_spin(self, layers):
        real_init(self, layers)
        self.spin = False
        self._wait = self._up = forbidden

    monkeypatch.setattr(pipeline._Progress, "__init__", no_spin)
    stack = build(["lstm", "gru-full"], np.float64)
    x = rng.standard_normal((3, 17, 5))
    want = walk(stack, x)
    got, groups = run(stack, True, x)
    assert groups
    assert_same(want, got, rtol=1e-11, atol=1e-12)


def test_only_runs_of_forward_recurrent_layers_are_pipelined(mode, rng):
    stack = build(["lstm", "lstm-rev", "gru-full", "rnn-tanh", "dense", "bi", "lstm", "lstm"], np.float64,
                  dropout=0.2)
    x = rng.standard_normal((3, 16, 5))
    lengths = np.array([16, 9, 12])
    want = walk(stack, x, lengths)
    for on in (False, True):
        got, groups = run(stack, on, x, lengths)
        assert [(i, j) for i, j, *_ in groups] == [(2, 4), (6, 8)]
        assert_same(want, got, rtol=1e-11, atol=1e-12)


@needs_numba
@pytest.mark.parametrize("kind", ["lstm", "lstm-peephole", "gru-full", "gru-reset-after", "rnn-tanh"])
def test_pipelined_stack_on_the_compiled_loops_float32(kind, mode, rng, monkeypatch):
    calls = []
    real = fast.run
    monkeypatch.setattr(fast, "run", lambda name, *a: calls.append(name) or real(name, *a))
    stack = build([kind] * 2, np.float32, h=16)
    x = rng.standard_normal((5, 40, 5)).astype(np.float32)
    lengths = np.array([40, 33, 40, 8, 21])
    with blas.blas_threads(2):
        want = walk(stack, x, lengths)
        assert len(calls) == 2 * 2                            # one compiled call per layer and direction
        one_by_one, groups = run(stack, False, x, lengths)
        assert groups[0][2] == 1 and len(calls) == 2 * 2 * 2
        got, groups = run(stack, True, x, lengths)
    assert groups and groups[0][2] == 2                       # two threads
    # each layer's loops ran compiled, one call per chunk and direction
    assert len(calls) - 8 == 2 * 2 * (len(pipeline.chunk_bounds(40)) - 1)
    assert_same(want, one_by_one, rtol=2e-4, atol=2e-5)
    assert_same(want, got, rtol=2e-4, atol=2e-5)


def test_language_model_training_step_is_the_same_handed_over_and_pipelined(mode, monkeypatch):
    vocab = Vocabulary(list("abcdefgh"), level="char")
    ids = np.random.default_rng(0).integers(3, len(vocab), size=(4, 25))
    results = []
    for how in ("layer by layer", "off", "on"):
        lm = LanguageModel(vocab, "lstm", hidden_size=12, num_layers=3, embedding_dim=6, seed=0,
                           dtype=np.float64)
        with monkeypatch.context() as patch:
            if how == "layer by layer":                       # no groups: every layer on its own
                patch.setattr(sm.Stack, "_group_end", lambda self, i: i + 1)
            pipeline.set_mode("on" if how == "on" else "off")
            lm.zero_grad()
            loss, _ = lm.train_batch((ids[:, :-1], ids[:, 1:]))
        results.append((loss, {k: v.copy() for k, v in lm.grads.items()}))
    loss0, g0 = results[0]
    for loss1, g1 in results[1:]:
        assert loss1 == pytest.approx(loss0, rel=1e-12)
        for k in g0:
            np.testing.assert_allclose(g1[k], g0[k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_a_failing_thread_raises_its_own_error_and_nothing_hangs(mode, rng, monkeypatch):
    stack = build(["lstm", "lstm"], np.float64)
    x = rng.standard_normal((2, 20, 5))
    cell = stack.layers[1].cell
    real = cell.forward_loop
    seen = []

    def failing(buf, W_h, sizes, packed=None):
        seen.append(1)
        if len(seen) == 2:
            raise FloatingPointError("boom in chunk 2 of layer 1")
        return real(buf, W_h, sizes, packed)

    monkeypatch.setattr(cell, "forward_loop", failing)
    pipeline.set_mode("on")
    with pytest.raises(FloatingPointError, match="boom"):
        stack.forward(x)
    monkeypatch.setattr(cell, "forward_loop", real)          # and the next run works
    want = walk(stack, x)
    got, _ = run(stack, True, x)
    assert_same(want, got, rtol=1e-11, atol=1e-12)


def test_threads_for_and_chunks(mode):
    lstm = [sm.LSTM(4, 4), sm.LSTM(4, 4)]
    mode("off")
    assert pipeline.threads_for(lstm, 64) == 1
    mode("on")
    assert pipeline.threads_for(lstm, 64) == 2
    assert pipeline.threads_for(lstm[:1], 64) == 1                          # one layer: nothing to overlap
    assert pipeline.threads_for(lstm, 2 * pipeline.MIN_CHUNK - 1) == 1       # fewer than two chunks
    assert pipeline.threads_for([lstm[0], sm.LSTM(4, 4, reverse=True)], 64) == 1
    assert pipeline.threads_for([lstm[0], sm.Dense(4, 4)], 64) == 1
    for steps in (8, 9, 35, 64, 100, 1000):
        b = pipeline.chunk_bounds(steps)
        assert b[0] == 0 and b[-1] == steps and all(hi > lo for lo, hi in zip(b, b[1:]))
        assert all(hi - lo >= pipeline.MIN_CHUNK for lo, hi in zip(b[:-2], b[1:-1]))
        assert len(b) - 1 <= max(pipeline.CHUNKS, 1)
    with pytest.raises(ConfigError, match="mode"):
        pipeline.set_mode("sometimes")


@pytest.mark.parametrize("embedded", [False, True])
def test_token_ids_at_the_bottom_one_hot_or_through_a_folded_embedding(embedded, mode, rng):
    """ids as one-hot input (dW_x by scatter, per chunk) or as rows of an embedding folded into the first
    product (dW_x and dE from the whole sequence's token sums, after the loops)."""
    V = 9
    stack = build(["lstm", "gru-full", "rnn-tanh"], np.float64, d=6 if embedded else V)
    ids = rng.integers(0, V, size=(4, 18))
    lengths = np.array([18, 5, 11, 18])
    E = rng.standard_normal((V, 6)) if embedded else None
    want = walk(stack, ids, lengths, embedding=E)
    assert (want["dx"] is not None) == embedded                        # dE, or nothing for one-hot ids
    for on in (False, True):
        got, groups = run(stack, on, ids, lengths, embedding=E)
        assert [(i, j) for i, j, *_ in groups] == [(0, 3)]
        assert_same(want, got, rtol=1e-11, atol=1e-12)
