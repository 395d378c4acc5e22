"""The basic RNN cell of the notes.

    a<t> = g(W_aa a<t-1> + W_ax x<t> + b_a)        g = tanh or ReLU

Fused layout: ``W = W_a = [W_aa | W_ax]`` (H, H + D), ``b = b_a`` (H,). The output layer
``ŷ<t> = g(W_ya a<t> + b_y)`` is a separate :class:`~seqmodels.layers.dense.Dense`.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import check_choice
from .base import Cell

ACTIVATIONS = ("tanh", "relu")


class RNNCell(Cell):
    gates = ("a",)
    state_names = ("a",)

    def __init__(self, input_size: int, hidden_size: int, activation: str = "tanh"):
        super().__init__(input_size, hidden_size)
        check_choice("activation", activation, ACTIVATIONS)
        self.activation = activation

    def step(self, t: int, n: int, buf, W_h: np.ndarray) -> None:
        z = buf.G[t, :n]                                  # holds W_ax x<t> + b_a
        a_prev = buf.a[t, :n]
        z += a_prev @ W_h.T                               # + W_aa a<t-1>
        a = buf.a[t + 1, :n]
        if self.activation == "tanh":
            np.tanh(z, out=a)                             # a<t> = tanh(z<t>)
        else:
            np.maximum(z, 0.0, out=a)                     # a<t> = max(0, z<t>)

    def step_back(self, t: int, n: int, buf, W_h: np.ndarray, dstate, dz: np.ndarray):
        (da,) = dstate
        a = buf.a[t + 1, :n]
        if self.activation == "tanh":
            np.multiply(a, a, out=dz)                     # dz = da (1 - a²)
            np.subtract(1.0, dz, out=dz)
            dz *= da
        else:
            np.multiply(da, a > 0, out=dz)                # dz = da [z > 0]
        return (dz @ W_h,)                                # da<t-1> = W_aaᵀ dz

    def recurrent_grads(self, buf, dz_all: np.ndarray, steps: int) -> None:
        H = self.hidden_size
        self.dW[:, :H] += dz_all.reshape(-1, H).T @ buf.a[:steps].reshape(-1, H)   # Σ_t dz<t> a<t-1>ᵀ
