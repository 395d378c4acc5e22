"""gate_activity against the notes' equations recomputed by hand; surprisal against exact probabilities."""

import math

import numpy as np
import pytest

import seqmodels as sm
from seqmodels.diagnostics import format_surprisal, gate_activity, gate_table, surprisal
from seqmodels.models.language_model import LanguageModel
from seqmodels.text import Vocabulary


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def randomised(layer, seed=0, scale=0.7):
    rng = np.random.default_rng(seed)
    for p in layer.params.values():
        p[...] = scale * rng.standard_normal(p.shape)
    return layer


@pytest.mark.parametrize("peephole", [False, True])
def test_lstm_gates_and_states_follow_the_equations(peephole):
    rng = np.random.default_rng(0)
    layer = randomised(sm.LSTM(3, 4, peephole=peephole, dtype=np.float64, seed=0))
    x = rng.standard_normal((3, 5, 3))
    lengths = np.array([5, 2, 4])
    act = gate_activity(layer, x, lengths)["layer"]
    P = layer.params
    for b in range(3):
        a_prev, c_prev = np.zeros(4), np.zeros(4)
        for t in range(lengths[b]):
            v = np.concatenate([a_prev, x[b, t]])
            peep = {g: P[f"p_{g}"] * c_prev if peephole else 0.0 for g in "ufo"}
            u = sigmoid(P["W_u"] @ v + P["b_u"] + peep["u"])      # Γu
            f = sigmoid(P["W_f"] @ v + P["b_f"] + peep["f"])      # Γf
            o = sigmoid(P["W_o"] @ v + P["b_o"] + peep["o"])      # Γo
            cand = np.tanh(P["W_c"] @ v + P["b_c"])               # c~
            c = u * cand + f * c_prev
            a = o * np.tanh(c)
            for name, want in (("u", u), ("f", f), ("o", o), ("c", cand)):
                np.testing.assert_allclose(act.gates[name][b, t], want, rtol=1e-12)
            np.testing.assert_allclose(act.states["c"][b, t], c, rtol=1e-12)
            np.testing.assert_allclose(act.states["a"][b, t], a, rtol=1e-12)
            a_prev, c_prev = a, c
        assert np.isnan(act.gates["f"][b, lengths[b]:]).all() and np.isnan(act.states["c"][b, lengths[b]:]).all()
    assert act.cell == "lstm" and act.lengths.tolist() == [5, 2, 4]


@pytest.mark.parametrize("variant", ["full", "simplified"])
def test_gru_gates_follow_the_equations(variant):
    rng = np.random.default_rng(1)
    layer = randomised(sm.GRU(2, 3, variant, dtype=np.float64, seed=0), seed=2)
    x = rng.standard_normal((2, 4, 2))
    act = gate_activity(layer, x)["layer"]
    P = layer.params
    assert sorted(act.gates) == (["c", "r", "u"] if variant == "full" else ["c", "u"])
    for b in range(2):
        c_prev = np.zeros(3)
        for t in range(4):
            v = np.concatenate([c_prev, x[b, t]])
            u = sigmoid(P["W_u"] @ v + P["b_u"])
            if variant == "full":
                r = sigmoid(P["W_r"] @ v + P["b_r"])
                np.testing.assert_allclose(act.gates["r"][b, t], r, rtol=1e-12)
                cand = np.tanh(P["W_c"] @ np.concatenate([r * c_prev, x[b, t]]) + P["b_c"])
            else:
                cand = np.tanh(P["W_c"] @ v + P["b_c"])
            c = u * cand + (1 - u) * c_prev
            np.testing.assert_allclose(act.gates["u"][b, t], u, rtol=1e-12)
            np.testing.assert_allclose(act.gates["c"][b, t], cand, rtol=1e-12)
            np.testing.assert_allclose(act.states["a"][b, t], c, rtol=1e-12)
            c_prev = c


def test_saturation_fractions_of_known_gates():
    """W = 0: Γf = σ(5) > 0.9 everywhere, Γu = σ(-5) < 0.1, Γo = σ(0) = 0.5, c~ = tanh(2) > 0.9."""
    layer = sm.LSTM(2, 3, dtype=np.float64, seed=0)
    for k in ("W_u", "W_f", "W_o", "W_c"):
        layer.params[k] = np.zeros_like(layer.params[k])
    layer.params["b_f"] = np.full(3, 5.0)
    layer.params["b_u"] = np.full(3, -5.0)
    layer.params["b_o"] = np.zeros(3)
    layer.params["b_c"] = np.full(3, 2.0)
    act = gate_activity(layer, np.ones((2, 6, 2)), lengths=np.array([6, 3]))["layer"]
    s = act.summary()
    assert s["f"].mean == pytest.approx(1 / (1 + math.exp(-5))) and s["f"].high == 1.0 and s["f"].low == 0.0
    assert s["u"].low == 1.0 and s["u"].saturation == 1.0
    assert s["o"].mean == pytest.approx(0.5) and s["o"].saturation == 0.0
    assert s["c"].high == 1.0 and s["c"].mean == pytest.approx(math.tanh(2))
    assert act.per_step("f").shape == (2, 6) and np.isnan(act.per_step("f")[1, 3:]).all()
    table = gate_table({"layer": act})
    assert "Γf (forget)" in table and "0.993" in table


