"""gradient_through_time and jacobian_norms against finite differences (float64, small models).

∂L/∂a<t> is checked by running the sequence in two parts: forward to t, add ±ε·e_i to the state
a<t> (or c<t>), continue from that state, and difference the loss.
"""

import numpy as np
import pytest

import seqmodels as sm
from seqmodels.core.functional import softmax_cross_entropy
from seqmodels.diagnostics import gradient_through_time, jacobian_norms
from seqmodels.models.language_model import LanguageModel
from seqmodels.text import Vocabulary

EPS = 1e-6

CELLS = {
    "rnn-tanh": lambda d, h, **kw: sm.RNN(d, h, "tanh", **kw),
    "rnn-relu-identity": lambda d, h, **kw: sm.RNN(d, h, "relu", init="identity", **kw),
    "gru-full": lambda d, h, **kw: sm.GRU(d, h, "full", **kw),
    "gru-simplified": lambda d, h, **kw: sm.GRU(d, h, "simplified", **kw),
    "gru-reset-after": lambda d, h, **kw: sm.GRU(d, h, "full", reset_after=True, **kw),
    "lstm": lambda d, h, **kw: sm.LSTM(d, h, **kw),
    "lstm-peephole": lambda d, h, **kw: sm.LSTM(d, h, peephole=True, **kw),
}


def make(name, d=3, h=4, seed=0, scale=0.6):
    layer = CELLS[name](d, h, dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed + 7)
    for p in layer.params.values():
        p[...] = scale * rng.standard_normal(p.shape)
    if name == "rnn-relu-identity":                           # keep the identity recurrence, positive drive
        layer.params["W_a"][:, :h] = np.eye(h) + 0.1 * rng.standard_normal((h, h))
        layer.params["b_a"][...] = 0.5
    return layer


def is_lstm(layer):
    return len(layer.cell.state_names) == 2


def two_part_outputs(layer, x, lengths, t, perturb):
    """Outputs (B, T, H) of ``layer`` with the state after step t changed by ``perturb(state)``."""
    B, T = x.shape[:2]
    l1 = np.minimum(lengths, t + 1)
    l2 = np.maximum(lengths - t - 1, 0)
    out1, s, _ = layer.forward(x[:, :t + 1], lengths=l1)
    s = perturb(s)
    out1 = out1.copy()
    a = s.a if is_lstm(layer) else s
    valid = lengths > t
    out1[valid, t] = a[valid]                                  # a<t> itself is also the output at t
    out2, _, _ = layer.forward(x[:, t + 1:], lengths=l2, state=s) if t + 1 < T else (np.zeros((B, 0, a.shape[1])), 0, 0)
    return np.concatenate([out1, out2], axis=1)


def fd_state_gradient(layer, x, lengths, loss_of_out, t, b, i, component="a"):
    """(L(s<t> + ε e) - L(s<t> - ε e)) / 2ε for unit i of row b."""
    def perturbed(sign):
        def f(s):
            if is_lstm(layer):
                a, c = s.a.copy(), s.c.copy()
                (a if component == "a" else c)[b, i] += sign * EPS
                return sm.LSTMState(a, c)
            s = s.copy()
            s[b, i] += sign * EPS
            return s
        return loss_of_out(two_part_outputs(layer, x, lengths, t, f))
    return (perturbed(+1) - perturbed(-1)) / (2 * EPS)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_layer_gradients_match_finite_differences(name):
    rng = np.random.default_rng(1)
    layer = make(name)
    B, T = 3, 6
    x = rng.standard_normal((B, T, 3))
    lengths = np.array([6, 4, 5])
    dout = rng.standard_normal((B, T, 4))                      # a loss at every step: direct terms too
    dout[np.arange(T)[None, :] >= lengths[:, None]] = 0
    res = gradient_through_time(layer, (x, lengths), dout=dout, norm=None)
    sg = res["layer"]
    loss = lambda out: float(np.sum(out * dout))
    comps = ("a", "c") if is_lstm(layer) else ("a",)
    for comp in comps:
        got = sg.grad_a if comp == "a" else sg.grad_c
        fd = np.zeros_like(got)
        for b in range(B):
            for t in range(lengths[b]):
                for i in range(4):
                    fd[b, t, i] = fd_state_gradient(layer, x, lengths, loss, t, b, i, comp)
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)
        assert np.all(got[1, 4:] == 0) and np.all(got[2, 5:] == 0)      # padding gets nothing
    # the gradient w.r.t. the initial state is the last carry
    _, d0 = layer.backward(dout, layer.forward(x, lengths)[2])
    np.testing.assert_allclose(sg.grad_init[0], d0.a if is_lstm(layer) else d0, rtol=1e-10)


