"""Equivalences: layer ≡ manual loop over the equations; batch ≡ one example at a time;
padded + lengths ≡ unpadded; bidirectional backward half ≡ forward layer on reversed input;
zero peepholes ≡ plain LSTM; one-layer stack ≡ the layer; reset-after GRU ≠ the notes' GRU."""

import numpy as np
import pytest

import seqmodels as sm

from .helpers import CELLS, make, random_state


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def reference_step(layer, x_t, state):
    """The notes' equations written out plainly from the named parameters (independent of the cells)."""
    p = layer.params
    if isinstance(layer, sm.LSTM):
        a, c = state
        ax = np.concatenate([a, x_t], axis=1)
        peep = layer.peephole
        u = sigmoid(ax @ p["W_u"].T + p["b_u"] + (p["p_u"] * c if peep else 0))
        f = sigmoid(ax @ p["W_f"].T + p["b_f"] + (p["p_f"] * c if peep else 0))
        o = sigmoid(ax @ p["W_o"].T + p["b_o"] + (p["p_o"] * c if peep else 0))
        cand = np.tanh(ax @ p["W_c"].T + p["b_c"])
        c_new = u * cand + f * c
        return o * np.tanh(c_new), c_new
    if isinstance(layer, sm.GRU):
        a = state
        ax = np.concatenate([a, x_t], axis=1)
        u = sigmoid(ax @ p["W_u"].T + p["b_u"])
        H = layer.hidden_size
        if layer.variant == "simplified":
            cand = np.tanh(ax @ p["W_c"].T + p["b_c"])
        elif layer.reset_after:
            r = sigmoid(ax @ p["W_r"].T + p["b_r"])
            cand = np.tanh(x_t @ p["W_c"][:, H:].T + p["b_c"] + r * (a @ p["W_c"][:, :H].T + p["b_ca"]))
        else:
            r = sigmoid(ax @ p["W_r"].T + p["b_r"])
            cand = np.tanh(np.concatenate([r * a, x_t], axis=1) @ p["W_c"].T + p["b_c"])
        return u * cand + (1 - u) * a
    a = state
    z = np.concatenate([a, x_t], axis=1) @ p["W_a"].T + p["b_a"]
    return np.tanh(z) if layer.activation == "tanh" else np.maximum(z, 0)


def manual_loop(layer, x, state):
    outs = []
    for t in range(x.shape[1]):
        state = reference_step(layer, x[:, t], state)
        outs.append(state[0] if isinstance(state, tuple) else state)
    return np.stack(outs, axis=1), state


@pytest.mark.parametrize("name", sorted(CELLS))
def test_layer_equals_manual_loop_of_the_equations(name, rng):
    layer = make(name)
    x = rng.standard_normal((3, 6, 3))
    s0 = random_state(layer, 3, rng)
    out, final, _ = layer.forward(x, state=s0)
    ref_out, ref_final = manual_loop(layer, x, s0)
    np.testing.assert_allclose(out, ref_out, atol=1e-12)
    for a, b in zip(np.atleast_1d(final) if not isinstance(final, tuple) else final,
                    np.atleast_1d(ref_final) if not isinstance(ref_final, tuple) else ref_final):
        np.testing.assert_allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reverse", [False, True])
