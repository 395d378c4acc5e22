"""Counting (n-gram) language model: the baseline a recurrent language model must beat.

The model is the notes' product of conditional probabilities with a Markov window of ``n - 1`` tokens::

    log P(y<1>, ..., y<T>) = sum_t log P(y<t> | y<t-n+1>, ..., y<t-1>)

Every sequence is padded on the left with ``n - 1`` begin-of-sequence markers (an internal id that is
never a token and never predicted). A sequence-end token such as ``"<EOS>"`` is an ordinary token the
caller appends. Tokens are any hashable values (words or characters); those not in the vocabulary map
to ``unk_token`` (``"<UNK>"``), which is always in the vocabulary. V is the vocabulary size.

Smoothing (c = count, ctx = the last n-1 tokens, ctx' = ctx without its oldest token):

* ``"mle"``:        P(w | ctx) = c(ctx w) / c(ctx), the notes' counting model. Unseen n-grams get
  probability 0, so log-probabilities can be -inf and perplexity inf. A context never seen in training
  (0/0) backs off to its longest seen suffix (ultimately the unigram MLE) so the distribution still sums
  to 1.
* ``"add_k"``:      P(w | ctx) = (c(ctx w) + k) / (c(ctx) + k V)   (Lidstone; add-one is k = 1).
* ``"kneser_ney"``: interpolated Kneser-Ney with an absolute discount D per order m::

      P_m(w | ctx) = max(c_m(ctx w) - D_m, 0) / c_m(ctx) + D_m N1+(ctx .) / c_m(ctx) * P_{m-1}(w | ctx')
      P_0(w) = 1 / V

  c_n are raw counts; for m < n, c_m(ctx w) = N1+(. ctx w) is the continuation count (number of distinct
  tokens seen before ``ctx w``); c_m(ctx) = sum_w c_m(ctx w); N1+(ctx .) = number of distinct w with
  c_m(ctx w) > 0. An unseen context gives P_m = P_{m-1}. ``discount="auto"`` estimates
  D_m = n1 / (n1 + 2 n2) from the number of m-grams with (continuation) count 1 and 2, clipped to
  [0.01, 0.99] (0.75 when n1 + 2 n2 = 0). Every token, <UNK> included, has non-zero probability.

Counts live in sorted NumPy key arrays (context of length L: key = id(context minus its oldest token)
* (V + 1) + oldest token; n-gram: key = id(context) * V + w), so fitting, scoring and distributions are
vectorised: a whole corpus is scored with a few ``searchsorted`` calls per order.

Example:
    >>> lm = NGramLM(2, smoothing="mle").fit([["a", "b", "<EOS>"], ["a", "a", "<EOS>"]])
    >>> lm.prob("b", ["a"])
    0.3333333333333333
    >>> round(NGramLM(3).fit([list("abracadabra")]).perplexity("abra"), 4)
    1.4267
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from seqmodels._version import __version__
from seqmodels.core.errors import (
    CheckpointError,
    ConfigError,
    DTypeError,
    check_choice,
    check_positive_int,
)

__all__ = ["NGramLM", "LogProbResult"]

FORMAT_VERSION = 1
SMOOTHINGS = ("kneser_ney", "add_k", "mle")


class LogProbResult(NamedTuple):
    """``total``: natural-log probability of the sequence; ``tokens``: the tokens as scored (unseen ones
    replaced by the unk token); ``per_token``: (T,) float64 log P(y<t> | context)."""

    total: float
    tokens: list
    per_token: np.ndarray


class _Order(NamedTuple):
    """Tables of one order m: n-grams (context of length m-1, w) and per-context sums."""

    gram_keys: np.ndarray  # (G,) sorted, context_id * V + w
    counts: np.ndarray  # (G,) raw counts (mle, add_k) or KN counts (continuation counts below order n)
    total: np.ndarray  # (C,) c(ctx) = sum_w counts
    types: np.ndarray  # (C,) N1+(ctx .) = number of distinct w after ctx


def _positive_float(name: str, value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a positive number, got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name}: expected a finite number > 0, got {value!r}")
    return value


class NGramLM:
    """N-gram language model over sequences of hashable tokens (see the module docstring for formulas).

    Args:
        n: order (1 = unigram, 2 = bigram, ...); the context is the previous n-1 tokens.
        smoothing: ``"kneser_ney"`` (default), ``"add_k"`` or ``"mle"``.
        k: pseudo-count of add-k smoothing, > 0 (validated always, used only by ``"add_k"``).
        discount: Kneser-Ney absolute discount in (0, 1), or ``"auto"`` for n1 / (n1 + 2 n2) per order.
        unk_token: token that unseen tokens map to; always part of the vocabulary.
    """

    def __init__(self, n: int, smoothing: str = "kneser_ney", k: float = 1.0,
                 discount: float | str = 0.75, unk_token: Hashable = "<UNK>") -> None:
        self.n = check_positive_int("n", n)
        check_choice("smoothing", smoothing, SMOOTHINGS)
        self.smoothing = smoothing
        self.k = _positive_float("k", k)
        if isinstance(discount, str):
            if discount != "auto":
                raise ConfigError(f"discount: expected a number in (0, 1) or 'auto', got {discount!r}")
        else:
            d = _positive_float("discount", discount)
            if not d < 1.0:
                raise ConfigError(f"discount: expected a number in (0, 1) or 'auto', got {discount!r}")
            discount = d
        self.discount = discount
        self.unk_token = unk_token
        self._vocab: list | None = None

    # ------------------------------------------------------------------ vocabulary and encoding
    @property
    def vocab(self) -> list:
        """The vocabulary (predictable tokens, <UNK> included) in id order."""
        return list(self._fitted()._vocab)

    @property
    def discounts(self) -> list[float]:
        """Kneser-Ney discount D_m for m = 1..n (also set, unused, for the other smoothings)."""
        return list(self._fitted()._discounts)

    def _fitted(self) -> NGramLM:
        if self._vocab is None:
            raise ConfigError("NGramLM: the model is not fitted; call fit(sequences) or from_dict() first")
        return self

    def _set_vocab(self, tokens: list) -> None:
        self._vocab = tokens
        self._index = {t: i for i, t in enumerate(tokens)}
        self._unk = self._index[self.unk_token]
        self._V = len(tokens)

    def _encode(self, seq: Sequence[Hashable], name: str) -> list[int]:
        if isinstance(seq, (bytes, bytearray)) or not isinstance(seq, (Sequence, np.ndarray)):
            raise DTypeError(f"{name}: expected a sequence of tokens, got {type(seq).__name__}")
        get, unk = self._index.get, self._unk
        try:
            return [get(t, unk) for t in seq]
        except TypeError as exc:
            raise DTypeError(f"{name}: tokens must be hashable ({exc})") from None

    def _grams(self, encoded: list[list[int]]) -> np.ndarray:
        """(M, n) int64 windows [context (n-1, BOS = V) | target] for every token of every sequence."""
        n, bos = self.n, self._V
        stream, targets, offset = [], [], 0
        for ids in encoded:
            stream.extend([bos] * (n - 1))
            stream.extend(ids)
            targets.append(np.arange(offset + n - 1, offset + n - 1 + len(ids)))
            offset += n - 1 + len(ids)
        s = np.asarray(stream, dtype=np.int64)
        pos = np.concatenate(targets) if targets else np.zeros(0, np.int64)
        return s[pos[:, None] + np.arange(-(n - 1), 1)] if len(pos) else np.zeros((0, n), np.int64)

    # ------------------------------------------------------------------ fitting
    def fit(self, sequences: Iterable[Sequence[Hashable]], vocab: Sequence[Hashable] | None = None) -> NGramLM:
        """Count the n-grams of ``sequences`` (replacing earlier counts) and return ``self``.

        ``vocab`` fixes the token list (training tokens outside it count as <UNK>); by default the
        vocabulary is every token seen plus <UNK> (sorted when the tokens are sortable, <UNK> first).
        """
        if isinstance(sequences, str):
            raise DTypeError("sequences: expected an iterable of sequences, got one str; "
                             "wrap it as [text] to fit one character sequence")
        seqs = list(sequences)
        if vocab is None:
            seen = set()
            for i, s in enumerate(seqs):
                try:
                    seen.update(s)
                except TypeError as exc:
                    raise DTypeError(f"sequences[{i}]: expected a sequence of hashable tokens ({exc})") from None
            seen.discard(self.unk_token)
            try:
                rest = sorted(seen)
            except TypeError:  # mixed token types: first-occurrence order
                rest = list(dict.fromkeys(t for s in seqs for t in s if t in seen))
            tokens = [self.unk_token, *rest]
        else:
            tokens = list(vocab)
            if len(set(tokens)) != len(tokens):
                raise ConfigError(f"vocab: expected distinct tokens, got {len(tokens) - len(set(tokens))} duplicates")
            if self.unk_token not in tokens:
                tokens = [self.unk_token, *tokens]
        self._set_vocab(tokens)
        grams = self._grams([self._encode(s, f"sequences[{i}]") for i, s in enumerate(seqs)])
        self._build(grams, np.ones(len(grams), np.int64))
        return self

    def _build(self, grams: np.ndarray, weights: np.ndarray) -> None:
        n, V = self.n, self._V
        B = V + 1  # context tokens include the BOS id V
        if len(grams) * B >= 2**62:
            raise ConfigError(f"NGramLM: {len(grams)} n-grams x vocabulary {V} overflow the int64 keys")
        cid = np.zeros(len(grams), np.int64)
        ctx_ids, self._ctx_keys = [cid], [np.zeros(1, np.int64)]
        for L in range(1, n):  # contexts of length L, grown leftwards from those of length L-1
            keys, cid = np.unique(cid * B + grams[:, n - 1 - L], return_inverse=True)
            self._ctx_keys.append(keys)
            ctx_ids.append(cid.reshape(-1))
        raw = []
        for m in range(1, n + 1):
            keys, inv = np.unique(ctx_ids[m - 1] * V + grams[:, n - 1], return_inverse=True)
            raw.append((keys, np.bincount(inv.reshape(-1), weights=weights, minlength=len(keys)).astype(np.int64)))
        self._orders, self._discounts = [], []
        for m in range(1, n + 1):
            keys, counts = raw[m - 1]
            if self.smoothing == "kneser_ney" and m < n:  # continuation count N1+(. ctx w)
                up = raw[m][0]  # distinct (m+1)-grams; drop their oldest token
                suffix = (self._ctx_keys[m][up // V] // B) * V + up % V
                sk, sc = np.unique(suffix, return_counts=True)
                counts = np.zeros(len(keys), np.int64)
                counts[np.searchsorted(keys, sk)] = sc
            n_ctx = len(self._ctx_keys[m - 1])
            owner = keys // V
            total = np.bincount(owner, weights=counts, minlength=max(n_ctx, 1))
            types = np.bincount(owner, minlength=max(n_ctx, 1)).astype(np.float64)  # every stored count is > 0
            self._orders.append(_Order(keys, counts, total, types))
            self._discounts.append(self._estimate_discount(counts))

    def _estimate_discount(self, counts: np.ndarray) -> float:
        if self.discount != "auto":
            return float(self.discount)
        n1, n2 = int(np.sum(counts == 1)), int(np.sum(counts == 2))
        return 0.75 if n1 + 2 * n2 == 0 else float(np.clip(n1 / (n1 + 2 * n2), 0.01, 0.99))

    # ------------------------------------------------------------------ scoring
    def _context_ids(self, grams: np.ndarray) -> list[np.ndarray]:
        """Id of each row's context of length L = 0..n-1 (-1 where unseen in training)."""
        B, M = self._V + 1, len(grams)
        cur = np.zeros(M, np.int64)
        out = [cur]
        for L in range(1, self.n):
            keys = self._ctx_keys[L]
            key = cur * B + grams[:, self.n - 1 - L]
            idx = np.minimum(np.searchsorted(keys, key), max(len(keys) - 1, 0))
            found = (cur >= 0) & (keys[idx] == key) if len(keys) else np.zeros(M, bool)
            cur = np.where(found, idx, -1)
            out.append(cur)
        return out

    def _lookup(self, order: _Order, ctx: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(count(ctx w), c(ctx), N1+(ctx .)) per row; zeros where the context is unseen."""
        seen = ctx >= 0
        c0 = np.where(seen, ctx, 0)
        key = c0 * self._V + w
        idx = np.minimum(np.searchsorted(order.gram_keys, key), max(len(order.gram_keys) - 1, 0))
        hit = seen & (order.gram_keys[idx] == key) if len(order.gram_keys) else np.zeros(len(w), bool)
        count = np.where(hit, order.counts[idx] if len(order.counts) else 0, 0)
        return count, np.where(seen, order.total[c0], 0.0), np.where(seen, order.types[c0], 0.0)

    def _probs(self, grams: np.ndarray) -> np.ndarray:
        """P(target | context) for each row of (M, n) id windows, float64."""
        w, V = grams[:, -1], self._V
        cids = self._context_ids(grams)
        p = np.full(len(grams), 1.0 / V)
        if self.smoothing == "add_k":
            c, tot, _ = self._lookup(self._orders[-1], cids[-1], w)
            return (c + self.k) / (tot + self.k * V)
        for m, (order, D) in enumerate(zip(self._orders, self._discounts), start=1):
            c, tot, types = self._lookup(order, cids[m - 1], w)
            safe = np.where(tot > 0, tot, 1.0)
            if self.smoothing == "mle":
                p = np.where(tot > 0, c / safe, p)
            else:
                p = np.where(tot > 0, (np.maximum(c - D, 0.0) + D * types * p) / safe, p)
        return p

    def _context_row(self, context: Sequence[Hashable]) -> np.ndarray:
        ids = self._encode(context, "context")[-(self.n - 1):] if self.n > 1 else []
        row = np.full((1, self.n), self._V, np.int64)  # BOS-padded when shorter than n-1
        if ids:
            row[0, self.n - 1 - len(ids):self.n - 1] = ids
        row[0, -1] = 0
        return row

    def prob(self, token: Hashable, context: Sequence[Hashable] = ()) -> float:
        """P(token | context): the last n-1 tokens of ``context``; a shorter one is a sequence start."""
        row = self._fitted()._context_row(context)
        row[0, -1] = self._index.get(token, self._unk)
        return float(self._probs(row)[0])

    def log_prob(self, sequence: Sequence[Hashable]) -> LogProbResult:
        """log P(y<1..T>) = sum_t log P(y<t> | previous n-1 tokens), natural log; -inf under mle if any
        n-gram is unseen."""
        ids = self._fitted()._encode(sequence, "sequence")
        with np.errstate(divide="ignore"):
            per = np.log(self._probs(self._grams([ids])))
        return LogProbResult(float(per.sum()), [self._vocab[i] for i in ids], per)

    def perplexity(self, sequences: Iterable[Sequence[Hashable]] | str) -> float:
        """exp(-sum of log P / number of predicted tokens) over all tokens of all sequences.

        ``sequences`` is an iterable of sequences; a single ``str`` counts as one character sequence
        (for one word sequence pass ``[tokens]``). Under ``"mle"`` an unseen n-gram gives ``inf``.
        """
        self._fitted()
        seqs = [sequences] if isinstance(sequences, str) else list(sequences)
        grams = self._grams([self._encode(s, f"sequences[{i}]") for i, s in enumerate(seqs)])
        if len(grams) == 0:
            raise ConfigError("sequences: expected at least one token to score, got none")
        with np.errstate(divide="ignore"):
            return float(np.exp(-np.mean(np.log(self._probs(grams)))))

    # ------------------------------------------------------------------ distributions and sampling
    def _distribution_ids(self, row: np.ndarray) -> np.ndarray:
        V = self._V
        cids = [int(c[0]) for c in self._context_ids(row)]
        p = np.full(V, 1.0 / V)
        orders = list(enumerate(zip(self._orders, self._discounts), start=1))
        if self.smoothing == "add_k":
            orders = orders[-1:]
        for m, (order, D) in orders:
            ctx = cids[m - 1]
            tot = order.total[ctx] if ctx >= 0 else 0.0
            lo, hi = (np.searchsorted(order.gram_keys, [ctx * V, (ctx + 1) * V]) if ctx >= 0 else (0, 0))
            words, c = order.gram_keys[lo:hi] - ctx * V, order.counts[lo:hi]
            if self.smoothing == "add_k":
                p = np.full(V, self.k)
                p[words] += c
                p /= tot + self.k * V
            elif tot > 0 and self.smoothing == "mle":
                p = np.zeros(V)
                p[words] = c / tot
            elif tot > 0:
                p = p * (D * order.types[ctx] / tot)
                p[words] += np.maximum(c - D, 0.0) / tot
        return p

    def distribution(self, context: Sequence[Hashable] = ()) -> tuple[list, np.ndarray]:
        """Next-token distribution after ``context``: (vocabulary tokens, (V,) float64 probabilities)."""
        return self.vocab, self._distribution_ids(self._fitted()._context_row(context))

    def sample(self, max_len: int, seed: int | np.random.Generator | None = None,
               prime: Sequence[Hashable] | None = None, stop_token: Hashable | None = "<EOS>", temperature: float = 1.0, reject_unk: bool = True,
               num: int = 1, include_stop: bool = False) -> list[list]:
        """Draw ``num`` sequences by ancestral sampling from the smoothed distribution.

        Each sample continues ``prime`` (not repeated in the output; default: a sequence start) until
        ``stop_token`` is drawn or ``max_len`` tokens were generated. The stop token is left out of the
        output unless ``include_stop`` (it then counts towards ``max_len``). ``temperature`` rescales
        log-probabilities (p ** (1 / temperature), renormalised); ``reject_unk`` removes <UNK> unless it
        is the only token with non-zero probability. ``seed``: an int or an ``np.random.Generator``.
        """
        self._fitted()
        max_len = check_positive_int("max_len", max_len, allow_zero=True)
        num = check_positive_int("num", num)
        inv_t = 1.0 / _positive_float("temperature", temperature)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        stop = self._index.get(stop_token, -1) if stop_token is not None else -1
        start = self._encode(prime, "prime") if prime is not None else []
        cache: dict[tuple, np.ndarray] = {}
        out = []
        for _ in range(num):
            ctx = [self._V] * (self.n - 1) + start
            sample: list = []
            while len(sample) < max_len:
                key = tuple(ctx[len(ctx) - self.n + 1:]) if self.n > 1 else ()
                cdf = cache.get(key)
                if cdf is None:
                    cdf = cache[key] = self._sampling_cdf(np.array([[*key, 0]], np.int64), inv_t, reject_unk)
                i = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), self._V - 1)
                if i == stop and not include_stop:
                    break
                sample.append(self._vocab[i])
                ctx.append(i)
                if i == stop:
                    break
            out.append(sample)
        return out

    def _sampling_cdf(self, row: np.ndarray, inv_t: float, reject_unk: bool) -> np.ndarray:
        p = self._distribution_ids(row)
        if inv_t != 1.0:
            with np.errstate(divide="ignore"):
                logp = np.log(p) * inv_t
            p = np.exp(logp - logp.max())
        if reject_unk and p.sum() > p[self._unk]:
            p = p.copy()
            p[self._unk] = 0.0
        return np.cumsum(p)

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict:
        """JSON-able state: config, vocabulary and the order-n counts (BOS encoded as -1). Tokens must be
        JSON values (str, int, float, bool, None) to survive ``json.dumps``."""
        self._fitted()
        grams = self._top_grams()
        counts = self._orders[-1].counts  # order n keeps raw counts under every smoothing
        return {
            "format_version": FORMAT_VERSION, "library_version": __version__, "kind": "ngram",
            "config": {"n": self.n, "smoothing": self.smoothing, "k": self.k, "discount": self.discount,
                       "unk_token": self.unk_token},
            "vocab": list(self._vocab),
            "ngrams": np.where(grams == self._V, -1, grams).tolist(),
            "counts": counts.tolist(),
        }

    def _top_grams(self) -> np.ndarray:
        """(G, n) ids of the distinct order-n n-grams, rebuilt from the key tables."""
        n, V, B = self.n, self._V, self._V + 1
        keys = self._orders[-1].gram_keys
        grams = np.zeros((len(keys), n), np.int64)
        grams[:, -1] = keys % V
        cid = keys // V
        for L in range(n - 1, 0, -1):  # context of length L: key = parent * B + oldest token
            k = self._ctx_keys[L][cid]
            grams[:, n - 1 - L] = k % B
            cid = k // B
        return grams

    @classmethod
    def from_dict(cls, state: dict) -> NGramLM:
        """Rebuild a model saved with :meth:`to_dict` (checks format and shapes, naming the key)."""
        try:
            if state["format_version"] != FORMAT_VERSION or state["kind"] != "ngram":
                raise CheckpointError(f"format_version/kind: expected {FORMAT_VERSION}/'ngram', "
                                      f"got {state['format_version']!r}/{state['kind']!r}")
            lm = cls(**state["config"])
            vocab, grams, counts = state["vocab"], state["ngrams"], state["counts"]
        except KeyError as exc:
            raise CheckpointError(f"NGramLM.from_dict: missing key {exc}") from None
        except TypeError as exc:
            raise CheckpointError(f"config: {exc}") from None
        lm._set_vocab(list(vocab))
        g = np.asarray(grams, dtype=np.int64).reshape(-1, lm.n)
        c = np.asarray(counts, dtype=np.int64)
        if len(g) != len(c) or (c < 1).any():
            raise CheckpointError(f"counts: expected {len(g)} positive counts, got {len(c)} (min {c.min(initial=1)})")
        if ((g < -1) | (g >= lm._V)).any() or (g[:, -1] < 0).any():
            raise CheckpointError(f"ngrams: expected ids in [-1, {lm._V}) (target >= 0)")
        lm._build(np.where(g == -1, lm._V, g), c)
        return lm

    def __repr__(self) -> str:
        fitted = f", vocab_size={self._V}" if self._vocab is not None else ", unfitted"
        return f"NGramLM(n={self.n}, smoothing={self.smoothing!r}, k={self.k}, discount={self.discount!r}{fitted})"
