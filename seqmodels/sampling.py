"""Choosing the next token from the softmax: ancestral sampling, temperature, top-k, greedy.

``p = softmax(logits / temperature)``; tokens in ``banned`` (e.g. ``<UNK>`` with ``reject_unk``, and
``<PAD>``) get probability 0 and the rest is renormalised — the same distribution as drawing again
whenever a banned token comes up, without the loop. ``top_k`` keeps the k most probable tokens;
``greedy`` takes the argmax.
"""

from __future__ import annotations

import numpy as np

from .core.errors import ConfigError


def check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not (np.isfinite(t) and t > 0):
        raise ConfigError(f"temperature: expected a number > 0 (1.0 = the model's own distribution, lower = "
                          f"more conservative), got {temperature!r}; use greedy=True for argmax decoding")
    return t


class TokenSampler:
    """Chooses the next token of every row of (B, V) logits; the options are checked once, up front.

    ``temperature`` divides the logits; tokens in ``banned`` get probability 0; ``top_k`` keeps the k most
    probable; ``greedy`` takes the argmax (no random draw). Drawing is the inverse CDF: the first token
    whose cumulative weight exceeds ``u · total`` with ``u ~ U[0, 1)`` from ``rng`` — one uniform per
    row, and a token of weight 0 can never be chosen (``rng`` may be None for :meth:`weights` alone).
    """

    def __init__(self, rng: np.random.Generator | None, *, temperature: float = 1.0, top_k: int | None = None,
                 greedy: bool = False, banned=()):
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
            raise ConfigError(f"top_k: expected an integer >= 1 or None, got {top_k!r}")
        self.rng, self.greedy, self.top_k = rng, bool(greedy), top_k
        self.inv_t = 1.0 if greedy else 1.0 / check_temperature(temperature)
        self.banned = np.asarray(list(banned), dtype=np.intp)

    def weights(self, logits: np.ndarray) -> np.ndarray:
        """(B, V) float64 weights proportional to the probabilities (row maximum 1)."""
        z = np.array(logits, dtype=np.float64, ndmin=2)
        if self.inv_t != 1.0:
            z *= self.inv_t
        if self.banned.size:
            z[:, self.banned] = -np.inf
        if self.top_k is not None and self.top_k < z.shape[1]:
            kth = np.partition(z, -self.top_k, axis=1)[:, -self.top_k][:, None]
            z[z < kth] = -np.inf
        z -= z.max(axis=1, keepdims=True)
        return np.exp(z, out=z)

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        """(B,) token ids for (B, V) logits."""
        if self.greedy:
            z = np.array(logits, dtype=np.float64, ndmin=2)
            if self.banned.size:
                z[:, self.banned] = -np.inf
            return z.argmax(axis=1)
        cdf = self.weights(logits)
        np.cumsum(cdf, axis=1, out=cdf)
        if cdf.shape[0] == 1:                                   # one row (sampling one text): a scalar draw
            return np.array([cdf[0].searchsorted(self.rng.random() * cdf[0, -1], side="right")])
        u = self.rng.random((cdf.shape[0], 1))
        u *= cdf[:, -1:]
        return (cdf <= u).sum(axis=1)                           # first token whose cumulative weight > u


def next_token_distribution(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                            banned=()) -> np.ndarray:
    """(B, V) logits -> (B, V) float64 probabilities after temperature, bans and top-k."""
    p = TokenSampler(None, temperature=temperature, top_k=top_k, banned=banned).weights(logits)
    return p / p.sum(axis=1, keepdims=True)


def sample_next(logits: np.ndarray, rng: np.random.Generator, *, temperature: float = 1.0,
                top_k: int | None = None, greedy: bool = False, banned=()) -> np.ndarray:
    """One token per row of ``logits`` (B, V): drawn from the softmax, or the argmax when ``greedy``.

    For a loop of draws with the same options, build one :class:`TokenSampler`."""
    return TokenSampler(rng, temperature=temperature, top_k=top_k, greedy=greedy, banned=banned)(logits)
