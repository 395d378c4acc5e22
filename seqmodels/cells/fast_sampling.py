"""Sampling from an LSTM language model in one compiled call per sequence (``seqmodels[fast]``).

Generation one token at a time spends most of its time in Python between two small products; here the
whole loop — draw the token from the softmax, look up the first layer's input projection, run every
layer's step, the output layer — is one numba function, calling NumPy's own BLAS for the products as
the training loops do (:mod:`seqmodels.cells.fast_kernels`). Used by
:meth:`seqmodels.models.language_model.LanguageModel.sample_ids` for one sequence at a time; the tests
require it to draw exactly the tokens of the step-by-step loop.
"""

from __future__ import annotations

import numpy as np

from .fast_gemm import gemm
from .fast_kernels import _JIT, _sigmoid_halved, _tanh_inplace, _tanh_into, njit


@njit(inline="always")
def _lstm_gates(z, a, c, P, peep, H):
    """One LSTM step for one row from halved pre-activations z (4H): updates c and a in place."""
    if peep:
        zu, zf, zo, pu, pf, po = z[:H], z[H:2 * H], z[2 * H:3 * H], P[0], P[1], P[2]
        for j in range(H):
            zu[j] += pu[j] * c[j]
            zf[j] += pf[j] * c[j]
            zo[j] += po[j] * c[j]
    _sigmoid_halved(z, 0, 3 * H)
    _tanh_inplace(z, 3 * H, 4 * H)
    u, f, o, cc = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
    for j in range(H):
        c[j] = u[j] * cc[j] + f[j] * c[j]
    _tanh_into(c, a, H)
    for j in range(H):
        a[j] = o[j] * a[j]


@njit(**_JIT)
def _lstm_sample(logits, table, WhT, WxT, b, A, C, P, peep, WyT, b_y, inv_t, banned, greedy, u, eos, stop, out, z):
    """Sample one sequence from a stack of LSTM layers (all of width H), all in one call.

    ``logits`` (1, V) holds the prediction for the first token on entry; ``table`` (V, 4H) the first
    layer's halved ``W_x x + b`` per token; ``WhT`` (L, H, 4H) and ``WxT`` (L, H, 4H) packed halved
    weights (``WxT[0]`` unused), ``b`` (L, 4H) halved biases; ``A``, ``C`` (L, 1, H) the state, updated;
    ``u`` one uniform per token. The draw is :class:`seqmodels.sampling.TokenSampler`'s, in the same order
    of operations. Returns the number of tokens before <EOS> (or ``out.size``).
    """
    L, H = A.shape[0], A.shape[2]
    V = logits.shape[1]
    w = np.empty(V, np.float64)
    for t in range(out.shape[0]):
        m = -np.inf
        for j in range(V):
            x = np.float64(logits[0, j])
            if inv_t != 1.0:
                x *= inv_t
            if banned[j]:
                x = -np.inf
            w[j] = x
            m = max(m, x)
        tok = 0
        if greedy:
            for j in range(V):
                if w[j] > w[tok]:
                    tok = j
        else:
            total = 0.0
            for j in range(V):
                total += np.exp(w[j] - m)
                w[j] = total
            target = u[t] * total
            while tok < V - 1 and w[tok] <= target:
                tok += 1
        out[t] = tok
        if stop and tok == eos:
            return t
        for layer in range(L):
            if layer == 0:
                z[0, :] = table[tok]
            else:
                z[0, :] = b[layer]
                gemm(z, A[layer - 1], WxT[layer], 1, 4 * H, H, H, 4 * H, 4 * H, 1.0)
            gemm(z, A[layer], WhT[layer], 1, 4 * H, H, H, 4 * H, 4 * H, 1.0)
            _lstm_gates(z[0], A[layer, 0], C[layer, 0], P[layer], peep, H)
        logits[0, :] = b_y
        gemm(logits, A[L - 1], WyT, 1, V, H, H, V, V, 1.0)
    return out.shape[0]


def lstm_sample(layers, table, W_y, b_y, state, logits, draw, eos: int, stop: bool, max_len: int):
    """Sample one sequence (batch 1) from LSTM ``layers`` of one width in one compiled call.

    ``table`` (V, 4H): the first layer's ``W_x x + b`` per token, sigmoid gates halved
    (``input_table(E, scaled=True)``); ``state``: the layers' (a, c) after the
    prime; ``logits`` (1, V): the prediction for the first token; ``draw``: the
    :class:`~seqmodels.sampling.TokenSampler` (its top-k is not compiled: None is returned then, and for
    layers of different widths or peephole settings). Returns (ids (max_len,), length).
    """
    H, dtype = layers[0].hidden_size, table.dtype
    if draw.top_k is not None or any(layer.hidden_size != H or layer.cell.peephole != layers[0].cell.peephole
                                     or layer.dtype != dtype for layer in layers):
        return None
    WhT = np.stack([layer.cell.pack(layer.W_h)[0] for layer in layers])
    inputs = [layer.input_weights() for layer in layers]
    WxT = np.stack([np.zeros((H, 4 * H), dtype)] + [W_xT for W_xT, _ in inputs[1:]])
    b = np.stack([b for _, b in inputs])
    P = np.stack([0.5 * layer.cell.peepholes(dtype) for layer in layers])
    A = np.stack([np.array(s[0], dtype).reshape(1, H) for s in state])
    C = np.stack([np.array(s[1], dtype).reshape(1, H) for s in state])
    banned = np.zeros(logits.shape[-1], np.bool_)
    banned[draw.banned] = True
    u = np.zeros(max_len) if draw.greedy else draw.rng.random(max_len)
    out = np.zeros(max_len, np.int64)
    n = _lstm_sample(np.array(logits, dtype).reshape(1, -1), np.ascontiguousarray(table), WhT, WxT, b,
                     A, C, P, layers[0].cell.peephole, np.ascontiguousarray(W_y.T, dtype), np.asarray(b_y, dtype),
                     draw.inv_t, banned, draw.greedy, u, eos, stop, out, np.empty((1, 4 * H), dtype))
    return out, n


__all__ = ["lstm_sample"]
