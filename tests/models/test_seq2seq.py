"""The encoder–decoder: gradients through encoder and decoder, decoding, checkpoints, bad input, learning."""

import itertools

import numpy as np
import pytest

from seqmodels import CheckpointError, ConfigError, DataError, DTypeError
from seqmodels.core.functional import log_softmax, softmax_cross_entropy
from seqmodels.core.gradcheck import numerical_gradient, relative_error
from seqmodels.data.dates import generate_dates
from seqmodels.models.base import Model
from seqmodels.models.seq2seq import PairBatcher, Seq2Seq, length_penalty
from seqmodels.text import Vocabulary

SRC = Vocabulary.from_text("abcde")
TGT = Vocabulary.from_text("xyz")
SOURCES = ["abc", "de", "a", "edcba", "bb"]
TARGETS = ["xy", "zzx", "x", "yzyx", "y"]


def model_(cell="lstm", tgt=TGT, **kw):
    opts = dict(hidden_size=3, embedding_dim=2, dtype=np.float64, seed=1)
    opts.update(kw)
    return Seq2Seq(SRC, tgt, cell, **opts)


def teacher_forced_log_prob(model, src_ids, out_ids, finished):
    """log P(out [+ <EOS>] | src) from one full forward pass (independent of the step-by-step decoder)."""
    eos = model.tgt_vocab.eos_id
    tgt = list(out_ids) + ([eos] if finished else [])
    tgt_in = [eos] + tgt[:-1]
    model.eval()
    logits, _ = model.forward(np.array([src_ids]), np.array([len(src_ids)]), np.array([tgt_in]),
                              np.array([len(tgt)]))
    logp = log_softmax(logits[0])
    return float(sum(logp[t, y] for t, y in enumerate(tgt)))


# ------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("cell, layers, bi, bridge", [
    ("lstm", 1, True, "dense"), ("gru", 2, False, "dense"), ("lstm", 1, True, "sum"), ("rnn", 2, True, "dense"),
])
def test_gradient_of_the_loss_wrt_every_parameter(cell, layers, bi, bridge):
    model = model_(cell, num_layers=layers, bidirectional_encoder=bi, bridge=bridge)
    batch = model.batcher(SOURCES, TARGETS, batch_size=5, shuffle=False)._batch(0, 0)
    model.zero_grad()
    model.train_batch(batch)
    analytic = {k: g.copy() for k, g in model.grads.items()}

    def loss():
        return model.train_batch(batch)[0]

    assert any(k.startswith("encoder.") for k in analytic) and (not bi or bridge == "sum" or
                                                               any(k.startswith("bridge.") for k in analytic))
    for key, p in model.params.items():
        numeric = numerical_gradient(loss, p, eps=1e-5)
        if key.startswith("encoder.") and key.endswith("W_" + ("a" if cell == "rnn" else "c")):
            assert np.abs(numeric).max() > 1e-6, key                # the encoder does learn, through dstate0
        assert relative_error(analytic[key], numeric) < 1e-4, key


def test_batch_with_padding_equals_one_pair_at_a_time():
    model = model_("lstm", bidirectional_encoder=True, num_layers=2)
    model.eval()
    src, tgt = model.encode_pairs(SOURCES, TARGETS)

    def total(s, t):
        b = PairBatcher(s, t, len(s), shuffle=False)._batch(0, 0)
        logits, _ = model.forward(*b[:3], b[4])
        return softmax_cross_entropy(logits, b[3], lengths=b[4])[0]

    together = total(src, tgt)
    alone = sum(total([s], [t]) for s, t in zip(src, tgt))
    assert together == pytest.approx(alone, rel=1e-12)


