"""Deep RNNs: layers stacked so that each reads the sequence of outputs of the one below.

    a[l]<t> = g(W_a[l] [a[l]<t-1>, a[l-1]<t>] + b_a[l]),     a[0]<t> = x<t>

Any mix of recurrent, bidirectional and per-step dense layers (a deep non-recurrent head); inverted
dropout between layers while training. Parameters appear as ``layers.<i>.<name>``; the state is a tuple
with one entry per layer (None for layers without state).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.functional import inverted_dropout
from ..core.errors import ConfigError, DTypeError, check_probability
from ..core.init import as_generator
from ..core.params import ParamDict
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
        (see :meth:`Recurrent.forward <seqmodels.layers.recurrent.Recurrent.forward>`)."""
        if state is not None and len(state) != len(self.layers):
            raise ConfigError(f"state: expected {len(self.layers)} entries (one per layer), got {len(state)}")
        h = x
        finals, caches, masks = [], [], []
        for i, layer in enumerate(self.layers):
            extra = {"embedding": embedding} if i == 0 and embedding is not None else {}
            h, fin, cache = layer.forward(h, lengths, None if state is None else state[i], **extra)
            finals.append(fin)
            caches.append(cache)
            mask = None
            if self.training and i < len(self.layers) - 1:
                h, mask = inverted_dropout(h, self.dropout, self.rng)
            masks.append(mask)
        return h, tuple(finals), (caches, masks)

    def backward(self, dout, cache, dstate=None):
        caches, masks = cache
        d = dout
        d0 = [None] * len(self.layers)
        for i in range(len(self.layers) - 1, -1, -1):
            if masks[i] is not None and d is not None:
                d = d * masks[i]
            d, d0[i] = self.layers[i].backward(d, caches[i], None if dstate is None else dstate[i])
        return d, tuple(d0)
