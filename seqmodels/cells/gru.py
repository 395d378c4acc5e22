"""The GRU cell of the notes — simplified, full, and PyTorch's reset-after form.

Full GRU (the notes; ``variant="full"``)::

    Γu  = σ(W_u [c<t-1>, x<t>] + b_u)               update gate
    Γr  = σ(W_r [c<t-1>, x<t>] + b_r)               relevance gate
    c~  = tanh(W_c [Γr * c<t-1>, x<t>] + b_c)       candidate
    c<t> = Γu * c~<t> + (1 - Γu) * c<t-1>,   a<t> = c<t>

Simplified GRU (``variant="simplified"``): no Γr, ``c~ = tanh(W_c [c<t-1>, x<t>] + b_c)``.

Reset-after (``reset_after=True``; PyTorch / cuDNN), with one more bias ``b_ca`` (H,)::

    c~  = tanh(W_cx x<t> + b_c + Γr * (W_ca c<t-1> + b_ca))

Fused layout: ``W = [W_u; W_r; W_c]`` (3H, H + D), or ``[W_u; W_c]`` when simplified. PyTorch's
``z`` gate is ``1 - Γu`` (see :mod:`seqmodels.interop`).
"""

from __future__ import annotations

import numpy as np

from ..core.errors import ConfigError, check_choice
from .base import Cell, sigmoid_

VARIANTS = ("full", "simplified")


class GRUCell(Cell):
    state_names = ("a",)

    def __init__(self, input_size: int, hidden_size: int, variant: str = "full", reset_after: bool = False):
        super().__init__(input_size, hidden_size)
        check_choice("variant", variant, VARIANTS)
        if variant == "simplified" and reset_after:
            raise ConfigError("reset_after=True needs variant='full' (the simplified GRU has no Γr)")
        self.variant = variant
        self.reset_after = bool(reset_after)
        self.gates = ("u", "c") if variant == "simplified" else ("u", "r", "c")
        if variant == "full":
            # notes' form keeps Γr * c<t-1>; reset-after keeps W_ca c<t-1> + b_ca and its gradient
            self.extra_buffers = ("hc", "dhc") if reset_after else ("ra",)

    def extra_params(self):
        return {"b_ca": (self.hidden_size,)} if self.reset_after else {}

    # ---------------------------------------------------------------- forward
    def step(self, t: int, n: int, buf, W_h: np.ndarray) -> None:
        H = self.hidden_size
        z = buf.G[t, :n]                                      # holds W_x x<t> + b
        a_prev = buf.a[t, :n]
        if self.variant == "simplified":
            z += a_prev @ W_h.T
            sigmoid_(z[:, :H])                                # Γu
            np.tanh(z[:, H:], out=z[:, H:])                   # c~ = tanh(W_c [c<t-1>, x<t>] + b_c)
        elif not self.reset_after:
            z[:, :2 * H] += a_prev @ W_h[:2 * H].T
            sigmoid_(z[:, :2 * H])                            # Γu, Γr
            ra = buf.ra[t, :n]
            np.multiply(z[:, H:2 * H], a_prev, out=ra)        # Γr * c<t-1>
            z[:, 2 * H:] += ra @ W_h[2 * H:].T
            np.tanh(z[:, 2 * H:], out=z[:, 2 * H:])           # c~ = tanh(W_c [Γr * c<t-1>, x<t>] + b_c)
        else:
            hp = a_prev @ W_h.T
            z[:, :2 * H] += hp[:, :2 * H]
            sigmoid_(z[:, :2 * H])                            # Γu, Γr
            hc = buf.hc[t, :n]
            np.add(hp[:, 2 * H:], self.P["b_ca"], out=hc)     # W_ca c<t-1> + b_ca
            z[:, 2 * H:] += z[:, H:2 * H] * hc                # W_cx x + b_c + Γr * (...)
            np.tanh(z[:, 2 * H:], out=z[:, 2 * H:])
        u, cand = z[:, :H], z[:, -H:]
        a = buf.a[t + 1, :n]
        np.subtract(cand, a_prev, out=a)                      # c<t> = c<t-1> + Γu (c~ - c<t-1>)
        a *= u                                                #      = Γu c~ + (1 - Γu) c<t-1>
        a += a_prev

    # --------------------------------------------------------------- backward
    def step_back(self, t: int, n: int, buf, W_h: np.ndarray, dstate, dz: np.ndarray):
        H = self.hidden_size
        (da,) = dstate
        g = buf.G[t, :n]
        a_prev = buf.a[t, :n]
        u, cand = g[:, :H], g[:, -H:]
        dz_u, dz_c = dz[:, :H], dz[:, -H:]
        np.subtract(cand, a_prev, out=dz_u)
        dz_u *= da                                            # dΓu = da (c~ - c<t-1>)
        dz_u *= u * (1.0 - u)                                 # through σ
        np.multiply(da, u, out=dz_c)                          # dc~ = da Γu
        dz_c *= 1.0 - cand * cand                             # through tanh
        da_prev = da * (1.0 - u)                              # direct path (1 - Γu)
        if self.variant == "simplified":
            da_prev += dz @ W_h
        elif not self.reset_after:
            r = g[:, H:2 * H]
            dra = dz_c @ W_h[2 * H:]                          # d(Γr * c<t-1>)
            da_prev += dra * r
            dz_r = dz[:, H:2 * H]
            np.multiply(dra, a_prev, out=dz_r)                # dΓr
            dz_r *= r * (1.0 - r)
            da_prev += dz[:, :2 * H] @ W_h[:2 * H]
        else:
            r, hc = g[:, H:2 * H], buf.hc[t, :n]
            dhc = buf.dhc[t, :n]
            np.multiply(dz_c, r, out=dhc)                     # d(W_ca c<t-1> + b_ca)
            dz_r = dz[:, H:2 * H]
            np.multiply(dz_c, hc, out=dz_r)                   # dΓr
            dz_r *= r * (1.0 - r)
            da_prev += dz[:, :2 * H] @ W_h[:2 * H] + dhc @ W_h[2 * H:]
        return (da_prev,)

    def recurrent_grads(self, buf, dz_all: np.ndarray, steps: int) -> None:
        H = self.hidden_size
        G = self.num_gates
        flat = dz_all.reshape(-1, G * H)
        a_prev = buf.a[:steps].reshape(-1, H)
        if self.variant == "simplified":
            self.dW[:, :H] += flat.T @ a_prev
        elif not self.reset_after:
            self.dW[:2 * H, :H] += flat[:, :2 * H].T @ a_prev
            self.dW[2 * H:, :H] += flat[:, 2 * H:].T @ buf.ra[:steps].reshape(-1, H)
        else:
            dhc = buf.dhc[:steps].reshape(-1, H)
            self.dW[:2 * H, :H] += flat[:, :2 * H].T @ a_prev
            self.dW[2 * H:, :H] += dhc.T @ a_prev
            self.dP["b_ca"] += dhc.sum(axis=0)
