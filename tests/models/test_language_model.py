"""LanguageModel: gradients, scoring = product of conditionals, sampling, training, exact resume."""

import math

import numpy as np
import pytest

import seqmodels as sm
from seqmodels.cells import fast
from seqmodels.core.gradcheck import numerical_gradient, relative_error
from seqmodels.core.errors import CheckpointError, ConfigError, DataError
from seqmodels.models.language_model import LanguageModel
from seqmodels.text import Vocabulary

TEXT = "the cat sat on the mat\nthe dog sat on the log\na cat and a dog\n" * 3


def small(cell="lstm", mode="stream", dtype=np.float64, **kw):
    vocab = Vocabulary.from_text(TEXT, level="char", lines_as_sequences=True, order="sorted")
    return LanguageModel(vocab, cell, 6, kw.pop("num_layers", 2), mode=mode, dtype=dtype, seed=0, **kw)


@pytest.mark.parametrize("cell, kw, T", [("lstm", {}, 5), ("gru", {"embedding_dim": 4}, 5), ("rnn", {"num_layers": 1}, 5),
                                         ("lstm", {"peephole": True, "embedding_dim": 3}, 5),
                                         ("lstm", {"embedding_dim": 3}, 12), ("gru", {"embedding_dim": 2}, 12)])
def test_model_gradients_match_finite_differences(cell, kw, T):
    """T = 12: 36 positions > V, so the embedding is folded into the first layer's input product."""
    lm = small(cell, **kw)
    rng = np.random.default_rng(0)
    for p in lm.params.values():
        p[...] = 0.3 * rng.standard_normal(p.shape)
    x = rng.integers(3, len(lm.vocab), size=(3, T))
    y = rng.integers(3, len(lm.vocab), size=(3, T))
    lengths = np.array([T, 2, 4])
    assert (x.size > len(lm.vocab)) == (T == 12)
    folded = lm.forward(x, lengths)[2][0] == "folded"
    assert folded == (T == 12 and lm.embedding is not None)
    lm.zero_grad()
    lm.train_batch((x, y, lengths))

    def loss():
        logits, _, _ = lm.forward(x, lengths)
        return sm.core.functional.softmax_cross_entropy(logits, y, lengths=lengths, reduction="sum")[0]

    n = lengths.sum()                                   # train_batch leaves the gradient of the mean
    for key, p in lm.params.items():
        assert relative_error(n * lm.grads[key], numerical_gradient(loss, p, eps=1e-5)) < 1e-6, key


def test_log_prob_is_the_sum_of_per_step_softmax_log_probabilities():
    lm = small(dtype=np.float64)
    r = lm.log_prob("the cat")
    ids = lm.vocab.encode("the cat", add_eos=True)
    # independent computation: feed the prefix one token at a time through the step path
    state = lm.rnn.zero_state(1)
    prev = np.array([lm.vocab.eos_id])
    total = 0.0
    for target in ids:
        logits, state = lm._step(prev, state)
        z = logits[0] - logits[0].max()
        total += z[target] - math.log(np.exp(z).sum())
        prev = np.array([target])
    assert r.total == pytest.approx(total, abs=1e-9)
    assert r.tokens == list("the cat") + ["<EOS>"]
    assert r.per_token.sum() == pytest.approx(r.total)
    assert lm.perplexity("the cat") == pytest.approx(math.exp(-r.total / 8))


@pytest.mark.parametrize("embedding_dim", [None, 6])
@pytest.mark.parametrize("max_len", [3, 40])       # 3 tokens < V: the embedding is not folded into a table
def test_sampling_runs_the_network_step_by_step(embedding_dim, max_len):
    vocab = small().vocab
    lm = LanguageModel(vocab, "gru", 8, 2, embedding_dim=embedding_dim, dtype=np.float64, seed=1)
    seed = 5
    got, lengths = lm.sample_ids(1, max_len, prime="the", seed=seed, stop_at_eos=False)
    # independent computation: the plain one-step path and the drawing rule written out
    rng = np.random.default_rng(seed)
    state = tuple(layer.zero_state(1) for layer in lm.rnn.layers)
    for tok in [lm.vocab.eos_id, *lm.vocab.encode("the")]:
        logits, state = lm._step(np.array([tok]), state)
    banned = [lm.vocab.pad_id, lm.vocab.unk_id]
    want = []
    for _ in range(max_len):
        z = logits[0].astype(np.float64)
        z[banned] = -np.inf
        p = np.exp(z - z.max())
        cdf = np.cumsum(p)
        tok = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
        want.append(tok)
        logits, state = lm._step(np.array([tok]), state)
    assert got[0].tolist() == want and lengths.tolist() == [max_len]


