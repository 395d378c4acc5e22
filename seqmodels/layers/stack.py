"""Deep RNNs: layers stacked so that each reads the sequence of outputs of the one below.

    a[l]<t> = g(W_a[l] [a[l]<t-1>, a[l-1]<t>] + b_a[l]),     a[0]<t> = x<t>

Any mix of recurrent, bidirectional and per-step dense layers (a deep non-recurrent head); inverted
dropout between layers while training. Parameters appear as ``layers.<i>.<name>``; the state is a tuple
with one entry per layer (None for layers without state).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.functional import dropout_mask, inverted_dropout
from ..core.errors import ConfigError, DTypeError, check_probability
from ..core.init import as_generator
from ..core.params import ParamDict
from . import pipeline
from .base import Layer


def _output_size(layer) -> int | None:
    for attr in ("output_size", "hidden_size", "out_features", "dim"):
        if hasattr(layer, attr):
            return getattr(layer, attr)
    return None


def _input_size(layer) -> int | None:
    for attr in ("input_size", "in_features"):
        if hasattr(layer, attr):
            return getattr(layer, attr)
    return None


class Stack(Layer):
    """Layers applied in sequence with dropout between them.

    >>> import numpy as np, seqmodels as sm
    >>> deep = sm.Stack([sm.LSTM(3, 8, seed=0), sm.GRU(8, 8, seed=1), sm.Dense(8, 2)])
    >>> out, states, cache = deep.forward(np.ones((2, 5, 3), np.float32))
    >>> out.shape, len(states), sorted(deep.params)[:2]
    ((2, 5, 2), 3, ['layers.0.W_c', 'layers.0.W_f'])
    """

    kind = "stack"

    def __init__(self, layers: Sequence[Layer], dropout: float = 0.0, *, seed=None):
        super().__init__()
        layers = list(layers)
        if not layers:
            raise ConfigError("layers: expected at least one layer, got an empty list")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise DTypeError(f"layers[{i}]: expected a Layer, got {type(layer).__name__}")
        for i in range(1, len(layers)):
            out_prev, in_next = _output_size(layers[i - 1]), _input_size(layers[i])
            if out_prev is not None and in_next is not None and out_prev != in_next:
                raise ConfigError(f"layers[{i}]: expects {in_next} input features but layers[{i - 1}] "
                                  f"produces {out_prev}")
        self.layers = layers
        self.dropout = check_probability("dropout", dropout)
        self.rng = as_generator(seed)
        self.dtype = layers[0].dtype
        self.input_size = _input_size(layers[0])
        self.output_size = _output_size(layers[-1])
        self.params = ParamDict.merged({f"layers.{i}": l.params for i, l in enumerate(layers)})
        self.grads = ParamDict.merged({f"layers.{i}": l.grads for i, l in enumerate(layers)})

    def children(self):
        return {f"layers.{i}": l for i, l in enumerate(self.layers)}

    def __len__(self) -> int:
        return len(self.layers)

    def zero_state(self, batch: int) -> tuple:
        return tuple(l.zero_state(batch) if hasattr(l, "zero_state") else None for l in self.layers)

    def forward(self, x, lengths=None, state=None, *, embedding=None):
        """``embedding`` (V, D): ``x`` are ids of its rows, folded into the first layer's input product
        (see :meth:`Recurrent.forward <seqmodels.layers.recurrent.Recurrent.forward>`).

        Consecutive forward-reading recurrent layers hand their outputs over as the loops lay them out
        (sorted rows, time-major: no transposing copies between them, and their gradients likewise), and
        with :mod:`seqmodels.layers.pipeline` switched on they run side by side on the cores, a chunk of
        time at a time; the results are those of a layer-by-layer walk.
        """
        if state is not None and len(state) != len(self.layers):
            raise ConfigError(f"state: expected {len(self.layers)} entries (one per layer), got {len(state)}")
        n = len(self.layers)
        states = [None] * n if state is None else list(state)
        drop = self.training and self.dropout > 0
        h = x
        finals, caches, masks, groups = [None] * n, [None] * n, [None] * n, []
        i = 0
        while i < n:
            j = self._group_end(i)
            threads = pipeline.threads_for(self.layers[i:j], np.shape(h)[1]) if j - i > 1 else 1
            extra = {"embedding": embedding} if i == 0 and embedding is not None else {}
            if j - i > 1:
                inner = [dropout_mask(np.shape(h)[:2] + (self.layers[l].hidden_size,), self.dropout, self.rng,
                                      self.dtype) if drop else None for l in range(i, j - 1)]
                h, fins, cs, tmasks = pipeline.forward(self.layers[i:j], h, lengths, states[i:j],
                                                       extra.get("embedding"), inner, threads)
                finals[i:j], caches[i:j], masks[i:j - 1] = fins, cs, inner    # (masks: for a layer-wise walk)
                groups.append((i, j, threads, tmasks))
            else:
                h, finals[i], caches[i] = self.layers[i].forward(h, lengths, states[i], **extra)
                j = i + 1
            if drop and j < n:
                h, masks[j - 1] = inverted_dropout(h, self.dropout, self.rng)
            i = j
        return h, tuple(finals), (caches, masks, groups)

    def _group_end(self, i: int) -> int:
        """End of the run of pipeline-eligible layers that starts at layer i (i + 1 when there is none)."""
        j = i
        while j < len(self.layers) and pipeline.eligible(self.layers[j]):
            j += 1
        return max(j, i + 1)

    def backward(self, dout, cache, dstate=None):
        caches, masks, groups = cache
        ends = {j - 1: (i, j, threads, tmasks) for i, j, threads, tmasks in groups}
        dstates = [None] * len(self.layers) if dstate is None else list(dstate)
        d = dout
        d0 = [None] * len(self.layers)
        i = len(self.layers) - 1
        while i >= 0:
            if masks[i] is not None and d is not None:
                d = d * masks[i]
            if i in ends:
                lo, hi, threads, tmasks = ends[i]
                d, d0[lo:hi] = pipeline.backward(self.layers[lo:hi], caches[lo:hi], d, dstates[lo:hi], tmasks,
                                                 threads)
                i = lo - 1
            else:
                d, d0[i] = self.layers[i].backward(d, caches[i], dstates[i])
                i -= 1
        return d, tuple(d0)
