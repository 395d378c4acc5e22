"""Bidirectional RNNs: one layer reads left to right, a second reads each sequence right to left.

    a→<t> = forward layer over x<1..t>,   a←<t> = backward layer over x<t..Tx> (within each length)
    out<t> = [a→<t>; a←<t>]   (merge="concat", (B, T, 2H))   or   a→<t> + a←<t>   (merge="sum")

The state is ``BiState(forward, backward)``; the backward half's final state is its state after reading
the first token.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..core.errors import ConfigError, DTypeError, check_choice
from ..core.params import ParamDict
from .base import Layer
from .recurrent import Recurrent

MERGES = ("concat", "sum", "mean")


class BiState(NamedTuple):
    forward: object
    backward: object


class Bidirectional(Layer):
    """Wrap a recurrent layer so that it reads both directions.

    Args:
        layer: the forward-direction layer (any :class:`Recurrent`, i.e. RNN, GRU or LSTM).
        merge: ``"concat"`` (default), ``"sum"`` or ``"mean"``.
        backward_layer: the backward direction; by default a new layer of the same configuration with
            ``reverse=True``, initialised from ``seed``.

    >>> import numpy as np, seqmodels as sm
    >>> bi = sm.Bidirectional(sm.GRU(3, 4, seed=0), seed=1)
    >>> bi.forward(np.ones((2, 5, 3), np.float32))[0].shape
    (2, 5, 8)
    """

    kind = "bidirectional"

    def __init__(self, layer: Recurrent, merge: str = "concat", *, backward_layer: Recurrent | None = None,
                 seed=None):
        super().__init__()
        if not isinstance(layer, Recurrent):
            raise DTypeError(f"layer: expected a recurrent layer (RNN, GRU, LSTM), got {type(layer).__name__}")
        check_choice("merge", merge, MERGES)
        if layer.reverse:
            raise ConfigError("layer: the forward layer of Bidirectional must have reverse=False")
        if backward_layer is None:
            backward_layer = layer.make_reverse(seed=seed)
        elif not backward_layer.reverse:
            raise ConfigError("backward_layer: expected a layer with reverse=True")
        if (backward_layer.input_size, backward_layer.hidden_size) != (layer.input_size, layer.hidden_size):
            raise ConfigError("backward_layer: input and hidden sizes must match the forward layer")
        if type(backward_layer) is not type(layer) or backward_layer.dtype != layer.dtype:
            raise ConfigError(f"backward_layer: expected a {type(layer).__name__} of dtype {layer.dtype}, got a "
                              f"{type(backward_layer).__name__} of dtype {backward_layer.dtype}")
        self.fwd, self.bwd = layer, backward_layer
        self.merge = merge
        self.dtype = layer.dtype
        self.input_size = layer.input_size
        self.hidden_size = layer.hidden_size
        self.output_size = 2 * layer.hidden_size if merge == "concat" else layer.hidden_size
        self.params = ParamDict.merged({"forward": layer.params, "backward": backward_layer.params})
        self.grads = ParamDict.merged({"forward": layer.grads, "backward": backward_layer.grads})

    def children(self):
        return {"forward": self.fwd, "backward": self.bwd}

    def zero_state(self, batch: int) -> BiState:
        return BiState(self.fwd.zero_state(batch), self.bwd.zero_state(batch))

    def forward(self, x, lengths=None, state=None):
        s_f, s_b = (None, None) if state is None else state
        out_f, fin_f, cache_f = self.fwd.forward(x, lengths, s_f)
        out_b, fin_b, cache_b = self.bwd.forward(x, lengths, s_b)
        if self.merge == "concat":
            out = np.concatenate([out_f, out_b], axis=-1)
        else:
            out = out_f + out_b
            if self.merge == "mean":
                out *= 0.5
        return out, BiState(fin_f, fin_b), (cache_f, cache_b)

    def backward(self, dout, cache, dstate=None):
        cache_f, cache_b = cache
        ds_f, ds_b = (None, None) if dstate is None else dstate
        H = self.hidden_size
        if dout is None:
            d_f = d_b = None
        elif self.merge == "concat":
            d_f, d_b = dout[..., :H], dout[..., H:]
        else:
            d_f = d_b = dout * 0.5 if self.merge == "mean" else dout
        dx_f, d0_f = self.fwd.backward(d_f, cache_f, ds_f)
        dx_b, d0_b = self.bwd.backward(d_b, cache_b, ds_b)
        dx_f += dx_b
        return dx_f, BiState(d0_f, d0_b)