def test_drawn_tokens_follow_the_softmax_and_never_a_banned_or_impossible_one():
    from seqmodels.sampling import sample_next
    with np.errstate(divide="ignore"):
        logits = np.log(np.array([[0.0, 0.1, 0.2, 0.3, 0.0, 0.4]]))            # tokens 0 and 4: -inf
    logits = np.repeat(logits, 20_000, axis=0)
    ids = sample_next(logits, np.random.default_rng(0), banned=[3])
    freq = np.bincount(ids, minlength=6) / ids.size
    assert freq[0] == freq[3] == freq[4] == 0
    np.testing.assert_allclose(freq[[1, 2, 5]], np.array([0.1, 0.2, 0.4]) / 0.7, atol=0.012)   # ~4 sigma


def test_training_lowers_loss_and_prefers_the_seen_sentence():
    lm = small(dtype=np.float32, num_layers=1)
    lm = LanguageModel(lm.vocab, "lstm", 32, 1, mode="lines", seed=0)
    before = lm.log_prob("the cat sat on the mat").total
    history = lm.fit(TEXT, TEXT, batch_size=4, steps=150, lr=1e-2, eval_every=50, progress=False)
    assert history.val_loss[-1][1] < history.val_loss[0][1] < math.log(len(lm.vocab))
    after = lm.log_prob("the cat sat on the mat").total
    assert after > before + 10
    assert lm.log_prob("the cat sat on the mat").total > lm.log_prob("the cat sat on the tam").total
    assert lm.sample(1, 40, greedy=True)[0] in {"the cat sat on the mat", "the dog sat on the log",
                                                "a cat and a dog", "the cat sat on the log",
                                                "the dog sat on the mat"}


def test_sampling_is_seeded_batched_and_stops_at_eos():
    lm = small(mode="lines", dtype=np.float32)
    a = lm.sample(5, 30, seed=3)
    b = lm.sample(5, 30, seed=3)
    assert a == b and len(a) == 5
    assert lm.sample(5, 30, seed=4) != a
    assert all(len(s) <= 30 and "\n" not in s for s in a)          # <EOS> ends a sample in lines mode
    ids, lengths = lm.sample_ids(3, 30, seed=1, stop_at_eos=False)
    assert ids.shape == (3, 30) and (lengths == 30).all()            # no stop: every row runs to max_len
    ids, lengths = lm.sample_ids(8, 30, seed=1)
    for row, n in zip(ids, lengths):                                  # a stopped row ends exactly at <EOS>
        assert (row[:n] != lm.vocab.eos_id).all() and (n == 30 or row[n] == lm.vocab.eos_id)


def test_reject_unk_never_emits_unk_even_when_it_dominates():
    lm = small(mode="lines", dtype=np.float64)
    lm.params["head.b_y"][lm.vocab.unk_id] = 50.0                  # <UNK> would win almost every draw
    ids, lengths = lm.sample_ids(20, 10, seed=0, reject_unk=True, stop_at_eos=False)
    assert not (ids == lm.vocab.unk_id).any() and not (ids == lm.vocab.pad_id).any()
    ids, _ = lm.sample_ids(5, 10, seed=0, reject_unk=False, stop_at_eos=False)
    assert (ids == lm.vocab.unk_id).mean() > 0.9


def test_temperature_top_k_and_greedy():
    lm = small(mode="stream", dtype=np.float32)
    g1 = lm.sample(2, 20, greedy=True, seed=0)
    g2 = lm.sample(2, 20, greedy=True, seed=9)
    assert g1 == g2 and g1[0] == g1[1]
    assert len(set(lm.sample(1, 20, top_k=1, seed=s)[0] for s in range(3))) == 1
    assert lm.sample(1, 20, top_k=1, seed=0) == lm.sample(1, 20, greedy=True)
    with pytest.raises(ConfigError, match="temperature"):
        lm.sample(1, 5, temperature=0)
    with pytest.raises(ConfigError, match="temperature"):
        lm.sample(1, 5, temperature=-1)