@pytest.mark.parametrize("name", ["rnn-tanh", "gru-full", "lstm"])
def test_default_loss_is_last_step_projection(name):
    """loss='last': L = (1/B) Σ_b u·a<len_b - 1>; ∂L/∂a at each row's last step is u/B, earlier by FD."""
    rng = np.random.default_rng(2)
    layer = make(name)
    x = rng.standard_normal((2, 5, 3))
    lengths = np.array([5, 3])
    res = gradient_through_time(layer, (x, lengths), norm=None, seed=3)
    sg = res["layer"]
    u = sg.grad_a[0, 4] * 2
    np.testing.assert_allclose(np.linalg.norm(u), 1.0, rtol=1e-12)
    np.testing.assert_allclose(sg.grad_a[1, 2], u / 2, rtol=1e-12)
    out = layer.forward(x, lengths)[0]
    np.testing.assert_allclose(res.loss, (out[0, 4] @ u + out[1, 2] @ u) / 2, rtol=1e-12)
    loss = lambda o: float((o[0, 4] @ u + o[1, 2] @ u) / 2)
    for b, t in [(0, 0), (0, 2), (1, 0), (1, 1)]:
        for i in range(4):
            assert sg.grad_a[b, t, i] == pytest.approx(fd_state_gradient(layer, x, lengths, loss, t, b, i),
                                                       rel=1e-6, abs=1e-9)
    # curve(align="end"): distance 0 is each row's own last step
    np.testing.assert_allclose(sg.curve()[0], 0.5, rtol=1e-12)


def test_irnn_identity_passes_gradient_unchanged():
    """ReLU + W_aa = I with every unit active: J<t> = I, so ‖∂L/∂a<t>‖ = ‖u‖/B at every distance."""
    layer = sm.RNN(2, 5, "relu", init="identity", dtype=np.float64, seed=0)
    layer.params["W_a"][:, 5:] = np.abs(layer.params["W_a"][:, 5:]) + 0.1
    res = gradient_through_time(layer, np.ones((4, 12, 2)), norm="spectral")
    np.testing.assert_allclose(res["layer"].curve(), 0.25, rtol=1e-12)
    np.testing.assert_allclose(res["layer"].jacobian, 1.0, rtol=1e-12)


def test_tanh_rnn_gradient_vanishes_and_matches_jacobian_product():
    """Tanh RNN: J<t> = diag(1 - a<t>²) W_aa and ∂L/∂a<t-1> = J<t>ᵀ ∂L/∂a<t> for a loss at the end."""
    rng = np.random.default_rng(4)
    layer = sm.RNN(3, 6, dtype=np.float64, seed=0, init_scale=0.5)
    x = rng.standard_normal((1, 40, 3))
    res = gradient_through_time(layer, x, norm="frobenius")
    sg = res["layer"]
    out = layer.forward(x)[0][0]
    W_aa = layer.params["W_a"][:, :6]
    for t in range(39, 0, -1):
        J = (1 - out[t] ** 2)[:, None] * W_aa
        np.testing.assert_allclose(sg.grad_a[0, t - 1], J.T @ sg.grad_a[0, t], rtol=1e-10, atol=1e-300)
        assert sg.jacobian[0, t] == pytest.approx(np.linalg.norm(J, "fro"), rel=1e-12)
    curve = sg.curve()
    assert curve[39] < 1e-6 * curve[0]                         # W_aa = 0.5·orthogonal: at least 0.5^k


