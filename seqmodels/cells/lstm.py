"""The LSTM cell of the notes, with optional peephole connections.

    Γu  = σ(W_u [a<t-1>, x<t>] + b_u  (+ p_u * c<t-1>))     update gate
    Γf  = σ(W_f [a<t-1>, x<t>] + b_f  (+ p_f * c<t-1>))     forget gate
    Γo  = σ(W_o [a<t-1>, x<t>] + b_o  (+ p_o * c<t-1>))     output gate
    c~  = tanh(W_c [a<t-1>, x<t>] + b_c)                     candidate
    c<t> = Γu * c~<t> + Γf * c<t-1>
    a<t> = Γo * tanh(c<t>)

Fused layout: ``W = [W_u; W_f; W_o; W_c]`` (4H, H + D) so the three sigmoid gates are one contiguous
block. PyTorch's rows are ``i, f, g, o`` = ``u, f, c, o`` (see :mod:`seqmodels.interop`).
Peepholes ``p_u, p_f, p_o`` (H,) act element-wise on ``c<t-1>`` for all three gates, as in the notes.
"""

from __future__ import annotations

import numpy as np

from .base import Cell, sigmoid_


class LSTMCell(Cell):
    gates = ("u", "f", "o", "c")
    state_names = ("a", "c")
    extra_buffers = ("tc",)                                   # tanh(c<t>)

    def __init__(self, input_size: int, hidden_size: int, peephole: bool = False):
        super().__init__(input_size, hidden_size)
        self.peephole = bool(peephole)

    def extra_params(self):
        H = self.hidden_size
        return {"p_u": (H,), "p_f": (H,), "p_o": (H,)} if self.peephole else {}

    def step(self, t: int, n: int, buf, W_h: np.ndarray) -> None:
        H = self.hidden_size
        z = buf.G[t, :n]                                      # holds W_x x<t> + b, all four gates
        a_prev, c_prev = buf.a[t, :n], buf.c[t, :n]
        z += a_prev @ W_h.T                                   # + W_a a<t-1>
        if self.peephole:
            z[:, 0:H] += self.P["p_u"] * c_prev
            z[:, H:2 * H] += self.P["p_f"] * c_prev
            z[:, 2 * H:3 * H] += self.P["p_o"] * c_prev
        sigmoid_(z[:, :3 * H])                                # Γu, Γf, Γo
        np.tanh(z[:, 3 * H:], out=z[:, 3 * H:])               # c~<t>
        u, f, o, cand = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
        c = buf.c[t + 1, :n]
        np.multiply(u, cand, out=c)                           # c<t> = Γu * c~<t>
        c += f * c_prev                                       #        + Γf * c<t-1>
        tc = buf.tc[t, :n]
        np.tanh(c, out=tc)
        np.multiply(o, tc, out=buf.a[t + 1, :n])              # a<t> = Γo * tanh(c<t>)

    def step_back(self, t: int, n: int, buf, W_h: np.ndarray, dstate, dz: np.ndarray):
        H = self.hidden_size
        da, dc = dstate
        g = buf.G[t, :n]
        u, f, o, cand = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
        c_prev, tc = buf.c[t, :n], buf.tc[t, :n]
        dz_u, dz_f, dz_o, dz_c = dz[:, :H], dz[:, H:2 * H], dz[:, 2 * H:3 * H], dz[:, 3 * H:]
        dc = dc + da * o * (1.0 - tc * tc)                    # through a<t> = Γo tanh(c<t>)
        np.multiply(da, tc, out=dz_o)                         # dΓo
        np.multiply(dc, cand, out=dz_u)                       # dΓu = dc c~
        np.multiply(dc, c_prev, out=dz_f)                     # dΓf = dc c<t-1>
        np.multiply(dc, u, out=dz_c)                          # dc~ = dc Γu
        dzs = dz[:, :3 * H]
        dzs *= g[:, :3 * H] * (1.0 - g[:, :3 * H])            # through σ
        dz_c *= 1.0 - cand * cand                             # through tanh
        dc_prev = dc * f                                      # dc<t-1> = dc Γf
        if self.peephole:
            dc_prev += self.P["p_u"] * dz_u + self.P["p_f"] * dz_f + self.P["p_o"] * dz_o
        return dz @ W_h, dc_prev                              # da<t-1> = W_aᵀ dz

    def recurrent_grads(self, buf, dz_all: np.ndarray, steps: int) -> None:
        H = self.hidden_size
        flat = dz_all.reshape(-1, 4 * H)
        self.dW[:, :H] += flat.T @ buf.a[:steps].reshape(-1, H)        # Σ_t dz<t> a<t-1>ᵀ
        if self.peephole:
            c_prev = buf.c[:steps].reshape(-1, H)
            for name, rows in (("p_u", slice(0, H)), ("p_f", slice(H, 2 * H)), ("p_o", slice(2 * H, 3 * H))):
                self.dP[name] += np.einsum("nh,nh->h", flat[:, rows], c_prev)