def test_bidirectional_backward_half_reads_reversed_sequences():
    rng = np.random.default_rng(3)
    bi = sm.Bidirectional(randomised(sm.GRU(2, 3, dtype=np.float64, seed=0)), seed=1)
    randomised(bi.bwd, seed=5)
    x = rng.standard_normal((2, 5, 2))
    lengths = np.array([5, 3])
    act = gate_activity(bi, x, lengths)
    twin = sm.GRU(2, 3, dtype=np.float64, seed=0)
    for k in twin.params:
        twin.params[k] = bi.bwd.params[k]
    for b in range(2):
        n = lengths[b]
        ref = gate_activity(twin, x[b:b + 1, :n][:, ::-1])["layer"]
        np.testing.assert_allclose(act["backward"].gates["u"][b, :n], ref.gates["u"][0, ::-1], rtol=1e-12)
        np.testing.assert_allclose(act["backward"].states["a"][b, :n], ref.states["a"][0, ::-1], rtol=1e-12)


def small_lm(**kw):
    vocab = Vocabulary.from_text("abc abc cab", level="char")
    return LanguageModel(vocab, hidden_size=5, dtype=np.float64, seed=0, **kw)


def test_language_model_layers_and_rnn_without_gates():
    lm = small_lm(cell="lstm", num_layers=2, embedding_dim=4)
    act = gate_activity(lm, "abca")
    assert list(act) == ["rnn.layers.0", "rnn.layers.1"]
    x = np.array([[lm.vocab.eos_id] + lm.vocab.encode("abca").tolist()])
    logits = lm.forward(x)[0]
    top = act["rnn.layers.1"].states["a"]
    np.testing.assert_allclose(lm.head.forward(top)[0], logits, rtol=1e-12)
    rnn = small_lm(cell="rnn")
    act = gate_activity(rnn, "ab")["rnn.layers.0"]
    assert act.gates == {} and "(no gates)" in gate_table({"x": act})
    with pytest.raises(KeyError, match="no gate or state 'f'"):
        act.per_step("f")


def uniform_lm(bias=None):
    lm = small_lm(cell="gru")
    lm.params["head.W_y"] = np.zeros_like(lm.params["head.W_y"])
    b = np.zeros_like(lm.params["head.b_y"])
    for tok, v in (bias or {}).items():
        b[lm.vocab.token_to_id(tok)] = v
    lm.params["head.b_y"] = b
    return lm


def test_surprisal_of_a_uniform_model_is_log2_v():
    lm = uniform_lm()
    V = len(lm.vocab)
    items = surprisal(lm, "cab")
    assert [i.token for i in items] == ["c", "a", "b", "<EOS>"]
    for it in items:
        assert it.prob == pytest.approx(1 / V, rel=1e-12) and it.bits == pytest.approx(math.log2(V), rel=1e-12)


def test_format_surprisal_highlights_the_unlikely_token():
    lm = uniform_lm({"b": -12.0})
    V = len(lm.vocab)
    p_b = math.exp(-12) / (V - 1 + math.exp(-12))
    items = surprisal(lm, "aba")
    assert items[1].bits == pytest.approx(-math.log2(p_b), rel=1e-10)
    plain = format_surprisal(lm, "aba", color=False)
    assert plain.splitlines()[0] == "a[b]a⏎" and "\033[" not in plain
    coloured = format_surprisal(lm, "aba", color=True)
    assert coloured.splitlines()[0] == "a\033[1;31mb\033[0ma⏎"
    total = sum(it.bits for it in items)
    assert f"-log2 P = {total:.1f} bits" in plain


def test_bad_input_raises():
    with pytest.raises(sm.DTypeError, match="model_or_layer"):
        gate_activity("not a layer", np.zeros((1, 2, 3)))
    with pytest.raises(sm.ShapeError, match="token ids"):
        gate_activity(small_lm(), np.zeros((2, 3, 4), np.int64))
