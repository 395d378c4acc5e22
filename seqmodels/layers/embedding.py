"""Embedding: the one-hot product ``E o<w>`` done as a row lookup ``E[w]``.

Multiplying a one-hot vector ``o<w>`` (V,) by the matrix ``E`` (D, V) picks out column w; storing
``E`` transposed as ``W_e`` (V, D) makes that a row lookup, and the gradient a scatter-add of the
upstream rows into the looked-up rows.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import DTypeError, ShapeError, check_positive_int
from ..core.init import as_generator
from ..core.params import ParamDict
from ..core.scatter import scatter_add_rows
from .base import Layer, check_lengths, resolve_dtype, time_mask


class Embedding(Layer):
    """Token ids ``(B, T)`` -> vectors ``(B, T, D)``; ``padding_id`` rows get no gradient.

    >>> import numpy as np, seqmodels as sm
    >>> emb = sm.Embedding(10, 4, seed=0)
    >>> bool(np.all(emb.forward(np.array([[3, 1]]))[0][0, 0] == emb.params["W_e"][3]))
    True
    """

    kind = "embedding"

    def __init__(self, vocab_size: int, dim: int, *, padding_id: int | None = None, scale: float = 0.1,
                 dtype=np.float32, seed=None):
        super().__init__()
        self.vocab_size = check_positive_int("vocab_size", vocab_size)
        self.dim = check_positive_int("dim", dim)
        self.padding_id = padding_id
        self.dtype = resolve_dtype(dtype)
        W = (scale * as_generator(seed).standard_normal((vocab_size, dim))).astype(self.dtype)
        if padding_id is not None:
            W[padding_id] = 0
        self.params = ParamDict({"W_e": W})
        self.grads = ParamDict({"W_e": np.zeros_like(W)})

    def config(self) -> dict:
        return dict(vocab_size=self.vocab_size, dim=self.dim, padding_id=self.padding_id)

    def check_ids(self, ids) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise DTypeError(f"ids: expected integer token ids, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = ids[(ids < 0) | (ids >= self.vocab_size)][0]
            raise ShapeError(f"ids: expected token ids in [0, {self.vocab_size}), got {int(bad)}")
        return ids

    def forward(self, ids, lengths=None, state=None):
        ids = self.check_ids(ids)
        out = self.params["W_e"][ids]
        mask = None
        if lengths is not None and ids.ndim == 2:
            mask = time_mask(check_lengths(lengths, ids.shape[0], ids.shape[1]), ids.shape[1])
            out *= mask[..., None]
        return out, None, (ids, mask)

    def backward(self, dout, cache, dstate=None):
        ids, mask = cache
        dout = np.asarray(dout, dtype=self.dtype)
        if dout.shape != ids.shape + (self.dim,):
            raise ShapeError(f"dout: expected shape {ids.shape + (self.dim,)}, got {dout.shape}")
        flat_ids = ids.reshape(-1)
        flat = dout.reshape(-1, self.dim)
        if mask is not None:
            keep = mask.reshape(-1)
            flat_ids, flat = flat_ids[keep], flat[keep]
        if self.padding_id is not None:
            keep = flat_ids != self.padding_id
            flat_ids, flat = flat_ids[keep], flat[keep]
        scatter_add_rows(self.grads["W_e"], flat_ids, flat)   # scatter-add: Σ over occurrences
        return None, None
