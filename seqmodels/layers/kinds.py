"""The named recurrent layers: :class:`RNN`, :class:`GRU` and :class:`LSTM` — a cell of
:mod:`seqmodels.cells` run by the one time loop of :class:`~seqmodels.layers.recurrent.Recurrent` — and
:func:`make_recurrent` to build one by name."""

from __future__ import annotations

import numpy as np

from ..cells.gru import GRUCell
from ..cells.lstm import LSTMCell
from ..cells.rnn import RNNCell
from ..core.errors import ConfigError, check_positive_int
from .recurrent import Recurrent

__all__ = ["RNN", "GRU", "LSTM", "RECURRENT_LAYERS", "make_recurrent"]


class RNN(Recurrent):
    """The basic RNN: ``a<t> = g(W_aa a<t-1> + W_ax x<t> + b_a)`` with g = tanh or ReLU.

    ``init="identity"`` with ``activation="relu"`` is the IRNN recipe (W_aa = I, zero bias).

    >>> import numpy as np, seqmodels as sm
    >>> rnn = sm.RNN(3, 5, seed=0)
    >>> out, a_T, cache = rnn.forward(np.ones((2, 4, 3), np.float32))
    >>> out.shape, a_T.shape, sorted(rnn.params)
    ((2, 4, 5), (2, 5), ['W_a', 'b_a'])
    """

    kind = "rnn"

    def __init__(self, input_size: int, hidden_size: int, activation: str = "tanh", *, init: str = "default",
                 init_scale: float = 1.0, dtype=np.float32, seed=None, reverse: bool = False):
        input_size = check_positive_int("input_size", input_size)
        hidden_size = check_positive_int("hidden_size", hidden_size)
        self.activation, self.init = activation, init
        super().__init__(RNNCell(input_size, hidden_size, activation), dtype=dtype, seed=seed, init=init,
                         init_scale=init_scale, reverse=reverse)
        self.init_scale = init_scale

    def config(self) -> dict:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size, activation=self.activation,
                    init=self.init, init_scale=self.init_scale, reverse=self.reverse)


class GRU(Recurrent):
    """The GRU of the notes (``variant="full"``), its simplified form, or PyTorch's ``reset_after``.

    ``update_bias`` initialises ``b_u`` (-1.0 by default: Γu starts near 0.27, so the cell keeps its memory
    c<t-1> from the start — the GRU's counterpart of the LSTM's forget-gate bias; 0.0 is PyTorch's start).

    >>> import numpy as np, seqmodels as sm
    >>> sorted(sm.GRU(3, 5, seed=0).params)
    ['W_c', 'W_r', 'W_u', 'b_c', 'b_r', 'b_u']
    """

    kind = "gru"

    def __init__(self, input_size: int, hidden_size: int, variant: str = "full", reset_after: bool = False, *,
                 update_bias: float = -1.0, init: str = "default", dtype=np.float32, seed=None,
                 reverse: bool = False):
        input_size = check_positive_int("input_size", input_size)
        hidden_size = check_positive_int("hidden_size", hidden_size)
        self.variant, self.reset_after, self.init = variant, reset_after, init
        self.update_bias = float(update_bias)
        super().__init__(GRUCell(input_size, hidden_size, variant, reset_after), dtype=dtype, seed=seed,
                         init=init, reverse=reverse)
        self.params["b_u"][...] = self.update_bias

    def config(self) -> dict:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size, variant=self.variant,
                    reset_after=self.reset_after, update_bias=self.update_bias, init=self.init,
                    reverse=self.reverse)


class LSTM(Recurrent):
    """The LSTM of the notes; ``peephole=True`` lets Γu, Γf, Γo see ``c<t-1>`` element-wise.

    ``forget_bias`` initialises ``b_f`` (1.0 by default, so the cell remembers from the start).

    >>> import numpy as np, seqmodels as sm
    >>> lstm = sm.LSTM(3, 5, seed=0)
    >>> out, (a_T, c_T), cache = lstm.forward(np.ones((2, 4, 3), np.float32), lengths=np.array([4, 2]))
    >>> bool(np.all(out[1, 2:] == 0)), np.allclose(a_T[1], out[1, 1])
    (True, True)
    """

    kind = "lstm"

    def __init__(self, input_size: int, hidden_size: int, peephole: bool = False, *, forget_bias: float = 1.0,
                 init: str = "default", dtype=np.float32, seed=None, reverse: bool = False):
        input_size = check_positive_int("input_size", input_size)
        hidden_size = check_positive_int("hidden_size", hidden_size)
        self.peephole, self.forget_bias, self.init = bool(peephole), float(forget_bias), init
        super().__init__(LSTMCell(input_size, hidden_size, peephole), dtype=dtype, seed=seed, init=init,
                         reverse=reverse)
        self.params["b_f"][...] = self.forget_bias

    def config(self) -> dict:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size, peephole=self.peephole,
                    forget_bias=self.forget_bias, init=self.init, reverse=self.reverse)


RECURRENT_LAYERS = {"rnn": RNN, "gru": GRU, "lstm": LSTM}


def make_recurrent(kind: str, input_size: int, hidden_size: int, **kwargs) -> Recurrent:
    """Build a recurrent layer by name: ``"rnn"``, ``"gru"`` or ``"lstm"``."""
    try:
        cls = RECURRENT_LAYERS[kind]
    except KeyError:
        options = ", ".join(repr(k) for k in RECURRENT_LAYERS)
        raise ConfigError(f"cell: expected one of {options}, got {kind!r}") from None
    return cls(input_size, hidden_size, **kwargs)
