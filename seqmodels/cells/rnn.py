"""The basic RNN cell of the notes.

    a<t> = g(W_aa a<t-1> + W_ax x<t> + b_a)        g = tanh or ReLU

Fused layout: ``W = W_a = [W_aa | W_ax]`` (H, H + D), ``b = b_a`` (H,). The output layer
``ŷ<t> = g(W_ya a<t> + b_y)`` is a separate :class:`~seqmodels.layers.dense.Dense`.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import check_choice
from ..core import accel
from . import fast
from .base import Cell, packed_transpose, recur, zero_padded_rows

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
        z += recur(a_prev, W_h)                           # + W_aa a<t-1>
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

    def pack(self, W_h: np.ndarray, lazy: bool = False) -> tuple:
        return (packed_transpose(W_h, 0, lazy),)

    def forward_loop(self, buf, W_h: np.ndarray, sizes: np.ndarray, packed: tuple | None = None) -> None:
        (WhT,) = packed or self.packed_for(W_h, buf.G.dtype)
        if fast.run("rnn_forward", self, buf, WhT, sizes):
            return
        G = buf.G
        tmp = np.empty(G.shape[1:], G.dtype)
        for t in range(sizes.shape[0]):
            n = int(sizes[t])
            z = G[t, :n]
            np.matmul(buf.a[t, :n], WhT, out=tmp[:n])
            z += tmp[:n]                                  # z<t> = W_ax x<t> + b_a + W_aa a<t-1>
            if self.activation == "tanh":
                np.tanh(z, out=buf.a[t + 1, :n])
            else:
                np.maximum(z, 0.0, out=buf.a[t + 1, :n])

    def backward_loop(self, buf, W_h, sizes, carry, dout_t, dz) -> None:
        if fast.run("rnn_backward", self, buf, W_h, sizes, carry, dout_t, dz):
            return
        run = sizes.shape[0]
        a = buf.a[1:run + 1]
        if self.activation == "tanh":
            np.multiply(a, a, out=dz)
            np.subtract(1.0, dz, out=dz)                  # g'(z) = 1 - a², all steps at once
        else:
            np.greater(a, 0.0, out=dz)                    # g'(z) = [z > 0]  (written as 0/1)
        (da_all,) = carry
        for t in range(run - 1, -1, -1):
            n = int(sizes[t])
            da = da_all[:n]
            if dout_t is not None:
                da += dout_t[t, :n]
            d = dz[t, :n]
            d *= da                                       # dz = δa g'(z)
            np.matmul(d, W_h, out=da)                     # δa<t-1> = W_aaᵀ dz
        zero_padded_rows(dz, sizes)

    def recurrent_grads(self, buf, dz_all: np.ndarray, steps: int) -> None:
        H = self.hidden_size
        accel.gemm_add(self.dW[:, :H], dz_all.reshape(-1, H).T, buf.a[:steps].reshape(-1, H))   # Σ dz<t> a<t-1>ᵀ
