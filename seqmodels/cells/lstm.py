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

Backward, with ``δa``/``δc`` the gradients w.r.t. ``a<t>``/``c<t>`` (carried plus direct)::

    δc   += δa Γo (1 - tanh²c<t>)
    dzΓo  = δa tanh(c<t>) Γo(1-Γo)        dzΓu = δc c~ Γu(1-Γu)
    dzΓf  = δc c<t-1> Γf(1-Γf)            dzc~ = δc Γu (1 - c~²)
    δa<t-1> = W_hᵀ dz,   δc<t-1> = δc Γf (+ p_u dzΓu + p_f dzΓf + p_o dzΓo)

The loops compute the factors that do not depend on ``δ`` for all steps at once before the backward
loop, so a step is a few multiplications and one GEMM.
"""

from __future__ import annotations

import numpy as np

from ..core import accel
from . import fast
from .base import Cell, chunks_backwards, packed_transpose, recur, sigmoid_, zero_padded_rows


class LSTMCell(Cell):
    gates = ("u", "f", "o", "c")
    state_names = ("a", "c")
    extra_buffers = ("tc",)                                   # tanh(c<t>)
    sigmoid_gates = 3

    def __init__(self, input_size: int, hidden_size: int, peephole: bool = False):
        super().__init__(input_size, hidden_size)
        self.peephole = bool(peephole)

    def extra_params(self):
        H = self.hidden_size
        return {"p_u": (H,), "p_f": (H,), "p_o": (H,)} if self.peephole else {}

    def peepholes(self, dtype) -> np.ndarray:
        """(3, H) rows p_u, p_f, p_o (zeros without peepholes)."""
        if not self.peephole:
            return np.zeros((3, self.hidden_size), dtype=dtype)
        return np.stack([self.P["p_u"], self.P["p_f"], self.P["p_o"]]).astype(dtype, copy=False)

    # ------------------------------------------------------------------ one step (the equations)
    def step(self, t: int, n: int, buf, W_h: np.ndarray) -> None:
        H = self.hidden_size
        z = buf.G[t, :n]                                      # holds W_x x<t> + b, all four gates
        a_prev, c_prev = buf.a[t, :n], buf.c[t, :n]
        z += recur(a_prev, W_h)                               # + W_a a<t-1>
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

    # ------------------------------------------------------------------ all steps
    def pack(self, W_h: np.ndarray, lazy: bool = False) -> tuple:
        return (packed_transpose(W_h, 3 * self.hidden_size, lazy),)   # a @ WhT: W_h a, sigmoid rows halved

    def forward_loop(self, buf, W_h: np.ndarray, sizes: np.ndarray, packed: tuple | None = None) -> None:
        H = self.hidden_size
        (WhT,) = packed or self.packed_for(W_h, buf.G.dtype)
        if fast.run("lstm_forward", self, buf, WhT, sizes):
            return
        G = buf.G                                             # W_x x + b, sigmoid gates halved
        B = G.shape[1]
        tmp = np.empty((B, 4 * H), G.dtype)
        tmp4 = tmp.reshape(B, 4, H)
        tmpH = np.empty((B, H), G.dtype)
        P3 = 0.5 * self.peepholes(G.dtype) if self.peephole else None
        for t in range(sizes.shape[0]):
            n = int(sizes[t])
            z, a_prev, c_prev = G[t, :n], buf.a[t, :n], buf.c[t, :n]
            np.matmul(a_prev, WhT, out=tmp[:n])
            z += tmp[:n]                                      # (W_x x + b + W_h a<t-1>), σ rows halved
            if P3 is not None:
                np.multiply(P3, c_prev[:, None, :], out=tmp4[:n, :3])
                z.reshape(n, 4, H)[:, :3] += tmp4[:n, :3]     # + p * c<t-1> (halved)
            np.tanh(z, out=z)                                 # tanh(z/2) for Γ, c~ = tanh(z_c)
            s = z[:, :3 * H]
            s += 1.0
            s *= 0.5                                          # Γ = (1 + tanh(z/2)) / 2
            c = buf.c[t + 1, :n]
            np.multiply(z[:, :H], z[:, 3 * H:], out=c)        # c<t> = Γu c~
            np.multiply(z[:, H:2 * H], c_prev, out=tmpH[:n])
            c += tmpH[:n]                                     #      + Γf c<t-1>
            np.tanh(c, out=buf.tc[t, :n])
            np.multiply(z[:, 2 * H:3 * H], buf.tc[t, :n], out=buf.a[t + 1, :n])   # a<t> = Γo tanh(c<t>)

    def backward_loop(self, buf, W_h, sizes, carry, dout_t, dz) -> None:
        if fast.run("lstm_backward", self, buf, W_h, sizes, carry, dout_t, dz):
            return
        H = self.hidden_size
        run, B = dz.shape[:2]
        G = buf.G
        P3 = self.peepholes(G.dtype) if self.peephole else None
        da_all, dc_all = carry
        tmpH = np.empty((B, H), dz.dtype)
        tmp3 = np.empty((B, 3, H), dz.dtype) if P3 is not None else None
        for t0, t1 in chunks_backwards(run, dz[0].nbytes):
            g, d, tc, c_prev = G[t0:t1], dz[t0:t1], buf.tc[t0:t1], buf.c[t0:t1]
            u, f, o, cand = (g[..., i * H:(i + 1) * H] for i in range(4))
            # factors of dz that do not depend on δ, for the chunk at once
            for i, gate, other in ((0, u, cand), (1, f, c_prev), (2, o, tc)):
                out = d[..., i * H:(i + 1) * H]
                np.subtract(1.0, gate, out=out)
                out *= gate
                out *= other                                  # Γ(1-Γ) × (c~ | c<t-1> | tanh c<t>)
            out = d[..., 3 * H:]
            np.multiply(cand, cand, out=out)
            np.subtract(1.0, out, out=out)
            out *= u                                          # Γu (1 - c~²)
            K = np.multiply(tc, tc)
            np.subtract(1.0, K, out=K)
            K *= o                                            # Γo (1 - tanh²c): δa -> δc
            for t in range(t1 - 1, t0 - 1, -1):
                n = int(sizes[t])
                da, dc = da_all[:n], dc_all[:n]
                if dout_t is not None:
                    da += dout_t[t, :n]                       # δa = carried + direct
                np.multiply(da, K[t - t0, :n], out=tmpH[:n])
                dc += tmpH[:n]                                # δc = carried + δa Γo (1 - tanh²c)
                d4 = dz[t, :n].reshape(n, 4, H)               # (a view: dz[t] is contiguous)
                d4[:, :2] *= dc[:, None, :]                   # dzΓu, dzΓf
                d4[:, 2] *= da                                # dzΓo
                d4[:, 3] *= dc                                # dzc~
                dc *= f[t - t0, :n]                           # δc<t-1> = δc Γf
                if P3 is not None:
                    pz = tmp3[:n]
                    np.multiply(d4[:, :3], P3, out=pz)
                    pz[:, 0] += pz[:, 1]
                    pz[:, 0] += pz[:, 2]
                    dc += pz[:, 0]                            #   + p_u dzΓu + p_f dzΓf + p_o dzΓo
                np.matmul(dz[t, :n], W_h, out=da)             # δa<t-1> = W_hᵀ dz
        zero_padded_rows(dz, sizes)

    def recurrent_grads(self, buf, dz_all: np.ndarray, steps: int) -> None:
        H = self.hidden_size
        flat = dz_all.reshape(-1, 4 * H)
        accel.gemm_add(self.dW[:, :H], flat.T, buf.a[:steps].reshape(-1, H))   # Σ_t dz<t> a<t-1>ᵀ
        if self.peephole:                                      # dp_k = Σ_t dzΓk<t> * c<t-1>, k = u, f, o
            c_prev = buf.c[:steps].reshape(-1, H)
            dp = np.einsum("nkh,nh->kh", flat.reshape(-1, 4, H)[:, :3], c_prev)   # one pass over c<t-1>
            for k, name in enumerate(("p_u", "p_f", "p_o")):
                self.dP[name] += dp[k]
