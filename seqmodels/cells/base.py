"""What a recurrent cell provides to the one time loop in :mod:`seqmodels.layers.recurrent`.

A cell owns one fused weight ``W`` of shape ``(G*H, H + D)`` — its G gate blocks stacked, each acting on
``[a<t-1>; x<t>]`` — and a fused bias ``b`` ``(G*H,)``; the notes' names (``W_u``, ``b_u``, ...) are views.
The loop computes ``W_x x<t> + b`` for every step in one GEMM into the gate buffer ``G`` and calls:

- ``step(t, n, buf, W_h)``: the rest of step t for the first ``n`` (still active) rows, reading the
  state at ``buf.<state>[t]`` and writing it to ``buf.<state>[t + 1]``;
- ``step_back(t, n, buf, W_h, dstate, dz)``: given the gradient w.r.t. the state after step t, write
  the gradient w.r.t. the pre-activations into ``dz`` (n, G*H) and return the gradient w.r.t. the state
  before it;
- ``recurrent_grads(buf, dz_all, steps)``: after the loop, the gradients of the recurrent weights
  (and of anything else that is not ``W_x`` or ``b``) from whole-sequence buffers, in one GEMM.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """σ(x) = (1 + tanh(x/2)) / 2 in place: stable for any x, no overflow warnings."""
    x *= 0.5
    np.tanh(x, out=x)
    x += 1.0
    x *= 0.5
    return x


def dsigmoid(s: np.ndarray) -> np.ndarray:
    """σ'(z) from s = σ(z): s (1 - s)."""
    return s * (1.0 - s)


def dtanh(t: np.ndarray) -> np.ndarray:
    """tanh'(z) from t = tanh(z): 1 - t²."""
    return 1.0 - t * t


class Cell:
    """Base of the cells: fused parameter layout and buffer allocation."""

    #: gate blocks in the fused matrix, top to bottom; sigmoid gates first, the tanh candidate last
    gates: tuple[str, ...] = ()
    #: names of the state components (``("a",)`` or ``("a", "c")``)
    state_names: tuple[str, ...] = ("a",)
    #: extra per-step buffers (T, B, H) besides the gates and states
    extra_buffers: tuple[str, ...] = ()

    def __init__(self, input_size: int, hidden_size: int):
        self.input_size = input_size
        self.hidden_size = hidden_size

    @property
    def num_gates(self) -> int:
        return len(self.gates)

    def extra_params(self) -> dict[str, tuple[int, ...]]:
        """Parameters besides the fused W and b (peepholes, reset-after bias): name -> shape."""
        return {}

    def bind(self, W: np.ndarray, b: np.ndarray, extra: dict[str, np.ndarray],
             dW: np.ndarray, db: np.ndarray, dextra: dict[str, np.ndarray]) -> None:
        """Remember the arrays the step functions read (params) and accumulate into (grads)."""
        self.W, self.b, self.P = W, b, extra
        self.dW, self.db, self.dP = dW, db, dextra

    def alloc(self, steps: int, batch: int, dtype) -> SimpleNamespace:
        """Zeroed buffers: gates G (T, B, G*H), states (T+1, B, H), extras (T, B, H)."""
        H = self.hidden_size
        buf = SimpleNamespace(G=np.zeros((steps, batch, self.num_gates * H), dtype=dtype))
        for name in self.state_names:
            setattr(buf, name, np.zeros((steps + 1, batch, H), dtype=dtype))
        for name in self.extra_buffers:
            setattr(buf, name, np.zeros((steps, batch, H), dtype=dtype))
        return buf

    def block(self, name: str) -> slice:
        """Rows of gate ``name`` in the fused matrix."""
        i = self.gates.index(name)
        H = self.hidden_size
        return slice(i * H, (i + 1) * H)
