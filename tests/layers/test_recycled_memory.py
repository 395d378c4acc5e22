"""Layers never read scratch memory they did not write: with every recycled buffer handed out full of
NaN (garbage left by an earlier step could be anything), forward and backward give the same numbers
as on fresh zeroed memory — for every cell, NumPy and compiled loops, equal and unequal lengths, both
directions, and through a whole language-model training step."""

import numpy as np
import pytest

import seqmodels as sm
from seqmodels.text.vocab import Vocabulary
from seqmodels.cells import fast
from seqmodels.core import workspace

from .helpers import CELLS, make, random_state


def _poisoned_empty(shape, dtype):
    out = np.empty(shape, dtype)
    out.fill(np.nan if np.dtype(dtype).kind == "f" else 7)
    return out


def _run(layer, x, lengths, s0, dout):
    layer.zero_grad()
    out, final, cache = layer.forward(x, lengths, s0)
    dx, d0 = layer.backward(dout, cache)
    flat = lambda s: [np.asarray(p) for p in (s if isinstance(s, tuple) else (s,))]  # noqa: E731
    return [out, *flat(final), *([] if dx is None else [dx]), *flat(d0), *(g.copy() for g in layer.grads.values())]


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, np.array([6, 2, 6, 0, 1])], ids=["full", "ragged"])
@pytest.mark.parametrize("compiled", [False, True])
def test_layers_read_only_what_they_wrote(name, reverse, lengths, compiled, monkeypatch):
    if compiled and not fast.available():
        pytest.skip(f"numba path unavailable: {fast.why_unavailable()}")
    rng = np.random.default_rng(0)
    layer = make(name, 3, 4, reverse=reverse)
    x = rng.standard_normal((5, 6, 3))
    s0 = random_state(layer, 5, rng)
    dout = rng.standard_normal((5, 6, 4))
    with fast.enabled(compiled, dtypes=(np.float32, np.float64)):
        want = _run(layer, x, lengths, s0, dout)
        monkeypatch.setattr(workspace, "empty", _poisoned_empty)
        got = _run(layer, x, lengths, s0, dout)
    for i, (g, w) in enumerate(zip(got, want)):
        assert not np.isnan(g).any(), f"output {i} read a poisoned buffer"
        np.testing.assert_array_equal(g, w, err_msg=f"output {i}")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_language_model_step_reads_only_what_it_wrote(cell, monkeypatch):
    vocab = Vocabulary([chr(97 + i) for i in range(20)], level="char")
    ids = np.random.default_rng(1).integers(3, len(vocab), size=(4, 9))
    results = []
    for poison in (False, True):
        lm = sm.LanguageModel(vocab, cell, 8, 2, embedding_dim=6, seed=0)
        if poison:
            monkeypatch.setattr(workspace, "empty", _poisoned_empty)
        lm.zero_grad()
        loss, _ = lm.train_batch((ids[:, :-1], ids[:, 1:]))
        results.append((loss, {k: g.copy() for k, g in lm.grads.items()}))
    assert np.isfinite(results[1][0]) and results[1][0] == results[0][0]
    for k, g in results[0][1].items():
        np.testing.assert_array_equal(results[1][1][k], g, err_msg=k)