def test_prime_out_of_vocabulary_char_level_is_a_clear_error():
    lm = small()
    with pytest.raises(DataError, match="Z"):
        lm.sample(1, 5, prime="Zebra")


def test_save_load_round_trip_and_kind_check(tmp_path):
    lm = small(dtype=np.float32)
    lm.save(tmp_path / "m")
    back = LanguageModel.load(tmp_path / "m")
    assert back.config() == lm.config()
    for k in lm.params:
        np.testing.assert_array_equal(back.params[k], lm.params[k])
    assert back.log_prob("the cat").total == pytest.approx(lm.log_prob("the cat").total)
    sm.io.save_checkpoint(tmp_path / "other", arrays={}, meta={}, kind="tagger", config={})
    with pytest.raises(CheckpointError, match="tagger"):
        LanguageModel.load(tmp_path / "other")


@pytest.mark.parametrize("average", [None, 0.9])
def test_resume_is_exact_in_float64(tmp_path, average):
    def run(steps, resume=None):
        lm = small(dtype=np.float64, dropout=0.2)
        ck = None
        if resume is not None:
            lm, ck = LanguageModel.load(resume, return_checkpoint=True)
        lm.fit(TEXT, batch_size=2, seq_len=5, steps=steps, lr=1e-2, checkpoint_dir=tmp_path / "ck",
               checkpoint_every=3, progress=False, resume=ck, average=average)
        return lm

    full = run(10)
    full_params = {k: v.copy() for k, v in full.params.items()}
    import shutil
    shutil.rmtree(tmp_path / "ck")
    run(6)                                                            # "killed" after step 6's checkpoint
    resumed = run(10, resume=tmp_path / "ck")
    for k, v in full_params.items():
        np.testing.assert_array_equal(resumed.params[k], v, err_msg=k)
    if average:                                  # the model ends with the averaged weights, not the last ones
        plain = small(dtype=np.float64, dropout=0.2)
        plain.fit(TEXT, batch_size=2, seq_len=5, steps=10, lr=1e-2, progress=False)
        assert any(not np.array_equal(plain.params[k], v) for k, v in full_params.items())


def test_bad_configuration():
    vocab = Vocabulary.from_text("abc")
    with pytest.raises(ConfigError, match="cell"):
        LanguageModel(vocab, "transformer")
    with pytest.raises(ConfigError, match="hidden_size"):
        LanguageModel(vocab, "lstm", 0)
    with pytest.raises(ConfigError, match="no tokens"):
        LanguageModel(Vocabulary(), "lstm")
    with pytest.raises(ConfigError, match="mode"):
        LanguageModel(vocab, mode="poem")


@pytest.mark.skipif(not fast.available(), reason="numba is not installed")
@pytest.mark.parametrize("layers,embedding_dim,peephole", [(1, None, False), (2, 6, False), (2, None, True)])
@pytest.mark.parametrize("options", [{}, {"temperature": 0.7}, {"greedy": True}, {"reject_unk": False}])
def test_compiled_sampling_draws_what_the_step_by_step_loop_draws(layers, embedding_dim, peephole, options):
    lm = LanguageModel(small().vocab, "lstm", 8, layers, embedding_dim=embedding_dim, dtype=np.float64, seed=2,
                       mode="lines", peephole=peephole)
    with fast.enabled(True, dtypes=(np.float32, np.float64)):
        from seqmodels.cells import fast_sampling
        calls = []
        original = fast_sampling.lstm_sample
        fast_sampling.lstm_sample = lambda *a: calls.append(1) or original(*a)
        try:
            got = lm.sample_ids(1, 60, prime="the", seed=4, **options)
        finally:
            fast_sampling.lstm_sample = original
    assert calls                                                     # the compiled path ran
    with fast.enabled(False):
        want = lm.sample_ids(1, 60, prime="the", seed=4, **options)
    assert got[1].tolist() == want[1].tolist()
    n = int(want[1][0])
    assert got[0][0, :n + 1].tolist() == want[0][0, :n + 1].tolist()
