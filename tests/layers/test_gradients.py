"""float64 central-difference gradient checks of dx, dstate0 and every parameter gradient."""

import numpy as np
import pytest

import seqmodels as sm
from seqmodels.core.gradcheck import check_layer

from .helpers import CELLS, make, randomise, random_state

TOL = 1e-6
LENGTHS = np.array([5, 1, 3, 5])


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reverse", [False, True])
def test_cell_gradients_with_lengths_and_state(name, reverse, rng):
    layer = make(name, reverse=reverse)
    x = rng.standard_normal((4, 5, 3))
    errors = check_layer(layer, x, LENGTHS, random_state(layer, 4, rng))
    assert max(errors.values()) < TOL, errors
    assert {"x", "state.0"} <= set(errors) and set(layer.params) <= set(errors)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("merge", ["concat", "sum", "mean"])
def test_bidirectional_gradients(name, merge, rng):
    layer = sm.Bidirectional(make(name), merge=merge, backward_layer=make(name, seed=7, reverse=True))
    x = rng.standard_normal((4, 5, 3))
    errors = check_layer(layer, x, LENGTHS, random_state(layer, 4, rng))
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("names", [("lstm", "gru-full"), ("rnn-tanh", "lstm-peephole"),
                                   ("gru-simplified", "gru-reset-after")])
def test_stack_gradients_mixed_cells_bidirectional_and_dense_head(names, rng):
    first, second = names
    bi = sm.Bidirectional(make(first, 3, 4), backward_layer=make(first, 3, 4, seed=3, reverse=True))
    stack = sm.Stack([bi, make(second, 8, 4, seed=5), sm.Dense(4, 6, "tanh", dtype=np.float64, seed=1),
                      sm.Dense(6, 2, dtype=np.float64, seed=2)])
    randomise(stack, 9)
    x = rng.standard_normal((4, 5, 3))
    errors = check_layer(stack, x, LENGTHS, random_state(stack, 4, rng))
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("activation", [None, "tanh", "relu", "sigmoid"])
def test_dense_gradients(activation, rng):
    dense = sm.Dense(3, 4, activation, dtype=np.float64, seed=0)
    randomise(dense)
    x = rng.standard_normal((2, 3, 3)) + 0.1  # keep relu inputs away from the kink
    errors = check_layer(dense, x, np.array([3, 2]))
    assert max(errors.values()) < TOL, errors
    errors = check_layer(dense, rng.standard_normal((5, 3)))
    assert max(errors.values()) < TOL, errors


def test_embedding_gradient_is_one_hot_product(rng):
    emb = sm.Embedding(6, 3, dtype=np.float64, seed=0)
    ids = rng.integers(0, 6, size=(3, 4))
    lengths = np.array([4, 2, 0])
    out, _, cache = emb.forward(ids, lengths)
    dout = rng.standard_normal(out.shape)
    emb.backward(dout, cache)
    onehot = np.eye(6)[ids] * (np.arange(4)[None, :] < lengths[:, None])[..., None]   # (B, T, V)
    np.testing.assert_allclose(out, onehot @ emb.params["W_e"], atol=1e-14)
    np.testing.assert_allclose(emb.grads["W_e"], np.einsum("btv,btd->vd", onehot, dout), atol=1e-12)


def test_dropout_gradient_with_fixed_mask(rng):
    stack = sm.Stack([make("lstm", 3, 4), make("gru-full", 4, 4, seed=2)], dropout=0.4, seed=0)
    x = rng.standard_normal((2, 5, 3))
    orig_forward = stack.forward

    def fixed_forward(*a, **k):          # same dropout mask on every call
        stack.rng = np.random.default_rng(11)
        return orig_forward(*a, **k)

    stack.forward = fixed_forward
    errors = check_layer(stack, x, np.array([5, 3]))
    assert max(errors.values()) < TOL, errors
    out_train = stack.forward(x)[0]
    stack.eval()
    assert not np.allclose(out_train, orig_forward(x)[0])


def test_backward_accumulates_and_zero_grad_clears(rng):
    layer = make("lstm")
    x = rng.standard_normal((2, 3, 3))
    out, _, cache = layer.forward(x)
    layer.backward(np.ones_like(out), cache)
    once = {k: g.copy() for k, g in layer.grads.items()}
    layer.backward(np.ones_like(out), cache)
    for k, g in layer.grads.items():
        np.testing.assert_allclose(g, 2 * once[k])
    layer.zero_grad()
    assert all(not g.any() for g in layer.grads.values())