def test_teacher_forcing_inputs_are_shifted_targets():
    src, tgt = model_().encode_pairs(["ab", "c"], ["xyz", "y"])
    s, s_len, t_in, t_out, t_len = PairBatcher(src, tgt, 2, shuffle=False)._batch(0, 0)
    x, y, z = (TGT.token_to_id(c) for c in "xyz")
    eos = 2
    rows = {int(n): i for i, n in enumerate(t_len)}
    i, j = rows[4], rows[2]
    assert t_out[i].tolist() == [x, y, z, eos] and t_in[i].tolist() == [eos, x, y, z]
    assert t_out[j].tolist() == [y, eos, 0, 0] and t_in[j].tolist() == [eos, y, 0, 0]


# --------------------------------------------------------------------------------------------- decoding
def eos_friendly(model, bias=1.0):
    """Random weights, with <EOS> made likely enough that hypotheses end at different lengths."""
    model.head.params["b_y"][model.tgt_vocab.eos_id] += bias
    return model.eval()


SRC_IDS = [SRC.encode(s).astype(np.int64) for s in ["abc", "e", "dcbae", "aa", "bd"]]


def briefly_trained(cell, bi, steps=10):
    """A model part way through learning the toy pairs: uncertain, with outputs of several lengths."""
    model = model_(cell, bidirectional_encoder=bi, hidden_size=8, embedding_dim=4, seed=3 if cell == "lstm" else 5)
    model.fit(SOURCES, TARGETS, batch_size=5, steps=steps, lr=0.05, progress=False)
    return model.eval()


@pytest.mark.parametrize("cell, bi, max_len", [("lstm", True, 8), ("lstm", True, 3), ("gru", False, 8)])
def test_greedy_equals_beam_search_of_width_one(cell, bi, max_len):
    model = briefly_trained(cell, bi)
    greedy = model.greedy_search(SRC_IDS, max_len=max_len)
    beam = model.beam_search(SRC_IDS, 1, max_len=max_len)
    assert len({len(h.ids) for h in greedy}) > 1
    assert any(h.finished for h in greedy) and (max_len > 3 or not all(h.finished for h in greedy))
    for g, b in zip(greedy, beam):
        assert g.ids.tolist() == b.ids.tolist() and g.finished == b.finished
        assert g.log_prob == pytest.approx(b.log_prob, abs=1e-10)


def test_beam_scores_are_the_model_log_probabilities_and_beat_greedy():
    model = briefly_trained("gru", False)
    greedy = model.greedy_search(SRC_IDS, max_len=8)
    beam = model.beam_search(SRC_IDS, 4, max_len=8)
    better = 0
    for s, g, b in zip(SRC_IDS, greedy, beam):
        assert b.log_prob == pytest.approx(teacher_forced_log_prob(model, s, b.ids, b.finished), abs=1e-9)
        assert g.log_prob == pytest.approx(teacher_forced_log_prob(model, s, g.ids, g.finished), abs=1e-9)
        assert b.log_prob >= g.log_prob - 1e-12
        better += b.log_prob > g.log_prob + 1e-9
    assert better >= 1                                              # the search is not just greedy


@pytest.mark.parametrize("alpha, penalty", [(0.0, "gnmt"), (1.0, "gnmt"), (0.7, "simple")])
def test_wide_beam_finds_the_exhaustive_optimum(alpha, penalty):
    tgt = Vocabulary.from_text("xy")                                # V = 5: <PAD> <UNK> <EOS> x y
    model = eos_friendly(model_("lstm", tgt=tgt, hidden_size=6, embedding_dim=3, seed=11), -0.5)
    max_len, eos = 4, tgt.eos_id
    choices = [tgt.unk_id, tgt.token_to_id("x"), tgt.token_to_id("y")]   # never <PAD>; <EOS> ends
    for src in SRC_IDS[:3]:
        best = -np.inf
        for n in range(max_len + 1):
            for ys in itertools.product(choices, repeat=n):
                finished = n < max_len                             # n = max_len tokens: cut off, no <EOS>
                lp = length_penalty(n + 1 if finished else max_len, alpha, penalty)
                best = max(best, teacher_forced_log_prob(model, src, ys, finished) / lp)
        hyp = model.beam_search([src], 81, max_len, alpha, penalty)[0]
        assert hyp.score == pytest.approx(best, abs=1e-9)


