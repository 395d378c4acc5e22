"""Tests of the counting (n-gram) language model, seqmodels.models.ngram."""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqmodels.core.errors import CheckpointError, ConfigError, DTypeError
from seqmodels.models.ngram import LogProbResult, NGramLM

E, U = "<EOS>", "<UNK>"
# Tiny corpus for the hand computations (bigram, BOS = <s>):
#   <s> a b E   ->  (<s>,a) (a,b) (b,E)
#   <s> a a E   ->  (<s>,a) (a,a) (a,E)
# vocabulary {a, b, E, <UNK>}: V = 4; c(<s>) = 2, c(a) = 3, c(b) = 1.
TINY = [["a", "b", E], ["a", "a", E]]


def _data_dir() -> Path:
    env = os.environ.get("SEQMODELS_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


# ---------------------------------------------------------------------------- hand-computed values
def test_mle_bigram_by_hand():
    lm = NGramLM(2, smoothing="mle").fit(TINY)
    assert sorted(lm.vocab) == sorted(["a", "b", E, U])
    assert lm.prob("b", ["a"]) == pytest.approx(1 / 3)
    assert lm.prob("a", ["a"]) == pytest.approx(1 / 3)
    assert lm.prob(E, ["b"]) == pytest.approx(1.0)
    assert lm.prob("a", []) == pytest.approx(2 / 2)  # context = sequence start
    assert lm.prob("b", []) == 0.0
    assert lm.prob(U, ["a"]) == 0.0
    # log P(a b E) = log 1 + log 1/3 + log 1
    res = lm.log_prob(["a", "b", E])
    assert res.total == pytest.approx(math.log(1 / 3))
    np.testing.assert_allclose(res.per_token, np.log([1.0, 1 / 3, 1.0]))


def test_add_k_bigram_by_hand():
    k = 0.5
    lm = NGramLM(2, smoothing="add_k", k=k).fit(TINY)
    V = 4
    assert lm.prob("b", ["a"]) == pytest.approx((1 + k) / (3 + k * V))  # 0.3
    assert lm.prob(U, ["a"]) == pytest.approx((0 + k) / (3 + k * V))  # 0.1
    assert lm.prob("a", []) == pytest.approx((2 + k) / (2 + k * V))  # 0.625
    assert lm.prob("a", ["zzz"]) == pytest.approx(k / (0 + k * V))  # unseen context (<UNK>): uniform
    add1 = NGramLM(2, smoothing="add_k", k=1.0).fit(TINY)
    assert add1.prob(E, ["b"]) == pytest.approx((1 + 1) / (1 + 4))


def test_kneser_ney_bigram_by_hand():
    D, V = 0.75, 4
    lm = NGramLM(2, smoothing="kneser_ney", discount=D).fit(TINY)
    # continuation counts N1+(. w): a <- {<s>, a} = 2, b <- {a} = 1, E <- {b, a} = 2, <UNK> = 0
    cc = {"a": 2, "b": 1, E: 2, U: 0}
    cc_total, cc_types = 5, 3
    p1 = {w: max(c - D, 0) / cc_total + D * cc_types / cc_total / V for w, c in cc.items()}
    assert p1["a"] == pytest.approx(0.3625) and p1[U] == pytest.approx(0.1125)
    # context a: c(a a) = 1, c(a b) = 1, c(a E) = 1, c(a) = 3, N1+(a .) = 3
    raw_a = {"a": 1, "b": 1, E: 1, U: 0}
    for w in cc:
        expected = max(raw_a[w] - D, 0) / 3 + D * 3 / 3 * p1[w]
        assert lm.prob(w, ["a"]) == pytest.approx(expected)
    assert lm.prob("b", ["a"]) == pytest.approx(0.25 / 3 + 0.75 * 0.1625)
    # context <s>: c(<s> a) = 2, c(<s>) = 2, N1+(<s> .) = 1
    assert lm.prob("a", []) == pytest.approx((2 - D) / 2 + D * 1 / 2 * p1["a"])
    assert lm.prob("b", []) == pytest.approx(D * 1 / 2 * p1["b"])
    # unseen context (maps to <UNK>, never seen as a context): back off to the unigram level
    assert lm.prob("b", ["zzz"]) == pytest.approx(p1["b"])
    assert lm.prob(U, ["a"]) > 0


def test_auto_discount_by_hand():
    # bigram counts of TINY: (<s>,a)=2, (a,b)=1, (b,E)=1, (a,a)=1, (a,E)=1 -> n1 = 4, n2 = 1
    lm = NGramLM(2, discount="auto").fit(TINY)
    assert lm.discounts[1] == pytest.approx(4 / (4 + 2 * 1))
    # unigram continuation counts a=2, b=1, E=2 -> n1 = 1, n2 = 2
    assert lm.discounts[0] == pytest.approx(1 / (1 + 2 * 2))


# ---------------------------------------------------------------------------- an independent reference
def _reference_kn(corpus, n, D, vocab, context, w):
    """Interpolated Kneser-Ney straight from the formulas, with dicts and recursion."""
    bos = object()
    V = len(vocab)
    top = Counter()
    for s in corpus:
        s = [t if t in vocab else U for t in s]
        pad = [bos] * (n - 1) + s
        for t in range(n - 1, len(pad)):
            top[tuple(pad[t - n + 1 : t + 1])] += 1
    counts = {n: top}
    for m in range(n - 1, 0, -1):  # continuation counts from the distinct (m+1)-grams
        counts[m] = Counter(g[1:] for g in counts[m + 1])

    def p(m, ctx, w):
        if m == 0:
            return 1 / V
        follow = {g[-1]: c for g, c in counts[m].items() if g[:-1] == ctx}
        tot = sum(follow.values())
        lower = p(m - 1, ctx[1:], w)
        if tot == 0:
            return lower
        return max(follow.get(w, 0) - D, 0) / tot + D * len(follow) / tot * lower

    ctx = [t if t in vocab else U for t in context][-(n - 1) :] if n > 1 else []
    ctx = tuple([bos] * (n - 1 - len(ctx)) + ctx)
    return p(n, ctx, w if w in vocab else U)


# ---------------------------------------------------------------------------- properties (hypothesis)
tokens = st.sampled_from(["a", "b", "c", "d", E])
corpora = st.lists(st.lists(tokens, min_size=0, max_size=8), min_size=1, max_size=6)
contexts = st.lists(st.sampled_from(["a", "b", "c", "d", E, "zz"]), max_size=5)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(corpus=corpora, n=st.integers(1, 4), smoothing=st.sampled_from(["kneser_ney", "add_k", "mle"]),
       discount=st.sampled_from([0.75, 0.3, "auto"]), ctxs=st.lists(contexts, min_size=1, max_size=4))
def test_distributions_sum_to_one_at_every_order(corpus, n, smoothing, discount, ctxs):
    lm = NGramLM(n, smoothing=smoothing, k=0.7, discount=discount).fit(corpus)
    for ctx in ctxs + [[]]:  # context lengths 0..5 reach every order, unseen tokens included
        toks, probs = lm.distribution(ctx)
        assert toks == lm.vocab and probs.shape == (len(toks),)
        assert probs.sum() == pytest.approx(1.0, abs=1e-12)
        assert (probs >= 0).all()
        if smoothing != "mle":
            assert (probs > 0).all()  # every token, <UNK> included
        for t, p in zip(toks, probs):  # the scoring path agrees with the distribution path
            assert lm.prob(t, ctx) == pytest.approx(p, rel=1e-12, abs=1e-15)


@SETTINGS
@given(corpus=corpora, n=st.integers(1, 4), D=st.sampled_from([0.75, 0.4]), ctx=contexts, w=tokens)
def test_kneser_ney_matches_reference(corpus, n, D, ctx, w):
    lm = NGramLM(n, discount=D).fit(corpus)
    assert lm.prob(w, ctx) == pytest.approx(_reference_kn(corpus, n, D, set(lm.vocab), ctx, w), rel=1e-12)


@SETTINGS
@given(corpus=corpora, n=st.integers(1, 4), smoothing=st.sampled_from(["kneser_ney", "add_k", "mle"]),
       seq=st.lists(st.sampled_from(["a", "b", "zz", E]), min_size=1, max_size=8))
def test_log_prob_is_sum_of_conditionals(corpus, n, smoothing, seq):
    lm = NGramLM(n, smoothing=smoothing).fit(corpus)
    res = lm.log_prob(seq)
    assert isinstance(res, LogProbResult)
    with np.errstate(divide="ignore"):
        expected = [math.log(p) if p > 0 else -math.inf for p in (lm.prob(t, seq[:i]) for i, t in enumerate(seq))]
    np.testing.assert_allclose(res.per_token, expected, rtol=1e-12)
    if math.isfinite(sum(expected)):
        assert res.total == pytest.approx(sum(expected), rel=1e-12)
    else:
        assert res.total == -math.inf
    assert res.tokens == [t if t in lm.vocab else U for t in seq]


# ---------------------------------------------------------------------------- perplexity
def test_perplexity_is_exp_mean_negative_log_prob():
    lm = NGramLM(3, smoothing="kneser_ney").fit([list("abracadabra") + [E], list("cadabra") + [E]])
    held = [list("abrac") + [E], list("dab"), list("zzab") + [E]]
    per = np.concatenate([lm.log_prob(s).per_token for s in held])
    assert len(per) == sum(map(len, held))
    assert lm.perplexity(held) == pytest.approx(math.exp(-per.mean()), rel=1e-12)
    assert lm.perplexity("abra") == pytest.approx(math.exp(-lm.log_prob("abra").total / 4), rel=1e-12)
    # uniform model: perplexity = V
    uni = NGramLM(1, smoothing="add_k").fit([[]], vocab=["a", "b", "c"])
    assert uni.perplexity([["a", "b"], ["c"]]) == pytest.approx(4.0)  # a, b, c, <UNK>


def test_mle_unseen_ngram_gives_zero_and_infinite_perplexity():
    lm = NGramLM(2, smoothing="mle").fit(TINY)
    assert lm.log_prob(["b", "a"]).total == -math.inf
    assert lm.perplexity([["b", "a"]]) == math.inf
    assert lm.perplexity([["a", "b", E]]) == pytest.approx(math.exp(-math.log(1 / 3) / 3))


# ---------------------------------------------------------------------------- vocabulary / <UNK>
def test_unseen_tokens_map_to_unk():
    lm = NGramLM(2).fit(TINY)
    assert U in lm.vocab
    assert lm.prob("never-seen", ["a"]) == lm.prob(U, ["a"]) > 0
    assert lm.prob("a", ["never-seen"]) == lm.prob("a", [U])
    assert lm.log_prob(["a", "qq", E]).tokens == ["a", U, E]
    # fixed vocabulary: training tokens outside it are counted as <UNK>
    fixed = NGramLM(1, smoothing="mle").fit([["a", "b", "b", "c"]], vocab=["a", "b"])
    assert sorted(fixed.vocab) == sorted(["a", "b", U])
    assert fixed.prob(U) == pytest.approx(1 / 4) and fixed.prob("c") == pytest.approx(1 / 4)
    assert fixed.prob("b") == pytest.approx(2 / 4)


def test_other_hashable_tokens_and_custom_unk():
    lm = NGramLM(2, smoothing="mle", unk_token=-1).fit([[1, 2, 3], [1, 2, 2]])
    assert -1 in lm.vocab
    assert lm.prob(2, [1]) == 1.0 and lm.prob(3, [2]) == pytest.approx(1 / 2)
    assert lm.log_prob([1, 99]).tokens == [1, -1]


# ---------------------------------------------------------------------------- sampling
def test_sampling_is_reproducible_and_respects_stop_and_max_len():
    corpus = [list(w) + [E] for w in ["abba", "baab", "abab", "cab", "bc"]]
    lm = NGramLM(3).fit(corpus)
    a = lm.sample(20, seed=123, num=30)
    assert a == lm.sample(20, seed=123, num=30)
    assert a == lm.sample(20, seed=np.random.default_rng(123), num=30)
    assert a != lm.sample(20, seed=124, num=30)
    assert len(a) == 30 and all(len(s) <= 20 and E not in s and U not in s for s in a)
    assert any(len(s) < 20 for s in a)  # some stop at <EOS>
    b = lm.sample(5, seed=0, num=30, include_stop=True)
    assert all(len(s) <= 5 and (E not in s or s.index(E) == len(s) - 1) for s in b)
    assert any(s[-1] == E for s in b if s)
    c = lm.sample(7, seed=0, num=10, stop_token=None)
    assert all(len(s) == 7 for s in c)  # no stop token: always max_len


def test_sampling_follows_the_distribution():
    det = NGramLM(2, smoothing="mle").fit([["x", "y", "z", E]])
    assert det.sample(50, seed=1, num=3) == [["x", "y", "z"]] * 3
    assert det.sample(50, seed=1, prime=["y"]) == [["z"]]  # prime is context, not output
    assert det.sample(2, seed=1) == [["x", "y"]]
    # greedy at low temperature; frequencies match the probabilities at temperature 1
    lm = NGramLM(1, smoothing="mle").fit([["a"] * 3 + ["b"]])
    assert lm.sample(1, seed=0, num=50, temperature=1e-3) == [["a"]] * 50
    draws = Counter(s[0] for s in lm.sample(1, seed=0, num=4000))
    assert draws["a"] / 4000 == pytest.approx(0.75, abs=0.03)
    # <UNK> appears only when allowed
    kn = NGramLM(1).fit([["a", "b"]])
    assert any(s == [U] for s in kn.sample(1, seed=0, num=300, reject_unk=False))
    assert not any(s == [U] for s in kn.sample(1, seed=0, num=300))


# ---------------------------------------------------------------------------- configuration errors
@pytest.mark.parametrize("kwargs, name", [
    ({"n": 0}, "n"), ({"n": -2}, "n"), ({"n": 2, "k": 0}, "k"), ({"n": 2, "k": -1.0}, "k"),
    ({"n": 2, "k": float("nan")}, "k"), ({"n": 2, "discount": 0.0}, "discount"),
    ({"n": 2, "discount": 1.0}, "discount"), ({"n": 2, "discount": 1.5}, "discount"),
    ({"n": 2, "discount": -0.2}, "discount"), ({"n": 2, "discount": "guess"}, "discount"),
    ({"n": 2, "smoothing": "witten_bell"}, "smoothing"),
])
def test_bad_config_raises_config_error(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        NGramLM(**kwargs)


def test_misuse_errors():
    with pytest.raises(DTypeError):
        NGramLM(2.5)
    with pytest.raises(ConfigError, match="not fitted"):
        NGramLM(2).prob("a", [])
    with pytest.raises(DTypeError, match="sequences"):
        NGramLM(2).fit("a whole text")  # one str is not an iterable of sequences
    lm = NGramLM(2).fit(TINY)
    for kwargs in ({"temperature": 0}, {"num": 0}, {"max_len": -1}):
        with pytest.raises(ConfigError, match=next(iter(kwargs))):
            lm.sample(**{"max_len": 3, **kwargs})
    with pytest.raises(ConfigError, match="vocab"):
        NGramLM(2).fit(TINY, vocab=["a", "a"])


# ---------------------------------------------------------------------------- saving
@pytest.mark.parametrize("smoothing, discount", [("kneser_ney", 0.75), ("kneser_ney", "auto"), ("add_k", 0.75),
                                                 ("mle", 0.75)])
def test_to_dict_round_trip_through_json(smoothing, discount):
    corpus = [list("the cat sat on the mat") + [E], list("a cat") + [E]]
    lm = NGramLM(4, smoothing=smoothing, k=0.3, discount=discount).fit(corpus)
    state = json.loads(json.dumps(lm.to_dict()))
    back = NGramLM.from_dict(state)
    assert back.vocab == lm.vocab and back.discounts == lm.discounts
    for ctx in ([], list("the"), list(" ca"), list("zzz")):
        np.testing.assert_array_equal(back.distribution(ctx)[1], lm.distribution(ctx)[1])
    assert back.sample(30, seed=5, num=3) == lm.sample(30, seed=5, num=3)
    bad = dict(state, counts=state["counts"][:-1])
    with pytest.raises(CheckpointError, match="counts"):
        NGramLM.from_dict(bad)
    with pytest.raises(CheckpointError, match="vocab"):
        NGramLM.from_dict({k: v for k, v in state.items() if k != "vocab"})


# ---------------------------------------------------------------------------- a real corpus
def test_kneser_ney_beats_add_one_on_held_out_shakespeare():
    path = _data_dir() / "tinyshakespeare" / "input.txt"
    if not path.exists():
        pytest.skip(f"{path} not found (set SEQMODELS_DATA)")
    text = path.read_text(encoding="utf-8")[:220_000]
    train, valid = text[:200_000], text[200_000:]
    kn = NGramLM(5, smoothing="kneser_ney").fit([train])
    add1 = NGramLM(5, smoothing="add_k", k=1.0).fit([train])
    ppl_kn, ppl_add1 = kn.perplexity(valid), add1.perplexity(valid)
    assert ppl_kn < 0.8 * ppl_add1
    assert 2.0 < ppl_kn < 10.0  # characters: far below the ~65-symbol uniform model
