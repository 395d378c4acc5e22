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


def next_token_distribution(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                            banned=()) -> np.ndarray:
    """(B, V) logits -> (B, V) float64 probabilities after temperature, bans and top-k."""
    z = np.asarray(logits, dtype=np.float64) / check_temperature(temperature)
    if len(banned):
        z[:, list(banned)] = -np.inf
    if top_k is not None:
        if not isinstance(top_k, int) or top_k < 1:
            raise ConfigError(f"top_k: expected an integer >= 1 or None, got {top_k!r}")
        if top_k < z.shape[1]:
            kth = np.partition(z, -top_k, axis=1)[:, -top_k][:, None]
            z[z < kth] = -np.inf
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return p


def sample_next(logits: np.ndarray, rng: np.random.Generator, *, temperature: float = 1.0,
                top_k: int | None = None, greedy: bool = False, banned=()) -> np.ndarray:
    """One token per row of ``logits`` (B, V): drawn from the softmax, or the argmax when ``greedy``."""
    if greedy:
        z = np.array(logits, dtype=np.float64)
        if len(banned):
            z[:, list(banned)] = -np.inf
        return z.argmax(axis=1)
    p = next_token_distribution(logits, temperature, top_k, banned)
    u = rng.random((p.shape[0], 1))
    ids = (np.cumsum(p, axis=1) < u).sum(axis=1)              # inverse-CDF draw, vectorised over rows
    last = p.shape[1] - 1 - np.argmax(p[:, ::-1] > 0, axis=1)   # guard against rounding at the top
    return np.minimum(ids, last)
