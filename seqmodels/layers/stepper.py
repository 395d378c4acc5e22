"""Generation's inner loop: :class:`Stepper` runs a recurrent layer forward one step per call."""

from __future__ import annotations

import numpy as np

from ..core.errors import check_positive_int
from .recurrent import LSTMState, Recurrent, is_token_ids, step_buffers


class Stepper:
    """Runs a layer forward one step at a time over a fixed batch: generation's inner loop.

    Unlike :meth:`Recurrent.step`, it lays the weights out once (the cell's packed ``W_hᵀ`` and the
    gate-scaled input weights, as the layer's own time loop uses them), allocates its buffers once,
    reads token ids as rows of the input table ``W_x x + b`` (:meth:`Recurrent.input_table`;
    ``embedding`` gives each token's input vector, default one-hot), and runs each step as the cell's
    time loop over one step — the compiled loop when the accelerator is installed. The weights are those
    at construction. Each call returns the new state as views of its buffers, valid until the next call.

    >>> import numpy as np, seqmodels as sm
    >>> lstm = sm.LSTM(4, 3, seed=0)
    >>> step = Stepper(lstm, batch=2)
    >>> a, c = step(np.array([1, 2]))
    >>> bool(np.allclose(a, lstm.step(np.array([1, 2])).a))
    True
    """

    def __init__(self, layer: Recurrent, batch: int, state=None, *, embedding: np.ndarray | None = None):
        self.layer, self.cell, self.batch = layer, layer.cell, check_positive_int("batch", batch)
        self.packed = self.cell.pack(layer.W_h)
        W_xT, self.b = layer.input_weights()                             # the loop's halved sigmoid inputs
        self.W_x = np.ascontiguousarray(W_xT.T)
        self.embedding, self.table = embedding, None
        self.buf = step_buffers(layer, state, self.batch)
        self.buf.G = np.empty((1, self.batch, self.b.shape[0]), dtype=layer.dtype)
        self.sizes = np.array([self.batch], dtype=np.intp)
        self.states = [getattr(self.buf, name) for name in self.cell.state_names]

    def __call__(self, x) -> np.ndarray | LSTMState:
        """Advance one step: ``x`` is (B,) token ids or (B, D) input vectors."""
        z = self.buf.G[0]
        if is_token_ids(x):
            if self.table is None:
                self.table = self.layer.input_table(self.embedding, scaled=True)
            np.take(self.table, x, axis=0, out=z)
        elif self.batch == 1:
            np.matmul(self.W_x, np.asarray(x, dtype=z.dtype)[0], out=z[0])
            z += self.b
        else:
            np.matmul(np.asarray(x, dtype=z.dtype), self.W_x.T, out=z)
            z += self.b
        self.cell.forward_loop(self.buf, None, self.sizes, self.packed)
        for s in self.states:
            s[0] = s[1]
        return self.layer.join_state([s[0] for s in self.states])