def next_log_probs(model, src_ids, prefix):
    """log P(next token | source, prefix) for every token, from one teacher-forced forward pass."""
    eos = model.tgt_vocab.eos_id
    tgt_in = [eos] + list(prefix)
    logits, _ = model.forward(np.array([src_ids]), np.array([len(src_ids)]), np.array([tgt_in]),
                              np.array([len(tgt_in)]))
    logp = log_softmax(logits[0, -1])
    logp[model.tgt_vocab.pad_id] = -np.inf
    return logp


def reference_beam(model, src_ids, k, max_len, alpha, penalty):
    """Textbook beam search, one sentence, no early stopping: the k best-scoring candidates of each step
    that end in <EOS> are set aside, the k best that do not end go on; at max_len the rest are cut off."""
    eos = model.tgt_vocab.eos_id
    beams, finished = [((), 0.0)], []
    for t in range(max_len):
        cands = [(prefix + (v,), score + lp) for prefix, score in beams
                 for v, lp in enumerate(next_log_probs(model, src_ids, prefix)) if np.isfinite(lp)]
        cands.sort(key=lambda c: -c[1])
        finished += [(c[0][:-1], c[1] / length_penalty(t + 1, alpha, penalty)) for c in cands[:k] if c[0][-1] == eos]
        beams = [c for c in cands if c[0][-1] != eos][:k]
    finished += [(p, sc / length_penalty(max_len, alpha, penalty)) for p, sc in beams]
    return max(finished, key=lambda f: f[1])


@pytest.mark.parametrize("steps, k, alpha", [(6, 2, 0.0), (6, 3, 0.0), (6, 3, 0.8), (6, 5, 1.5), (3, 2, 3.0),
                                             (3, 3, 3.0)])
def test_batched_beam_search_with_early_stopping_matches_the_textbook_search(steps, k, alpha):
    # alpha = 3 rewards length strongly: a sentence then has k finished hypotheses while a live prefix can
    # still win, which only the exact stopping bound logP / lp(max_len) gets right
    model = briefly_trained("lstm", True, steps=steps)
    hyps = model.beam_search(SRC_IDS, k, max_len=7, alpha=alpha)
    for src, hyp in zip(SRC_IDS, hyps):
        ids, score = reference_beam(model, src, k, 7, alpha, "gnmt")
        assert hyp.ids.tolist() == list(ids) and hyp.score == pytest.approx(score, abs=1e-9)


def test_length_penalty_definitions():
    assert length_penalty(7, 0.0) == 1.0
    assert length_penalty(7, 1.0, "gnmt") == pytest.approx(2.0)        # (5 + 7) / 6
    assert length_penalty(4, 0.5, "simple") == pytest.approx(2.0)


def test_translate_returns_strings_in_input_order():
    model = eos_friendly(model_("gru", hidden_size=8, seed=2))
    sources = ["abc", "e", "dcbae", "aa", "bd", "a"]
    one_by_one = [model.translate([s])[0] for s in sources]
    assert model.translate(sources, batch_size=2) == one_by_one
    assert model.translate([]) == []
    assert all(set(t) <= set("xyz") for t in model.translate(sources, beam=3))


# ------------------------------------------------------------------------------------------ checkpoints
def test_save_and_load_round_trip(tmp_path):
    model = model_("lstm", bidirectional_encoder=True, dtype=np.float32, hidden_size=8)
    model.fit(SOURCES, TARGETS, batch_size=2, steps=3, progress=False)
    model.save(tmp_path / "ck")
    back = Model.load(tmp_path / "ck")
    assert isinstance(back, Seq2Seq) and back.src_vocab == SRC and back.tgt_vocab == TGT
    assert back.config() == model.config()
    for k, v in model.params.items():
        assert np.array_equal(back.params[k], v)
    assert back.translate(SOURCES, beam=2) == model.translate(SOURCES, beam=2)