def fd_jacobian(layer, x_t, state):
    """Central-difference ∂s<t>/∂s<t-1> via layer.step (the forward only)."""
    flat = np.concatenate(state, axis=1) if is_lstm(layer) else state
    H = layer.hidden_size
    D = flat.shape[1]
    J = np.zeros((D, D))
    for j in range(D):
        outs = []
        for sign in (1, -1):
            f = flat.copy()
            f[0, j] += sign * EPS
            s = sm.LSTMState(f[:, :H], f[:, H:]) if is_lstm(layer) else f
            new = layer.step(x_t, s)
            outs.append(np.concatenate(new, axis=1) if is_lstm(layer) else new)
        J[:, j] = (outs[0] - outs[1])[0] / (2 * EPS)
    return J


@pytest.mark.parametrize("name", sorted(CELLS))
def test_jacobian_norms_match_finite_differences(name):
    rng = np.random.default_rng(5)
    layer = make(name)
    x = rng.standard_normal((2, 4, 3))
    lengths = np.array([4, 2])
    spec = jacobian_norms(layer, x, lengths, norm="spectral")
    fro = jacobian_norms(layer, x, lengths, norm="frobenius")
    _, _, cache = layer.forward(x, lengths)
    for b in range(2):
        state = None
        for t in range(lengths[b]):
            prev = layer.zero_state(1) if state is None else state
            J = fd_jacobian(layer, x[b:b + 1, t], prev)
            assert spec[b, t] == pytest.approx(np.linalg.norm(J, 2), rel=1e-6)
            assert fro[b, t] == pytest.approx(np.linalg.norm(J, "fro"), rel=1e-6)
            state = layer.step(x[b:b + 1, t], prev)
    assert np.isnan(spec[1, 2:]).all()


def test_stack_lower_layer_matches_finite_differences():
    rng = np.random.default_rng(6)
    low, high = make("gru-full", 3, 4, seed=1), make("lstm", 4, 4, seed=2)
    stack = sm.Stack([low, high, sm.Dense(4, 2, dtype=np.float64, seed=3)])
    x = rng.standard_normal((2, 5, 3))
    r = rng.standard_normal((2, 2))

    def loss(out_low):
        out, _, _ = high.forward(out_low)
        y = stack.layers[2].forward(out)[0]
        return float(np.sum(y[:, -1] * r))

    dout = np.zeros((2, 5, 2))
    dout[:, -1] = r
    res = gradient_through_time(stack, x, dout=dout, norm=None)
    assert list(res.layers) == ["layers.1", "layers.0"]
    full = np.array([5, 5])
    for t in (0, 2, 4):
        for b in range(2):
            for i in range(4):
                fd = fd_state_gradient(low, x, full, loss, t, b, i)
                assert res["layers.0"].grad_a[b, t, i] == pytest.approx(fd, rel=1e-6, abs=1e-10)


def test_bidirectional_backward_half_is_forward_on_reversed_input():
    rng = np.random.default_rng(7)
    fwd = make("lstm", seed=1)
    bi = sm.Bidirectional(fwd, merge="concat", seed=2)
    x = rng.standard_normal((2, 5, 3))
    dout = rng.standard_normal((2, 5, 8))
    res = gradient_through_time(bi, x, dout=dout, norm="spectral")
    twin = sm.LSTM(3, 4, dtype=np.float64, seed=0)
    for k in twin.params:
        twin.params[k] = bi.bwd.params[k]
    ref = gradient_through_time(twin, x[:, ::-1], dout=dout[:, ::-1, 4:], norm="spectral")
    np.testing.assert_allclose(res["backward"].grad_c, ref["layer"].grad_c[:, ::-1], rtol=1e-10)
    np.testing.assert_allclose(res["backward"].jacobian, ref["layer"].jacobian[:, ::-1], rtol=1e-10)
    assert res["backward"].reverse and not res["forward"].reverse


def tiny_lm(cell="lstm", layers=2, embedding=3):
    vocab = Vocabulary.from_text("abcab cab", level="char")
    lm = LanguageModel(vocab, cell=cell, hidden_size=4, num_layers=layers, embedding_dim=embedding,
                       dtype=np.float64, seed=0)
    rng = np.random.default_rng(8)
    for p in lm.params.values():
        p[...] = 0.7 * rng.standard_normal(p.shape)
    return lm