def test_batch_equals_examples_one_at_a_time_and_padding_is_invisible(name, reverse, rng):
    layer = make(name, reverse=reverse)
    lengths = np.array([6, 2, 4, 0, 1])
    x = rng.standard_normal((5, 6, 3))
    s0 = random_state(layer, 5, rng)
    dout = rng.standard_normal((5, 6, 4))
    out, final, cache = layer.forward(x, lengths, s0)
    dx, d0 = layer.backward(dout, cache)
    batch_grads = {k: g.copy() for k, g in layer.grads.items()}
    layer.zero_grad()
    for b, L in enumerate(lengths):
        sb = type(s0)(*(s[b:b + 1] for s in s0)) if isinstance(s0, tuple) else s0[b:b + 1]
        o1, f1, c1 = layer.forward(x[b:b + 1, :L], state=sb)          # unpadded, no lengths
        np.testing.assert_allclose(out[b, :L], o1[0], atol=1e-12)
        assert not out[b, L:].any(), "outputs past the length must be zero"
        finals = final if isinstance(final, tuple) else (final,)
        finals1 = f1 if isinstance(f1, tuple) else (f1,)
        for fa, fb in zip(finals, finals1):
            np.testing.assert_allclose(fa[b], fb[0], atol=1e-12)
        dx1, d01 = layer.backward(dout[b:b + 1, :L], c1)
        np.testing.assert_allclose(dx[b, :L], dx1[0], atol=1e-12)
        assert not dx[b, L:].any(), "padded positions must get no gradient"
        d0s = d0 if isinstance(d0, tuple) else (d0,)
        d01s = d01 if isinstance(d01, tuple) else (d01,)
        for da, db in zip(d0s, d01s):
            np.testing.assert_allclose(da[b], db[0], atol=1e-12)
    for k, g in layer.grads.items():
        np.testing.assert_allclose(batch_grads[k], g, atol=1e-12, err_msg=k)


def test_length_zero_leaves_initial_state(rng):
    layer = make("lstm")
    s0 = random_state(layer, 2, rng)
    out, final, _ = layer.forward(rng.standard_normal((2, 3, 3)), np.array([0, 3]), s0)
    np.testing.assert_array_equal(final.a[0], s0.a[0])
    np.testing.assert_array_equal(final.c[0], s0.c[0])
    assert not out[0].any()


@pytest.mark.parametrize("name", ["lstm", "gru-full", "rnn-tanh"])
def test_bidirectional_backward_half_equals_forward_on_reversed_input(name, rng):
    fwd, bwd = make(name), make(name, seed=4, reverse=True)
    bi = sm.Bidirectional(fwd, backward_layer=bwd)
    lengths = np.array([5, 3, 1])
    x = rng.standard_normal((3, 5, 3))
    out, state, _ = bi.forward(x, lengths)
    plain = make(name, seed=4)                     # same weights as bwd, reading forwards
    for b, L in enumerate(lengths):
        o, f, _ = plain.forward(x[b:b + 1, :L][:, ::-1])
        np.testing.assert_allclose(out[b, :L, 4:], o[0, ::-1], atol=1e-12)
        fa = f.a if isinstance(f, tuple) else f
        sa = state.backward.a if isinstance(state.backward, tuple) else state.backward
        np.testing.assert_allclose(sa[b], fa[0], atol=1e-12)
    np.testing.assert_allclose(out[..., :4], fwd.forward(x, lengths)[0], atol=1e-14)


def test_zero_peepholes_equal_plain_lstm(rng):
    peep, plain = make("lstm-peephole"), make("lstm")
    for k in plain.params:
        peep.params[k] = plain.params[k]
    for k in ("p_u", "p_f", "p_o"):
        peep.params[k] = 0.0 * peep.params[k]
    x = rng.standard_normal((2, 4, 3))
    dout = rng.standard_normal((2, 4, 4))
    o1, _, c1 = peep.forward(x)
    o2, _, c2 = plain.forward(x)
    np.testing.assert_allclose(o1, o2, atol=1e-14)
    dx1, _ = peep.backward(dout, c1)
    dx2, _ = plain.backward(dout, c2)
    np.testing.assert_allclose(dx1, dx2, atol=1e-14)
    for k in plain.grads:
        np.testing.assert_allclose(peep.grads[k], plain.grads[k], atol=1e-14)


