"""Corpus BLEU (Papineni et al. 2002) and exact match, the scores of the encoder–decoder.

For n = 1..N (N = 4 for BLEU-4), over the whole corpus:

    p_n = Σ_sentences Σ_{g ∈ n-grams(hyp)} min(count_hyp(g), max_ref count_ref(g))   (clipped counts)
          ------------------------------------------------------------------------
                          Σ_sentences (number of n-grams in hyp)

    c = Σ |hyp|,   r = Σ |closest reference|   (ties: the shorter reference)
    BP = 1 if c > r else exp(1 - r / c)              (brevity penalty; BP = 0 when c = 0)
    BLEU = BP · exp(Σ_n (1/N) log p_n)                (0 when some p_n = 0: no smoothing)

This is the standard definition (as in ``multi-bleu.perl`` and sacreBLEU without smoothing) applied to
whatever tokens are given: strings are split on whitespace, lists are used as they are. BLEU is returned
in [0, 1]; papers print 100 · BLEU.

>>> hyp = ["the cat sat on the mat".split()]
>>> ref = ["the cat sat on the mat".split()]
>>> corpus_bleu(hyp, ref).bleu
1.0
>>> round(corpus_bleu(["the cat".split()], ["the cat sat on the mat".split()], max_n=2).bp, 4)
0.1353
"""

from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple, Sequence

from ..core.errors import DataError, DTypeError, check_positive_int

__all__ = ["BleuScore", "corpus_bleu", "exact_match", "ngram_counts"]


class BleuScore(NamedTuple):
    """``bleu`` in [0, 1]; ``precisions[n-1]`` = p_n; ``bp`` brevity penalty; ``hyp_len`` c, ``ref_len`` r;
    ``matches[n-1]`` / ``totals[n-1]`` the clipped and total n-gram counts behind p_n."""

    bleu: float
    precisions: tuple
    bp: float
    hyp_len: int
    ref_len: int
    matches: tuple
    totals: tuple

    def __str__(self) -> str:
        ps = "/".join(f"{100 * p:.1f}" for p in self.precisions)
        return (f"BLEU = {100 * self.bleu:.2f} {ps} (BP = {self.bp:.3f}, ratio = "
                f"{self.hyp_len / max(self.ref_len, 1):.3f}, hyp_len = {self.hyp_len}, ref_len = {self.ref_len})")


def ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    """Counter of the n-grams (tuples) of ``tokens``."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _tokens(x, what: str) -> list:
    if isinstance(x, str):
        return x.split()
    if isinstance(x, (bytes, bytearray)):
        raise DTypeError(f"{what}: expected a str or a list of str tokens, got bytes; decode it first")
    try:
        toks = list(x)
    except TypeError:
        raise DTypeError(f"{what}: expected a str or a list of str tokens, got {type(x).__name__}") from None
    for t in toks:
        if not isinstance(t, str):
            raise DTypeError(f"{what}: expected str tokens, got {t!r} ({type(t).__name__})")
    return toks


def _references(references, multi_reference: bool, n_hyp: int) -> list[list[list[str]]]:
    refs = list(references)
    if len(refs) != n_hyp:
        raise DataError(f"references: expected one entry per hypothesis ({n_hyp}), got {len(refs)}")
    if not multi_reference:
        return [[_tokens(r, f"references[{i}]")] for i, r in enumerate(refs)]
    out = []
    for i, group in enumerate(refs):
        if isinstance(group, str):
            raise DTypeError(f"references[{i}]: with multi_reference=True expected a list of references, "
                             "got a single str; wrap it in a list")
        group = [_tokens(r, f"references[{i}][{j}]") for j, r in enumerate(group)]
        if not group:
            raise DataError(f"references[{i}]: an empty list of references; give at least one")
        out.append(group)
    return out


def corpus_bleu(hypotheses, references, *, max_n: int = 4, multi_reference: bool = False) -> BleuScore:
    """Corpus-level BLEU-``max_n`` with the brevity penalty (see the module docstring).

    Args:
        hypotheses: one entry per sentence: a str (split on whitespace) or a list of str tokens.
        references: one entry per sentence, same forms; with ``multi_reference=True`` each entry is a
            list of references (any of which may match; counts are clipped by the maximum over them).
        max_n: the longest n-gram (4 for BLEU-4); the weights are uniform, 1/max_n.

    Returns:
        :class:`BleuScore`; ``bleu`` is 0 when any p_n has no match (no smoothing) or the corpus is empty.
    """
    max_n = check_positive_int("max_n", max_n)
    hyps = [_tokens(h, f"hypotheses[{i}]") for i, h in enumerate(hypotheses)]
    refs = _references(references, multi_reference, len(hyps))
    matches, totals = [0] * max_n, [0] * max_n
    c = r = 0
    for hyp, group in zip(hyps, refs):
        c += len(hyp)
        r += min((len(x) for x in group), key=lambda L: (abs(L - len(hyp)), L))  # closest, ties: shorter
        for n in range(1, max_n + 1):
            h = ngram_counts(hyp, n)
            if not h:
                continue
            best: Counter = Counter()
            for ref in group:
                best |= ngram_counts(ref, n)                  # max count of each n-gram over references
            matches[n - 1] += sum(min(k, best[g]) for g, k in h.items())
            totals[n - 1] += sum(h.values())
    precisions = tuple(m / t if t else 0.0 for m, t in zip(matches, totals))
    if c == 0:
        bp = 0.0
    else:
        bp = 1.0 if c > r else math.exp(1.0 - r / c)
    if min(matches) == 0:
        bleu = 0.0
    else:
        bleu = bp * math.exp(sum(math.log(p) for p in precisions) / max_n)
    return BleuScore(bleu, precisions, bp, c, r, tuple(matches), tuple(totals))


def exact_match(hypotheses, references, *, multi_reference: bool = False) -> float:
    """Fraction of hypotheses whose tokens equal (one of) their reference(s) exactly; 0 for no data.

    >>> exact_match(["1999-01-02", "2000-01-01"], ["1999-01-02", "2000-01-02"])
    0.5
    """
    hyps = [_tokens(h, f"hypotheses[{i}]") for i, h in enumerate(hypotheses)]
    refs = _references(references, multi_reference, len(hyps))
    if not hyps:
        return 0.0
    return sum(any(h == r for r in group) for h, group in zip(hyps, refs)) / len(hyps)
