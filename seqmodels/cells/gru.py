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

Backward, with ``δa`` the gradient w.r.t. ``c<t> = a<t>``::

    dzΓu = δa (c~ - c<t-1>) Γu(1-Γu)          dzc~ = δa Γu (1 - c~²)
    notes:        δ(Γr c) = W_caᵀ dzc~,   dzΓr = δ(Γr c) c<t-1> Γr(1-Γr)
    reset-after:  δhc = dzc~ Γr,          dzΓr = dzc~ hc Γr(1-Γr)       (hc = W_ca c<t-1> + b_ca)
    δa<t-1> = δa (1 - Γu) + W_{u,r}ᵀ [dzΓu, dzΓr] + (Γr δ(Γr c) | W_caᵀ δhc)

The factors that do not depend on ``δa`` are computed for all steps at once before the backward loop.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import ConfigError, check_choice
from ..core import accel
from . import fast
from .base import Cell, packed_transpose, recur, sigmoid_, zero_padded_rows

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
        self.sigmoid_gates = len(self.gates) - 1
        self.whole_product_step = variant == "simplified"      # Γr needs W_h split in two
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
            z += recur(a_prev, W_h)
            sigmoid_(z[:, :H])                                # Γu
            np.tanh(z[:, H:], out=z[:, H:])                   # c~ = tanh(W_c [c<t-1>, x<t>] + b_c)
        elif not self.reset_after:
            z[:, :2 * H] += recur(a_prev, W_h[:2 * H])
            sigmoid_(z[:, :2 * H])                            # Γu, Γr
            ra = buf.ra[t, :n]
            np.multiply(z[:, H:2 * H], a_prev, out=ra)        # Γr * c<t-1>
            z[:, 2 * H:] += recur(ra, W_h[2 * H:])
            np.tanh(z[:, 2 * H:], out=z[:, 2 * H:])           # c~ = tanh(W_c [Γr * c<t-1>, x<t>] + b_c)
        else:
            hp = recur(a_prev, W_h)
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

    # ------------------------------------------------------------------ all steps
    def pack(self, W_h: np.ndarray, lazy: bool = False) -> tuple:
        H, S = self.hidden_size, self.sigmoid_gates           # Γu (, Γr): their inputs arrive halved
        if S == 2 and not self.reset_after:                   # two products per step: [Γu, Γr], then c~
            return packed_transpose(W_h[:2 * H], 2 * H, lazy), packed_transpose(W_h[2 * H:], 0, lazy)
        return packed_transpose(W_h, S * H, lazy), None

    def forward_loop(self, buf, W_h: np.ndarray, sizes: np.ndarray, packed: tuple | None = None) -> None:
        H = self.hidden_size
        S = self.sigmoid_gates
        notes = S == 2 and not self.reset_after
        WhT, WcT = packed or self.packed_for(W_h, buf.G.dtype)
        if fast.run("gru_forward", self, buf, WhT, sizes, WcT):
            return
        G = buf.G
        B = G.shape[1]
        tmp = np.empty((B, WhT.shape[1]), G.dtype)
        tmpH = np.empty((B, H), G.dtype)
        b_ca = self.P.get("b_ca")
        for t in range(sizes.shape[0]):
            n = int(sizes[t])
            z, a_prev = G[t, :n], buf.a[t, :n]
            if self.variant == "simplified":
                np.matmul(a_prev, WhT, out=tmp[:n])
                z += tmp[:n]
                np.tanh(z, out=z)                             # tanh(z_u/2), c~ = tanh(W_c [c, x] + b_c)
            elif not self.reset_after:
                np.matmul(a_prev, WhT, out=tmp[:n])
                z[:, :2 * H] += tmp[:n]
                np.tanh(z[:, :2 * H], out=z[:, :2 * H])
            else:
                np.matmul(a_prev, WhT, out=tmp[:n])
                z[:, :2 * H] += tmp[:n, :2 * H]
                np.tanh(z[:, :2 * H], out=z[:, :2 * H])
            s = z[:, :S * H]
            s += 1.0
            s *= 0.5                                          # Γu (, Γr) = (1 + tanh(z/2)) / 2
            cand = z[:, 2 * H:] if S == 2 else z[:, H:]
            if notes:
                ra = buf.ra[t, :n]
                np.multiply(z[:, H:2 * H], a_prev, out=ra)    # Γr * c<t-1>
                np.matmul(ra, WcT, out=tmpH[:n])
                cand += tmpH[:n]
                np.tanh(cand, out=cand)                       # c~ = tanh(W_c [Γr * c<t-1>, x<t>] + b_c)
            elif S == 2:
                hc = buf.hc[t, :n]
                np.add(tmp[:n, 2 * H:], b_ca, out=hc)         # hc = W_ca c<t-1> + b_ca
                np.multiply(z[:, H:2 * H], hc, out=tmpH[:n])
                cand += tmpH[:n]
                np.tanh(cand, out=cand)                       # c~ = tanh(W_cx x + b_c + Γr * hc)
            a = buf.a[t + 1, :n]
            np.subtract(cand, a_prev, out=a)                  # c<t> = c<t-1> + Γu (c~ - c<t-1>)
            a *= z[:, :H]
            a += a_prev

    def backward_loop(self, buf, W_h, sizes, carry, dout_t, dz) -> None:
        if fast.run("gru_backward", self, buf, W_h, sizes, carry, dout_t, dz):
            return
        H = self.hidden_size
        run = sizes.shape[0]
        G, a_prev = buf.G, buf.a[:run]
        u, cand = G[..., :H], G[..., -H:]
        dz_u, dz_c = dz[..., :H], dz[..., -H:]
        # factors of dz that do not depend on δa, for all steps at once
        np.subtract(1.0, u, out=dz_c)
        dz_c *= u                                             # Γu(1-Γu) (scratch)
        np.subtract(cand, a_prev, out=dz_u)
        dz_u *= dz_c                                          # (c~ - c<t-1>) Γu(1-Γu)
        np.multiply(cand, cand, out=dz_c)
        np.subtract(1.0, dz_c, out=dz_c)
        dz_c *= u                                             # Γu (1 - c~²)
        full, notes = self.variant == "full", not self.reset_after
        if full:
            r, dz_r = G[..., H:2 * H], dz[..., H:2 * H]
            np.subtract(1.0, r, out=dz_r)
            dz_r *= r                                         # Γr(1-Γr) ...
            if notes:
                dz_r *= a_prev                                # ... c<t-1>           (× δ(Γr c) per step)
            else:
                hc, dhc = buf.hc[:run], buf.dhc[:run]
                dz_r *= hc
                dz_r *= dz_c                                  # ... hc Γu (1 - c~²)  (× δa per step)
                np.multiply(dz_c, r, out=dhc)                 # δhc = Γr Γu (1 - c~²) (× δa per step)
        (da_all,) = carry
        B = dz.shape[1]
        tmpH = np.empty((B, H), dz.dtype)
        tmpH2 = np.empty((B, H), dz.dtype)
        for t in range(run - 1, -1, -1):
            n = int(sizes[t])
            da = da_all[:n]
            if dout_t is not None:
                da += dout_t[t, :n]                           # δa = carried + direct
            d = dz[t, :n]
            keep = tmpH[:n]
            np.subtract(1.0, u[t, :n], out=keep)
            keep *= da                                        # δa (1 - Γu): the direct path
            if not full:
                d.reshape(n, 2, H)[...] *= da[:, None, :]
                np.matmul(d, W_h, out=da)
            elif notes:
                d[:, :H] *= da
                d[:, 2 * H:] *= da
                dra = tmpH2[:n]
                np.matmul(d[:, 2 * H:], W_h[2 * H:], out=dra)   # δ(Γr c<t-1>) = W_caᵀ dzc~
                d[:, H:2 * H] *= dra
                dra *= r[t, :n]
                keep += dra                                   # + Γr δ(Γr c<t-1>)
                np.matmul(d[:, :2 * H], W_h[:2 * H], out=da)
            else:
                d.reshape(n, 3, H)[...] *= da[:, None, :]
                dh = dhc[t, :n]
                dh *= da
                np.matmul(d[:, :2 * H], W_h[:2 * H], out=tmpH2[:n])
                np.matmul(dh, W_h[2 * H:], out=da)            # W_caᵀ δhc
                da += tmpH2[:n]
            da += keep                                        # δa<t-1>
        zero_padded_rows(dz, sizes)
        if full and not notes:
            zero_padded_rows(dhc, sizes)

    def recurrent_grads(self, buf, dz_all: np.ndarray, steps: int) -> None:
        H = self.hidden_size
        G = self.num_gates
        flat = dz_all.reshape(-1, G * H)
        a_prev = buf.a[:steps].reshape(-1, H)
        if self.variant == "simplified":
            accel.gemm_add(self.dW[:, :H], flat.T, a_prev)
        elif not self.reset_after:
            accel.gemm_add(self.dW[:2 * H, :H], flat[:, :2 * H].T, a_prev)
            accel.gemm_add(self.dW[2 * H:, :H], flat[:, 2 * H:].T, buf.ra[:steps].reshape(-1, H))
        else:
            dhc = buf.dhc[:steps].reshape(-1, H)
            accel.gemm_add(self.dW[:2 * H, :H], flat[:, :2 * H].T, a_prev)
            accel.gemm_add(self.dW[2 * H:, :H], dhc.T, a_prev)
            self.dP["b_ca"] += dhc.sum(axis=0)
