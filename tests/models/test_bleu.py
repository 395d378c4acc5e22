"""Corpus BLEU-4 and exact match: hand-computed cases and an independent reference implementation."""

import math

import numpy as np
import pytest

from seqmodels import DataError, DTypeError
from seqmodels.models.bleu import corpus_bleu, exact_match


# ---------------------------------------------------------------- an independent reference implementation
def reference_bleu(hyps, refs_per_hyp, max_n=4):
    """BLEU written directly from Papineni et al. (2002), with lists only (no Counter)."""
    clipped = [0] * max_n
    total = [0] * max_n
    c = r = 0
    for hyp, refs in zip(hyps, refs_per_hyp):
        c += len(hyp)
        best = None
        for ref in refs:                                  # closest length, the shorter on ties
            key = (abs(len(ref) - len(hyp)), len(ref))
            if best is None or key < best[0]:
                best = (key, len(ref))
        r += best[1]
        for n in range(1, max_n + 1):
            grams = [hyp[i:i + n] for i in range(len(hyp) - n + 1)]
            seen = []
            for g in grams:
                if g in seen:
                    continue
                seen.append(g)
                in_hyp = grams.count(g)
                in_ref = max(sum(1 for j in range(len(ref) - n + 1) if ref[j:j + n] == g) for ref in refs)
                clipped[n - 1] += min(in_hyp, in_ref)
            total[n - 1] += len(grams)
    if c == 0 or min(clipped) == 0:
        return 0.0
    log_p = sum(math.log(clipped[i] / total[i]) for i in range(max_n)) / max_n
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(log_p)


# ------------------------------------------------------------------------------ hand-computed cases
def test_identical_corpus_scores_one():
    s = corpus_bleu(["a b c d e", "f g h i"], ["a b c d e", "f g h i"])
    assert s.bleu == 1.0 and s.bp == 1.0 and s.precisions == (1.0, 1.0, 1.0, 1.0)


def test_clipped_unigram_counts_papineni_example():
    # "the" appears 7 times in the candidate but at most twice in a reference: p1 = 2/7
    s = corpus_bleu(["the the the the the the the"], [["the cat is on the mat", "there is a cat on the mat"]],
                    max_n=1, multi_reference=True)
    assert s.matches == (2,) and s.totals == (7,)
    assert s.bleu == pytest.approx(2 / 7)            # c = r = 7 (closest reference): BP = 1


def test_brevity_penalty_by_hand():
    # c = 2, r = 6: BP = exp(1 - 6/2) = exp(-2); p1 = p2 = 1
    s = corpus_bleu(["the cat"], ["the cat sat on the mat"], max_n=2)
    assert s.bp == pytest.approx(math.exp(-2)) and s.bleu == pytest.approx(math.exp(-2))
    assert (s.hyp_len, s.ref_len) == (2, 6)