@pytest.mark.parametrize("name", ["lstm", "gru-simplified"])
def test_one_layer_stack_equals_the_layer(name, rng):
    layer = make(name)
    stack = sm.Stack([layer])
    x = rng.standard_normal((2, 4, 3))
    lengths = np.array([4, 2])
    o1, s1, c1 = stack.forward(x, lengths)
    o2, s2, c2 = layer.forward(x, lengths)
    np.testing.assert_array_equal(o1, o2)
    assert set(stack.params) == {f"layers.0.{k}" for k in layer.params}


def test_reset_after_gru_is_a_different_function(rng):
    notes, torch_form = make("gru-full"), make("gru-reset-after")
    for k in notes.params:
        torch_form.params[k] = notes.params[k]
    torch_form.params["b_ca"] = 0.0 * torch_form.params["b_ca"]
    x = rng.standard_normal((2, 4, 3))
    assert not np.allclose(notes.forward(x)[0], torch_form.forward(x)[0])


def test_irnn_identity_init(rng):
    layer = sm.RNN(3, 4, "relu", init="identity", seed=0)
    np.testing.assert_array_equal(layer.params["W_a"][:, :4], np.eye(4))
    assert not layer.params["b_a"].any()


def test_lstm_forget_bias_and_param_views():
    layer = sm.LSTM(3, 4, forget_bias=2.0, seed=0)
    assert np.all(layer.params["b_f"] == 2.0) and not layer.params["b_u"].any()
    layer.params["W_f"] = np.ones((4, 7))               # item assignment writes into the fused matrix
    assert np.all(layer._W[4:8] == 1.0)
    assert layer.params["W_u"].shape == (4, 7) and layer.params["b_u"].shape == (4,)


def test_float32_default_and_same_seed_same_model():
    a, b = sm.GRU(3, 4, seed=5), sm.GRU(3, 4, seed=5)
    assert a.params["W_u"].dtype == np.float32
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_gru_update_bias_default_keeps_memory():
    gru = sm.GRU(3, 4, seed=0)
    assert np.all(gru.params["b_u"] == -1.0) and not gru.params["b_r"].any()
    assert not sm.GRU(3, 4, update_bias=0.0, seed=0).params["b_u"].any()


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("reverse", [False, True])
def test_folded_embedding_equals_looking_the_rows_up_first(name, reverse, rng):
    """forward(ids, embedding=E) is forward(E[ids]); backward gives the embedding's gradient itself."""
    layer = make(name, reverse=reverse)
    E = rng.standard_normal((5, 3))
    ids = rng.integers(0, 5, size=(4, 6))
    lengths = np.array([6, 2, 0, 5])
    s0 = random_state(layer, 4, rng)
    dout = rng.standard_normal((4, 6, layer.hidden_size))
    layer.zero_grad()
    out, fin, cache = layer.forward(E[ids], lengths, s0)
    dx, d0 = layer.backward(dout, cache)
    want = [out, *(fin if isinstance(fin, tuple) else (fin,)), *(g.copy() for g in layer.grads.values())]
    want_dE = np.zeros_like(E)
    np.add.at(want_dE, ids, dx)                                  # the embedding's own backward
    layer.zero_grad()
    out, fin, cache = layer.forward(ids, lengths, s0, embedding=E)
    dE, d0_f = layer.backward(dout, cache)
    got = [out, *(fin if isinstance(fin, tuple) else (fin,)), *(g.copy() for g in layer.grads.values())]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(dE, want_dE, rtol=1e-11, atol=1e-12)
    for g, w in zip(d0_f if isinstance(d0_f, tuple) else (d0_f,), d0 if isinstance(d0, tuple) else (d0,)):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-12)


def test_folded_embedding_rejects_vectors_and_bad_ids(rng):
    layer = make("lstm")
    E = rng.standard_normal((5, 3))
    with pytest.raises(sm.core.errors.ShapeError, match="embedding"):
        layer.forward(rng.standard_normal((2, 3, 3)), embedding=E)
    with pytest.raises(sm.core.errors.ShapeError, match="rows of the embedding"):
        layer.forward(np.array([[0, 5]]), embedding=E)