@pytest.mark.parametrize("loss_kind", ["last", "all"])
def test_language_model_layers_match_finite_differences(loss_kind):
    lm = tiny_lm()
    rng = np.random.default_rng(9)
    V = len(lm.vocab)
    x = rng.integers(3, V, size=(2, 5))
    y = rng.integers(3, V, size=(2, 5))
    lengths = np.array([5, 3])
    l0, l1 = lm.rnn.layers
    emb = lm.embedding.forward(x, lengths)[0]
    mask = np.zeros((2, 5), bool)
    mask[[0, 1], lengths - 1] = True

    def ce(logits):
        if loss_kind == "last":
            return softmax_cross_entropy(logits, y, mask=mask, reduction="mean")[0]
        return softmax_cross_entropy(logits, y, lengths=lengths, reduction="mean")[0]

    def loss_low(out0):
        return ce(lm.head.forward(l1.forward(out0, lengths)[0])[0])

    def loss_high(out1):
        return ce(lm.head.forward(out1)[0])

    res = gradient_through_time(lm, (x, y, lengths), loss=loss_kind, norm=None)
    assert set(res.layers) == {"rnn.layers.0", "rnn.layers.1"}
    out0 = l0.forward(emb, lengths)[0]
    assert res.loss == pytest.approx(loss_high(l1.forward(out0, lengths)[0]), rel=1e-12)
    before = {k: v.copy() for k, v in lm.grads.items()}
    for name, layer, inp, loss in (("rnn.layers.0", l0, emb, loss_low), ("rnn.layers.1", l1, out0, loss_high)):
        for comp in ("a", "c"):
            got = getattr(res[name], f"grad_{comp}")
            for b in range(2):
                for t in range(lengths[b]):
                    for i in range(4):
                        fd = fd_state_gradient(layer, inp, lengths, loss, t, b, i, comp)
                        assert got[b, t, i] == pytest.approx(fd, rel=1e-5, abs=1e-9)
    assert all(np.array_equal(lm.grads[k], v) for k, v in before.items())


def test_leaves_grads_and_training_mode_alone():
    lm = tiny_lm("gru", layers=1, embedding=None)
    lm.train()
    for g in lm.grads.values():
        g[...] = 3.0
    x = np.array([[2, 3, 4, 5]])
    gradient_through_time(lm, (x, x), norm="spectral")
    assert lm.training and lm.rnn.training
    assert all(np.all(g == 3.0) for g in lm.grads.values())


def test_bad_arguments_raise():
    layer = sm.RNN(2, 3)
    x = np.zeros((1, 4, 2), np.float32)
    with pytest.raises(sm.ConfigError, match="norm"):
        gradient_through_time(layer, x, norm="nuclear")
    with pytest.raises(sm.ConfigError, match="loss='all'"):
        gradient_through_time(layer, x, loss="all")
    with pytest.raises(sm.ShapeError, match="dout"):
        gradient_through_time(layer, x, dout=np.zeros((1, 4, 5)))
    with pytest.raises(sm.DTypeError, match="model_or_layer"):
        gradient_through_time(object(), x)
    with pytest.raises(sm.ConfigError, match="component"):
        gradient_through_time(layer, x, norm=None)["layer"].norms("c")


def test_jacobians_of_a_batch_equal_one_row_at_a_time():
    """Large batches are processed in chunks of rows; the result must not depend on the batching."""
    layer = sm.LSTM(3, 40, dtype=np.float64, seed=0)          # 2H = 80 -> chunks of 51 rows
    x = np.random.default_rng(10).standard_normal((60, 3, 3))
    lengths = np.r_[np.full(30, 3), np.full(30, 2)]
    batch = jacobian_norms(layer, x, lengths, norm="frobenius")
    for b in (0, 50, 59):
        one = jacobian_norms(layer, x[b:b + 1], lengths[b:b + 1], norm="frobenius")
        np.testing.assert_allclose(batch[b], one[0], rtol=1e-12)
    assert np.isnan(batch[40:, 2]).all()
