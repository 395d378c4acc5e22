"""The fused output layer: ``Dense.softmax_cross_entropy`` gives the numbers of ``forward``, the softmax
cross-entropy and ``backward`` run one after the other (NumPy in float64, the compiled row kernel in
float32, with and without lengths); a language model's ``train_batch`` (which uses it) gives the
gradients of the unfused chain."""

import numpy as np
import pytest

import seqmodels as sm
from seqmodels.cells import fast
from seqmodels.core import accel, blas
from seqmodels.core.errors import ConfigError, ShapeError
from seqmodels.core.functional import softmax_cross_entropy
from seqmodels.models.language_model import LanguageModel
from seqmodels.text import Vocabulary

from ..core.test_accel import spy


def unfused(dense, x, y, lengths, reduction):
    """forward -> loss -> backward, on fresh gradients: (loss, dx, dW, db)."""
    dense.zero_grad()
    logits, _, cache = dense.forward(x)
    loss, dlogits = softmax_cross_entropy(logits, y, lengths=lengths, reduction=reduction)
    dx, _ = dense.backward(dlogits, cache)
    return loss, dx.copy(), dense.grads["W_y"].copy(), dense.grads["b_y"].copy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("use_lengths", [False, True])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_output_layer_equals_forward_loss_backward(dtype, use_lengths, reduction, threads, rng,
                                                          monkeypatch):
    monkeypatch.setattr(accel, "PARALLEL_MIN", 1)              # split even these small rows
    dense = sm.Dense(7, 53, dtype=dtype, seed=0)
    dense.params["b_y"][:] = rng.standard_normal(53)
    x = rng.standard_normal((4, 6, 7)).astype(dtype)
    y = rng.integers(0, 53, size=(4, 6))
    lengths = np.array([6, 2, 0, 5]) if use_lengths else None
    if use_lengths:
        y[1, 2:] = -1                                          # padding: never read
    with blas.blas_threads(threads):
        want = unfused(dense, x, y, lengths, reduction)
        dense.zero_grad()
        calls = spy(monkeypatch, "softmax_xent_rows")
        loss, dx = dense.softmax_cross_entropy(x, y, lengths=lengths, reduction=reduction)
    if dtype == np.float32 and accel.available():
        assert calls                                           # float32 ran the compiled row kernel
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    assert loss == pytest.approx(want[0], rel=tol["rtol"])
    np.testing.assert_allclose(dx, want[1], **tol)
    np.testing.assert_allclose(dense.grads["W_y"], want[2], **tol)
    np.testing.assert_allclose(dense.grads["b_y"], want[3], **tol)
    assert dx.dtype == dtype and dx.shape == x.shape
    if use_lengths:
        assert not dx[1, 2:].any() and not dx[2].any()          # excluded positions: no gradient


def test_fused_output_layer_with_no_position_counted_leaves_the_gradients_alone():
    dense = sm.Dense(3, 5, seed=0)
    loss, dx = dense.softmax_cross_entropy(np.ones((2, 4, 3), np.float32), np.zeros((2, 4), np.int64),
                                           lengths=np.array([0, 0]), reduction="mean")
    assert loss == 0 and dx.shape == (2, 4, 3) and not dx.any()
    assert not dense.grads["W_y"].any() and not dense.grads["b_y"].any()


def test_fused_output_layer_checks_its_input(rng):
    with pytest.raises(ConfigError, match="activation"):
        sm.Dense(3, 4, activation="tanh").softmax_cross_entropy(np.ones((2, 3)), np.zeros(2, np.int64))
    with pytest.raises(ShapeError, match=r"targets: expected class ids in \[0, 4\)"):
        sm.Dense(3, 4).softmax_cross_entropy(np.ones((2, 3)), np.array([0, 4]))
    with pytest.raises(ShapeError, match="x: expected shape"):
        sm.Dense(3, 4).softmax_cross_entropy(np.ones((2, 5)), np.zeros(2, np.int64))


@pytest.mark.parametrize("batch", ["stream", "lines"])
def test_language_model_train_batch_equals_the_unfused_chain(batch, rng):
    vocab = Vocabulary.from_text("abcdefgh ij", level="char")
    lm = LanguageModel(vocab, "lstm", 8, 2, embedding_dim=6, seed=0, dtype=np.float64)
    V = len(vocab)
    x = rng.integers(0, V, size=(3, 5))
    y = rng.integers(0, V, size=(3, 5))
    lengths = np.array([5, 3, 1])
    args = (x, y) if batch == "stream" else (x, y, lengths)
    lm.zero_grad()
    loss, n = lm.train_batch(args)
    fused = {k: g.copy() for k, g in lm.grads.items()}
    lm.reset_state()
    lm.zero_grad()
    logits, _, cache = lm.forward(x, None if batch == "stream" else lengths)
    want, dlogits = softmax_cross_entropy(logits, y, lengths=None if batch == "stream" else lengths,
                                          reduction="mean")
    lm.backward(dlogits, cache)
    assert loss == pytest.approx(want, rel=1e-12)
    assert n == (15 if batch == "stream" else 9)
    for k, g in lm.grads.items():
        np.testing.assert_allclose(fused[k], g, rtol=1e-10, atol=1e-13, err_msg=k)
    assert any(np.abs(g).sum() > 0 for g in fused.values())


def test_seq2seq_train_batch_equals_the_unfused_chain():
    from seqmodels.models.seq2seq import Seq2Seq

    src, tgt = Vocabulary.from_text("abcde"), Vocabulary.from_text("xyz")
    model = Seq2Seq(src, tgt, "gru", hidden_size=4, embedding_dim=3, dtype=np.float64, seed=2)
    batch = model.batcher(["abc", "de", "a"], ["xy", "zzx", "x"], batch_size=3, shuffle=False)._batch(0, 0)
    model.zero_grad()
    loss, n = model.train_batch(batch)
    fused = {k: g.copy() for k, g in model.grads.items()}
    model.zero_grad()
    s, s_len, t_in, t_out, t_len = batch
    logits, cache = model.forward(s, s_len, t_in, t_len)
    want, dlogits = softmax_cross_entropy(logits, t_out, lengths=t_len, reduction="mean")
    model.backward(dlogits, cache)
    assert loss == pytest.approx(want, rel=1e-12) and n == int(t_len.sum())
    for k, g in model.grads.items():
        np.testing.assert_allclose(fused[k], g, rtol=1e-10, atol=1e-13, err_msg=k)