def test_bleu4_by_hand():
    # hyp: a b c d e x (6 tokens); ref: a b c d e f (6 tokens)
    # p1 = 5/6, p2 = 4/5, p3 = 3/4, p4 = 2/3, BP = 1
    s = corpus_bleu(["a b c d e x"], ["a b c d e f"])
    expected = (5 / 6 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25
    assert s.bleu == pytest.approx(expected)
    assert s.precisions == pytest.approx((5 / 6, 4 / 5, 3 / 4, 2 / 3))


def test_corpus_level_pools_counts_not_sentence_scores():
    # sentence 1 has no 4-gram match at all, sentence 2 matches fully: the corpus still scores > 0
    hyps = ["a b c d", "e f g h i"]
    refs = ["a b x d", "e f g h i"]
    s = corpus_bleu(hyps, refs)
    # p1 = (3 + 5) / 9, p2 = (1 + 4) / 7, p3 = (0 + 3) / 5, p4 = (0 + 2) / 3
    expected = ((8 / 9) * (5 / 7) * (3 / 5) * (2 / 3)) ** 0.25
    assert s.bleu == pytest.approx(expected)


def test_zero_matches_give_zero():
    assert corpus_bleu(["x y z w"], ["a b c d"]).bleu == 0.0
    # unigrams match but no 4-gram does: unsmoothed BLEU-4 is 0
    s = corpus_bleu(["d c b a"], ["a b c d"])
    assert s.precisions[0] == 1.0 and s.bleu == 0.0
    # a hypothesis shorter than 4 tokens has no 4-grams to match
    assert corpus_bleu(["a b c"], ["a b c"]).bleu == 0.0
    assert corpus_bleu(["a b c"], ["a b c"], max_n=3).bleu == 1.0


def test_empty_hypotheses_and_empty_corpus():
    s = corpus_bleu([""], ["a b c d"])
    assert s.bleu == 0.0 and s.bp == 0.0 and s.hyp_len == 0
    assert corpus_bleu([], []).bleu == 0.0
    assert exact_match([], []) == 0.0


def test_closest_reference_length_ties_take_the_shorter():
    # hyp has 5 tokens, references 4 and 6: both at distance 1, r = 4 -> c > r -> BP = 1
    s = corpus_bleu(["a b c d e"], [["a b c d", "a b c d e f"]], multi_reference=True)
    assert s.ref_len == 4 and s.bp == 1.0
    # hyp 3 tokens, references 4 and 8: closest 4 -> BP = exp(1 - 4/3)
    s = corpus_bleu(["a b c"], [["a b c d", "a b c d e f g h"]], multi_reference=True, max_n=1)
    assert s.ref_len == 4 and s.bp == pytest.approx(math.exp(1 - 4 / 3))


def test_token_lists_and_strings_agree():
    a = corpus_bleu([["je", "suis", "là", "."]], [["je", "suis", "ici", "."]], max_n=2)
    b = corpus_bleu(["je suis là ."], ["je suis ici ."], max_n=2)
    assert a == b


# ---------------------------------------------------------------------- versus the reference implementation
@pytest.mark.parametrize("seed", range(6))
def test_matches_independent_implementation_on_random_corpora(seed):
    rng = np.random.default_rng(seed)
    vocab = list("abcde")                    # small vocabulary: many n-gram matches and repeats
    hyps, refs = [], []
    for _ in range(int(rng.integers(1, 12))):
        hyps.append([vocab[i] for i in rng.integers(0, 5, rng.integers(0, 12))])
        refs.append([[vocab[i] for i in rng.integers(0, 5, rng.integers(1, 12))]
                     for _ in range(int(rng.integers(1, 4)))])
    got = corpus_bleu(hyps, refs, multi_reference=True).bleu
    assert got == pytest.approx(reference_bleu(hyps, refs), abs=1e-12)
    single = corpus_bleu(hyps, [r[0] for r in refs]).bleu
    assert single == pytest.approx(reference_bleu(hyps, [[r[0]] for r in refs]), abs=1e-12)


def test_nonzero_case_against_independent_implementation():
    hyps = [s.split() for s in ["the cat is on the mat", "there is a dog in the garden today"]]
    refs = [[s.split() for s in ["the cat sat on the mat", "a cat is on the mat"]],
            [s.split() for s in ["there is a dog in the garden", "a dog is in the garden"]]]
    got = corpus_bleu(hyps, refs, multi_reference=True).bleu
    assert 0 < got < 1 and got == pytest.approx(reference_bleu(hyps, refs))


# --------------------------------------------------------------------------------- exact match, errors
def test_exact_match():
    assert exact_match(["2001-01-01", "a b", "x"], ["2001-01-01", "a  b", "y"]) == pytest.approx(2 / 3)
    assert exact_match(["x"], [["y", "x"]], multi_reference=True) == 1.0


def test_bad_input():
    with pytest.raises(DataError, match="one entry per hypothesis \\(2\\), got 1"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(DTypeError, match="str tokens"):
        corpus_bleu([[1, 2]], [["a"]])
    with pytest.raises(DTypeError, match="list of references"):
        corpus_bleu(["a"], ["a"], multi_reference=True)
    with pytest.raises(DataError, match="empty list of references"):
        corpus_bleu(["a"], [[]], multi_reference=True)
