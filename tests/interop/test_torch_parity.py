"""Parity with PyTorch: outputs, final states and every gradient (float64, 1e-10), plus round trips."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import seqmodels as sm  # noqa: E402
from seqmodels.core.errors import ConfigError  # noqa: E402
from seqmodels.interop import (from_torch, grads_to_torch_layout, state_from_torch, state_to_torch,  # noqa: E402
                               to_torch)

B, T, D, H = 4, 6, 5, 3
LENGTHS = [6, 1, 4, 3]          # unsorted, one full, one of length 1
TOL = dict(rtol=1e-10, atol=1e-10)

KINDS = {
    "rnn-tanh": lambda **kw: torch.nn.RNN(D, H, nonlinearity="tanh", **kw),
    "rnn-relu": lambda **kw: torch.nn.RNN(D, H, nonlinearity="relu", **kw),
    "gru": lambda **kw: torch.nn.GRU(D, H, **kw),
    "lstm": lambda **kw: torch.nn.LSTM(D, H, **kw),
}


def make_module(kind, seed=0, **kw):
    torch.manual_seed(seed)
    return KINDS[kind](**kw).double()


def close(ours, theirs, what):
    np.testing.assert_allclose(np.asarray(ours), theirs.detach().numpy(), err_msg=what, **TOL)


def run_torch(m, x, lengths, h0, c0):
    """PyTorch forward on packed variable-length input; returns padded out, h_n, c_n."""
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    out_p, hn = m(packed, (h0, c0) if c0 is not None else h0)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_p, batch_first=True, total_length=x.shape[1])
    hn, cn = hn if isinstance(hn, tuple) else (hn, None)
    return out, hn, cn


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", list(KINDS))
def test_parity_outputs_states_and_gradients(kind, num_layers, bidirectional):
    m = make_module(kind, seed=7, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    dirs = 2 if bidirectional else 1
    lstm = kind == "lstm"
    g = torch.Generator().manual_seed(11)
    rand = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    x = rand(B, T, D).requires_grad_()
    h0 = rand(num_layers * dirs, B, H).requires_grad_()
    c0 = rand(num_layers * dirs, B, H).requires_grad_() if lstm else None
    g_out, g_h = rand(B, T, dirs * H), rand(num_layers * dirs, B, H)
    g_c = rand(num_layers * dirs, B, H) if lstm else None

    out_t, hn_t, cn_t = run_torch(m, x, LENGTHS, h0, c0)
    loss = (out_t * g_out).sum() + (hn_t * g_h).sum() + ((cn_t * g_c).sum() if lstm else 0)
    loss.backward()

    layer = from_torch(m)
    expected_type = sm.Stack if num_layers > 1 else (sm.Bidirectional if bidirectional else sm.Recurrent)
    assert isinstance(layer, expected_type)
    assert layer.dtype == np.float64
    if kind == "gru":
        inner = layer.layers[0] if num_layers > 1 else layer
        inner = inner.fwd if bidirectional else inner
        assert inner.reset_after and inner.variant == "full"
    state0 = state_from_torch(h0, c0, layer=layer)
    out, state, cache = layer.forward(x.detach().numpy(), lengths=np.array(LENGTHS), state=state0)
    dstate = state_from_torch(g_h, g_c, layer=layer)
    dx, d0 = layer.backward(g_out.numpy(), cache, dstate)

    close(out, out_t, "output")
    assert np.all(out[1, 1:] == 0) and np.all(out[3, 3:] == 0)
    if lstm:
        hn, cn = state_to_torch(state)
        close(hn, hn_t, "h_n")
        close(cn, cn_t, "c_n")
        dh0, dc0 = state_to_torch(d0)
        close(dh0, h0.grad, "dh0")
        close(dc0, c0.grad, "dc0")
    else:
        close(state_to_torch(state), hn_t, "h_n")
        close(state_to_torch(d0), h0.grad, "dh0")
    close(dx, x.grad, "dx")
    ours = grads_to_torch_layout(layer)
    names = [n for n, _ in m.named_parameters()]
    assert sorted(ours) == sorted(names)
    for name, p in m.named_parameters():
        close(ours[name], p.grad, f"grad {name}")


@pytest.mark.parametrize("kind", list(KINDS))
def test_bias_false_and_time_major_module(kind):
    m = make_module(kind, seed=3, bias=False, batch_first=False)
    x = torch.randn(T, B, D, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out_t, _ = m(x)
    layer = from_torch(m)
    for k, v in layer.params.items():
        if k.startswith("b_"):
            assert np.all(v == 0), k
    out, _, cache = layer.forward(x.numpy().transpose(1, 0, 2))
    close(out, out_t.transpose(0, 1), "output")
    # the weight gradients of a bias-free module match too
    xr = x.clone().requires_grad_()
    out_t, _ = m(xr)
    g = torch.randn_like(out_t)
    (out_t * g).sum().backward()
    layer.backward(g.numpy().transpose(1, 0, 2), cache)
    ours = grads_to_torch_layout(layer)
    for name, p in m.named_parameters():
        close(ours[name], p.grad, f"grad {name}")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_round_trip_from_then_to_torch(kind, bidirectional):
    m = make_module(kind, seed=5, num_layers=2, bidirectional=bidirectional, batch_first=True, dropout=0.25)
    m2 = to_torch(from_torch(m))
    assert type(m2) is type(m)
    assert m2.batch_first and m2.num_layers == 2 and m2.bidirectional == bidirectional
    assert m2.dropout == 0.25 and m2.training == m.training
    assert all(p.dtype == torch.float64 for p in m2.parameters())
    p1, p2 = dict(m.named_parameters()), dict(m2.named_parameters())
    assert sorted(p1) == sorted(p2)
    for name in p1:
        if name.startswith("weight"):
            assert torch.equal(p1[name], p2[name]), name
    for sfx in {n[len("bias_ih"):] for n in p1 if n.startswith("bias_ih")}:
        bi1, bh1, bi2, bh2 = (p[f"bias_{w}{sfx}"] for p in (p1, p2) for w in ("ih", "hh"))
        if kind == "gru":                                # n gate keeps b_in and b_hn apart
            assert torch.equal(bi2[2 * H:], bi1[2 * H:]) and torch.equal(bh2[2 * H:], bh1[2 * H:])
            assert torch.equal(bi2[:2 * H], bi1[:2 * H] + bh1[:2 * H]) and not bh2[:2 * H].any()
        else:
            assert torch.equal(bi2, bi1 + bh1) and not bh2.any()
    m.eval(), m2.eval()
    x = torch.randn(B, T, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out1, out2 = m(x)[0], m2(x)[0]
    np.testing.assert_allclose(out2.detach().numpy(), out1.detach().numpy(), rtol=0, atol=1e-13)


@pytest.mark.parametrize("name", ["rnn-relu", "gru-reset-after", "lstm", "bi-lstm-stack"])
def test_round_trip_to_then_from_torch_is_exact(name):
    f64 = dict(dtype=np.float64)
    build = {
        "rnn-relu": lambda: sm.RNN(D, H, "relu", seed=1, **f64),
        "gru-reset-after": lambda: sm.GRU(D, H, reset_after=True, seed=1, **f64),
        "lstm": lambda: sm.LSTM(D, H, seed=1, **f64),
        "bi-lstm-stack": lambda: sm.Stack([sm.Bidirectional(sm.LSTM(D, H, seed=1, **f64), seed=2),
                                           sm.Bidirectional(sm.LSTM(2 * H, H, seed=3, **f64), seed=4)]),
    }[name]
    layer = build()
    rng = np.random.default_rng(0)
    for p in layer.params.values():
        p[...] = rng.standard_normal(p.shape)
    m = to_torch(layer)
    back = from_torch(m)
    assert sorted(back.params) == sorted(layer.params)
    for k in layer.params:
        np.testing.assert_array_equal(back.params[k], layer.params[k], err_msg=k)
    x = rng.standard_normal((B, T, D))
    out, state, _ = layer.forward(x)
    out_t, hn_t = m(torch.from_numpy(x))
    close(out, out_t, "output")
    if name.startswith("lstm") or name.startswith("bi-lstm"):
        hn, cn = state_to_torch(state)
        close(hn, hn_t[0], "h_n")
        close(cn, hn_t[1], "c_n")
    else:
        close(state_to_torch(state), hn_t, "h_n")


def test_float32_module_and_dtype_override():
    m = make_module("lstm", seed=0)
    m32 = m.float()
    assert from_torch(m32).dtype == np.float32
    layer = from_torch(m32, dtype=np.float64)
    assert layer.dtype == np.float64
    assert to_torch(sm.GRU(D, H, reset_after=True, seed=0)).weight_ih_l0.dtype == torch.float32


@pytest.mark.parametrize("cls", ["RNNCell-tanh", "RNNCell-relu", "GRUCell", "LSTMCell"])
def test_cells_round_trip(cls):
    torch.manual_seed(2)
    name, _, act = cls.partition("-")
    cell = getattr(torch.nn, name)(D, H, **({"nonlinearity": act} if act else {})).double()
    layer = from_torch(cell)
    assert isinstance(layer, sm.Recurrent) and not layer.reverse
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(B, T, D, dtype=torch.float64, generator=gen)
    lstm = name == "LSTMCell"
    h0 = torch.randn(B, H, dtype=torch.float64, generator=gen)
    c0 = torch.randn(B, H, dtype=torch.float64, generator=gen) if lstm else None
    state_t = (h0, c0) if lstm else h0
    outs = []
    for t in range(T):                                   # the cell looped over time ≡ our layer
        state_t = cell(x[:, t], state_t)
        outs.append(state_t[0] if lstm else state_t)
    state0 = state_from_torch(h0, c0, layer=layer)
    out, state, _ = layer.forward(x.numpy(), state=state0)
    close(out, torch.stack(outs, 1), "output")
    final = state_to_torch(state, cell=True)
    if lstm:
        close(final[0], state_t[0], "h")
        close(final[1], state_t[1], "c")
    else:
        close(final, state_t, "h")
    back = to_torch(layer, cell=True)
    assert type(back) is type(cell)
    if name == "RNNCell":
        assert back.nonlinearity == act
    layer2 = from_torch(back)
    for k in layer.params:
        np.testing.assert_array_equal(layer2.params[k], layer.params[k], err_msg=k)


def test_state_helpers_layout():
    layer = sm.Stack([sm.Bidirectional(sm.LSTM(D, H, dtype=np.float64, seed=0), seed=1),
                      sm.Bidirectional(sm.LSTM(2 * H, H, dtype=np.float64, seed=2), seed=3)])
    h = torch.arange(4 * B * H, dtype=torch.float64).reshape(4, B, H)
    c = -h
    s = state_from_torch(h, c, layer=layer)
    assert isinstance(s, tuple) and len(s) == 2 and isinstance(s[1], sm.BiState)
    assert isinstance(s[1].backward, sm.LSTMState)
    np.testing.assert_array_equal(s[1].backward.a, h[3].numpy())     # layer 1, reverse direction
    np.testing.assert_array_equal(s[0].forward.c, c[0].numpy())
    h2, c2 = state_to_torch(s)
    assert torch.equal(h2, h) and torch.equal(c2, c)
    # the module description works without a layer
    s2 = state_from_torch(h, num_layers=2, bidirectional=True)
    np.testing.assert_array_equal(s2[1].forward, h[2].numpy())
    with pytest.raises(sm.ShapeError):
        state_from_torch(h[:3], c[:3], layer=layer)
    with pytest.raises(ConfigError):
        state_from_torch(h, None, layer=layer)


@pytest.mark.parametrize("build, match", [
    (lambda: sm.LSTM(D, H, peephole=True), "peephole"),
    (lambda: sm.GRU(D, H), "notes' GRU"),
    (lambda: sm.GRU(D, H, variant="simplified"), "simplified GRU"),
    (lambda: sm.Bidirectional(sm.GRU(D, H, reset_after=True), merge="sum"), "merge='concat'"),
    (lambda: sm.Stack([sm.LSTM(D, H), sm.GRU(H, H, reset_after=True)]), "same kind"),
    (lambda: sm.Stack([sm.LSTM(D, H), sm.Dense(H, 2)]), "RNN, GRU or LSTM"),
    (lambda: sm.Stack([sm.LSTM(D, H), sm.Bidirectional(sm.LSTM(H, H))]), "unidirectional"),
    (lambda: sm.LSTM(D, H, reverse=True), "reverse=True"),
])
def test_to_torch_rejects_what_pytorch_cannot_express(build, match):
    with pytest.raises(ConfigError, match=match):
        to_torch(build())


def test_from_torch_rejects_projection_and_foreign_modules():
    with pytest.raises(ConfigError, match="proj_size"):
        from_torch(torch.nn.LSTM(D, 4, proj_size=2))
    with pytest.raises(sm.DTypeError, match="torch.nn.RNN"):
        from_torch(torch.nn.Linear(D, H))


def test_notes_gru_is_a_different_function_from_reset_after():
    after = from_torch(make_module("gru", seed=9))
    notes = sm.GRU(D, H, reset_after=False, dtype=np.float64, seed=0)
    for k in notes.params:                               # same W_u, W_r, W_c, b_u, b_r, b_c
        notes.params[k] = after.params[k]
    after.params["b_ca"] = np.zeros(H)                   # even with no b_ca the two differ
    x = np.random.default_rng(0).standard_normal((B, T, D))
    a0 = np.random.default_rng(1).standard_normal((B, H))
    diff = np.abs(after.forward(x, state=a0)[0] - notes.forward(x, state=a0)[0]).max()
    assert diff > 1e-3


def test_interop_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import seqmodels.interop as I\n"
            "try:\n    I.to_torch(None)\nexcept ImportError as e:\n    print(e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install seqmodels[torch]" in res.stdout