def test_resume_continues_exactly(tmp_path):
    def fresh():
        return model_("gru", num_layers=2, dropout=0.2, hidden_size=6)

    straight = fresh()
    straight.fit(SOURCES, TARGETS, batch_size=2, steps=6, progress=False)
    first = fresh()
    first.fit(SOURCES, TARGETS, batch_size=2, steps=3, progress=False, checkpoint_dir=tmp_path / "run")
    again, ck = Seq2Seq.load(tmp_path / "run", return_checkpoint=True)
    history = again.fit(SOURCES, TARGETS, batch_size=2, steps=6, progress=False, resume=ck)
    assert history.step == 6
    for k, v in straight.params.items():
        assert np.array_equal(again.params[k], v), k


def test_load_rejects_another_kind(tmp_path):
    model_().save(tmp_path / "ck")
    from seqmodels.models.language_model import LanguageModel
    with pytest.raises(CheckpointError, match="seq2seq"):
        LanguageModel.load(tmp_path / "ck")


# ------------------------------------------------------------------------------------------- bad input
def test_mismatched_counts_name_both():
    model = model_()
    with pytest.raises(DataError, match="3 source sentences but 2 target sentences"):
        model.fit(["a", "b", "c"], ["x", "y"], progress=False, steps=1)
    with pytest.raises(DataError, match="3 source sentences but 2 target"):
        model.evaluate(["a", "b", "c"], ["x", "y"])


def test_empty_sources_and_targets():
    model = model_()
    with pytest.raises(DataError, match=r"sources\[1\] is empty"):
        model.translate(["abc", ""])
    with pytest.raises(DataError, match=r"targets\[0\] is empty"):
        model.fit(["abc"], [""], progress=False, steps=1)
    with pytest.raises(DataError, match="no sentence pairs"):
        model.fit([], [], progress=False, steps=1)
    with pytest.raises(DTypeError, match="list of str"):
        model.translate("abc")
    with pytest.raises(DTypeError, match=r"sources\[0\]"):
        model.translate([3])


def test_bad_configuration():
    with pytest.raises(ConfigError, match="src_vocab"):
        Seq2Seq("abc", TGT)
    with pytest.raises(ConfigError, match="tgt_vocab"):
        Seq2Seq(SRC, Vocabulary())
    with pytest.raises(ConfigError, match="bridge"):
        Seq2Seq(SRC, TGT, bridge="concat")
    model = model_()
    with pytest.raises(ConfigError, match="alpha"):
        model.translate(["ab"], beam=2, alpha=-1)
    with pytest.raises(ConfigError, match="beam"):
        model.translate(["ab"], beam=0)
    with pytest.raises(ConfigError, match="length_penalty"):
        model.translate(["ab"], beam=2, length_penalty="log")


# -------------------------------------------------------------------------------------------- learning
def test_a_small_dates_model_learns():
    kw = dict(start="2000-01-01", end="2019-12-31", styles=["d_month_y", "month_d_y"])
    train = generate_dates(1000, seed=1, **kw)
    test = generate_dates(200, seed=2, exclude={h for h, _ in train}, **kw)
    src, tgt = [h for h, _ in train], [i for _, i in train]
    sv, tv = Seq2Seq.build_vocabularies(src, tgt, level="char", lowercase=True)
    model = Seq2Seq(sv, tv, "lstm", hidden_size=48, embedding_dim=16, bidirectional_encoder=True, seed=0)
    model.fit(src, tgt, batch_size=16, epochs=12, lr=1e-2, progress=False)    # 756 steps
    scores = model.evaluate([h for h, _ in test], [i for _, i in test])
    # chance is 1 in 7,305 dates; a model that learnt nothing scores ~0
    assert scores["exact_match"] > 0.3 and scores["bleu"] > 0.8, scores    # measured: 0.715, 0.92
