"""How far back does a loss at the end reach? Gradients through time and per-step Jacobians.

For a loss ``L`` at the end of a sequence, backpropagation through time carries

    ∂L/∂s<t-1> = (∂s<t>/∂s<t-1>)ᵀ ∂L/∂s<t>   (+ the direct gradient of the output at t-1)

backwards, where ``s<t>`` is the state (``a<t>``; for an LSTM the pair ``(a<t>, c<t>)``). The norm
``‖∂L/∂a<t>‖`` as a function of the distance ``T - t`` is the notes' vanishing / exploding gradient:
a product of ``T - t`` Jacobians ``J<t> = ∂s<t>/∂s<t-1>`` that shrinks or grows geometrically when
their norms stay below or above 1 (for a tanh RNN ``J<t> = diag(1 - a<t>²) W_aa``).

:func:`gradient_through_time` records the backward loop's carries, which are exactly ``∂L/∂s<t>``
(the *total* derivative: every path from ``s<t>`` to ``L``, including through the layers above). It
reruns the cells' own ``step_back`` on the forward cache (the layer's ``backward`` is not used and
no ``grads`` are changed). :func:`jacobian_norms` gives ``‖J<t>‖`` per row and step: ``"spectral"``
(the largest singular value, the factor by which one step can at most stretch a gradient) or
``"frobenius"``; for an LSTM ``J<t>`` is the (2H, 2H) Jacobian of ``[a<t>; c<t>]``.

>>> import numpy as np, seqmodels as sm
>>> from seqmodels.diagnostics import gradient_through_time
>>> rnn = sm.RNN(3, 8, dtype=np.float64, seed=0)
>>> g = gradient_through_time(rnn, np.random.default_rng(0).standard_normal((2, 30, 3)))
>>> curve = g["layer"].curve()                 # mean ‖∂L/∂a<t>‖ at distance 0, 1, ... from the end
>>> curve.shape, bool(curve[25] < curve[0])
((30,), True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from ..core.errors import ConfigError, DTypeError, ShapeError, check_choice
from ..core.functional import softmax_cross_entropy
from ..layers.base import Layer
from ..layers.bidirectional import Bidirectional
from ..layers.recurrent import Recurrent
from ..layers.stack import Stack

NORMS = ("spectral", "frobenius")
LOSSES = ("last", "all")

__all__ = ["StateGradients", "GradientThroughTime", "gradient_through_time", "jacobian_norms",
           "cell_kind", "to_batch_first", "NORMS"]


def cell_kind(layer: Recurrent) -> str:
    """A short name of a recurrent layer's cell: rnn, irnn-style relu rnn, gru, sgru, lstm."""
    cell = layer.cell
    if len(cell.state_names) == 2:
        return "lstm"
    if "u" in cell.gates:
        return "sgru" if getattr(cell, "variant", "full") == "simplified" else "gru"
    return "relu-rnn" if getattr(cell, "activation", "tanh") == "relu" else "rnn"


def to_batch_first(arr: np.ndarray, cache, fill=np.nan) -> np.ndarray:
    """Map a (T_run, B, ...) array in the cache's sorted, time-major step order to (B, T, ...).

    Positions past each row's length get ``fill``. Handles ``reverse=True`` layers (step t of row b
    is time ``tidx[t, b]``).
    """
    order, tidx, slen, B, T, run = cache.order, cache.tidx, cache.lengths, cache.order.size, cache.steps, cache.run
    out = np.zeros((B, T) + arr.shape[2:], dtype=np.float64 if np.isnan(fill) else arr.dtype)
    if run:
        if tidx is not None:
            out[order[None, :], tidx] = arr
        else:
            out[order, :run] = arr.swapaxes(0, 1)
    lengths = np.empty_like(slen)
    lengths[order] = slen
    out[np.arange(T)[None, :] >= lengths[:, None]] = fill
    return out


@dataclass
class StateGradients:
    """∂L/∂state<t> of one recurrent layer at every step (batch-first, zero past each length).

    Attributes:
        name: the layer's dotted name (``rnn.layers.0``, ``layers.1.backward`` ...).
        cell: ``rnn``, ``relu-rnn``, ``gru``, ``sgru`` or ``lstm``.
        lengths: (B,) sequence lengths.
        grad_a: (B, T, H) ∂L/∂a<t>.  grad_c: (B, T, H) ∂L/∂c<t> for an LSTM, else None.
        grad_init: ∂L/∂ (initial state) as a tuple of (B, H) arrays (``a<0>`` [, ``c<0>``]).
        jacobian: (B, T) ‖∂s<t>/∂s<t-1>‖ (NaN past lengths) or None when not requested.
        reverse: True for the right-to-left half of a bidirectional layer.
    """

    name: str
    cell: str
    lengths: np.ndarray
    grad_a: np.ndarray
    grad_c: np.ndarray | None
    grad_init: tuple
    jacobian: np.ndarray | None = None
    reverse: bool = False

    def norms(self, component: str = "a") -> np.ndarray:
        """(B, T) Euclidean norms per row and step: ``"a"``, ``"c"`` (LSTM) or ``"state"`` (both together).

        Positions past each length are NaN.
        """
        check_choice("component", component, ("a", "c", "state"))
        if component == "c" and self.grad_c is None:
            raise ConfigError(f"component='c': layer {self.name!r} ({self.cell}) has no cell state")
        sq = lambda g: np.einsum("bth,bth->bt", g.astype(np.float64), g.astype(np.float64))
        total = sq(self.grad_c) if component == "c" else sq(self.grad_a)
        if component == "state" and self.grad_c is not None:
            total = total + sq(self.grad_c)
        out = np.sqrt(total)
        out[np.arange(out.shape[1])[None, :] >= self.lengths[:, None]] = np.nan
        return out

    def curve(self, component: str = "a", *, align: str = "end") -> np.ndarray:
        """Mean norm over the batch as a function of the distance from each row's last step.

        ``align="end"``: entry k is the mean of ``‖∂L/∂a<len_b - 1 - k>‖`` over rows b with
        ``len_b > k`` (distance k from the loss at the end); ``align="start"``: entry t is the mean
        at time t. Rows too short for an entry are left out of its mean (NaN if none is long enough).
        """
        check_choice("align", align, ("end", "start"))
        n = self.norms(component)
        if align == "end":
            B, T = n.shape
            k = self.lengths[:, None] - 1 - np.arange(T)[None, :]            # time read at distance k
            valid = k >= 0
            n = np.where(valid, n[np.arange(B)[:, None], np.clip(k, 0, None)], np.nan)
        with np.errstate(invalid="ignore"):
            cnt = np.sum(~np.isnan(n), axis=0)
            total = np.nansum(n, axis=0)
            return np.where(cnt > 0, total / np.maximum(cnt, 1), np.nan)


@dataclass
class GradientThroughTime:
    """The result of :func:`gradient_through_time`: the loss and one :class:`StateGradients` per layer."""

    loss: float
    layers: dict = field(default_factory=dict)
    norm: str | None = "spectral"

    def __getitem__(self, name: str) -> StateGradients:
        if name not in self.layers:
            raise KeyError(f"no recurrent layer named {name!r}; known: {', '.join(self.layers)}")
        return self.layers[name]

    def __iter__(self):
        return iter(self.layers.values())

    def table(self, distances=(0, 1, 2, 5, 10, 20, 50, 100)) -> str:
        """Plain-text table: mean ‖∂L/∂a<T-k>‖ per layer for a few distances k (and mean ‖J‖)."""
        rows = []
        for sg in self.layers.values():
            curve = sg.curve("state")
            cells = [f"{curve[k]:.3g}" if k < curve.size and np.isfinite(curve[k]) else "-" for k in distances]
            jac = "-" if sg.jacobian is None else f"{np.nanmean(sg.jacobian):.3g}"
            rows.append([sg.name, sg.cell] + cells + [jac])
        head = ["layer", "cell"] + [f"k={k}" for k in distances] + [f"mean ‖J‖ ({self.norm})"]
        return format_rows(head, rows)


def format_rows(head: list[str], rows: list[list[str]]) -> str:
    """Left-aligned text table with a header rule."""
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


# ------------------------------------------------------------------ the recorder of one layer
def _record_layer(layer: Recurrent, cache, dout, dstate, name: str, norm: str | None):
    """Backward through one recurrent layer, recording the carries. Returns (dx, StateGradients)."""
    cell = layer.cell
    order, tidx, slen, sizes, xs, buf, T, run, _ = cache
    B, H, S = order.size, layer.hidden_size, len(cell.state_names)
    dtype = layer.dtype
    if dout is not None:
        dout = np.asarray(dout, dtype=dtype)
        if dout.shape != (B, T, H):
            raise ShapeError(f"dout for {name}: expected shape {(B, T, H)}, got {dout.shape}")
    parts = layer.split_state(dstate, B, "dstate")
    carry = [np.zeros((B, H), dtype) if p is None else p[order].astype(dtype) for p in parts]
    rec = np.zeros((S, run, B, H), dtype=dtype)
    dz = np.zeros((run, B, cell.num_gates * H), dtype=dtype)
    if run and dout is not None:
        dout_t = dout[order[None, :], tidx] if tidx is not None else dout[order, :run].transpose(1, 0, 2)
    else:
        dout_t = None
    W_h = layer.W_h
    for t in range(run - 1, -1, -1):
        n = int(sizes[t])
        d = [c[:n] for c in carry]
        if dout_t is not None:
            d[0] = d[0] + dout_t[t, :n]                       # ∂L/∂a<t> = carry + direct output gradient
        for k in range(S):
            rec[k, t, :n] = d[k]
        new = cell.step_back(t, n, buf, W_h, d, dz[t, :n])    # -> ∂L/∂s<t-1>
        for c, v in zip(carry, new):
            c[:n] = v
    init = tuple(np.empty_like(c) for c in carry)
    for s, c in zip(init, carry):
        s[order] = c                                          # back to the caller's row order
    dx = None
    if xs.ndim == 3 and run:
        dxs = (dz.reshape(run * B, -1) @ layer.W_x).reshape(run, B, -1)
        dx = to_batch_first(dxs, cache, fill=0.0)
    elif xs.ndim == 3:
        dx = np.zeros((B, T, layer.input_size), dtype=dtype)
    lengths = np.empty_like(slen)
    lengths[order] = slen
    grads = [to_batch_first(rec[k], cache, fill=0.0) for k in range(S)]
    jac = _jacobian_from_cache(layer, cache, norm) if norm is not None else None
    sg = StateGradients(name, cell_kind(layer), lengths, grads[0], grads[1] if S == 2 else None, init,
                        jac, layer.reverse)
    return dx, sg


# ----------------------------------------------------------------------------- Jacobians
def _step_jacobian(cell, buf, t: int, rows: slice, W_h: np.ndarray) -> np.ndarray:
    """(n, S·H, S·H) Jacobians ∂s<t>/∂s<t-1> of the batch ``rows`` at step t (float64).

    Row i of J is the vector-Jacobian product eᵢᵀ J, computed by the cell's own ``step_back`` on a
    buffer whose rows are those of step t, each repeated S·H times.
    """
    H, S = cell.hidden_size, len(cell.state_names)
    D = S * H
    mini = SimpleNamespace()
    for key, arr in vars(buf).items():
        src = arr[t:t + 2, rows] if key in cell.state_names else arr[t:t + 1, rows]   # states: s<t-1>, s<t>
        setattr(mini, key, np.repeat(src.astype(np.float64), D, axis=1))
    n = src.shape[1]
    eye = np.tile(np.eye(D), (n, 1))                          # row b·D + i holds eᵢ
    dstate = [eye[:, k * H:(k + 1) * H] for k in range(S)]
    dz = np.zeros((n * D, cell.num_gates * H))
    back = cell.step_back(0, n * D, mini, W_h.astype(np.float64), dstate, dz)
    return np.concatenate(back, axis=1).reshape(n, D, D)     # J[b, i, j] = ∂s<t>_i / ∂s<t-1>_j


def _jacobian_from_cache(layer: Recurrent, cache, norm: str) -> np.ndarray:
    check_choice("norm", norm, NORMS)
    cell, sizes, run, B = layer.cell, cache.sizes, cache.run, cache.order.size
    vals = np.zeros((run, B))
    chunk = max(1, 4096 // (len(cell.state_names) * cell.hidden_size))       # bounds the repeated buffers
    for t in range(run):
        for r0 in range(0, int(sizes[t]), chunk):
            rows = slice(r0, min(r0 + chunk, int(sizes[t])))
            J = _step_jacobian(cell, cache.buf, t, rows, layer.W_h)
            vals[t, rows] = np.linalg.norm(J, ord=2 if norm == "spectral" else "fro", axis=(1, 2))
    return to_batch_first(vals, cache)


def jacobian_norms(layer: Recurrent, x, lengths=None, state=None, *, norm: str = "spectral") -> np.ndarray:
    """(B, T) norms of the one-step Jacobians ``∂s<t>/∂s<t-1>`` of a recurrent layer on inputs ``x``.

    ``norm="spectral"`` (largest singular value) or ``"frobenius"``. ``s`` is ``a`` for RNN/GRU and
    ``[a; c]`` for an LSTM. NaN past each length.

    >>> import numpy as np, seqmodels as sm
    >>> rnn = sm.RNN(2, 4, init="identity", activation="relu", dtype=np.float64, seed=0)
    >>> j = jacobian_norms(rnn, np.ones((1, 3, 2)))
    >>> bool(np.all(j <= 1 + 1e-12))             # diag(a > 0) · I never stretches a gradient
    True
    """
    if not isinstance(layer, Recurrent):
        raise DTypeError(f"layer: expected a recurrent layer (RNN, GRU, LSTM), got {type(layer).__name__}")
    check_choice("norm", norm, NORMS)
    _, _, cache = layer.forward(x, lengths=lengths, state=state)
    return _jacobian_from_cache(layer, cache, norm)


# ----------------------------------------------------------------- composite traversal
def _record_any(layer, cache, dout, name: str, norm, out: dict):
    """Backward through any layer, recording every recurrent layer inside; returns dx."""
    if isinstance(layer, Recurrent):
        dx, sg = _record_layer(layer, cache, dout, None, name or "layer", norm)
        out[sg.name] = sg
        return dx
    if isinstance(layer, Bidirectional):
        c_f, c_b = cache
        H = layer.hidden_size
        if layer.merge == "concat":
            d_f, d_b = dout[..., :H], dout[..., H:]
        else:
            d_f = d_b = dout * 0.5 if layer.merge == "mean" else dout
        pre = f"{name}." if name else ""
        dx_f = _record_any(layer.fwd, c_f, d_f, pre + "forward", norm, out)
        dx_b = _record_any(layer.bwd, c_b, d_b, pre + "backward", norm, out)
        return None if dx_f is None else dx_f + dx_b
    if isinstance(layer, Stack):
        caches, masks = cache[:2]
        d = dout
        pre = f"{name}." if name else ""
        for i in range(len(layer.layers) - 1, -1, -1):
            if d is None:
                break
            if masks[i] is not None:
                d = d * masks[i]
            d = _record_any(layer.layers[i], caches[i], d, f"{pre}layers.{i}", norm, out)
        return d
    return layer.backward(dout, cache)[0]                     # Dense, Embedding: not recurrent


def _last_step_dout(out: np.ndarray, lengths, rng) -> tuple[np.ndarray, float]:
    """dout for L = (1/B) Σ_b u · out[b, len_b - 1] with a fixed random unit vector u."""
    B, T, H = out.shape
    u = rng.standard_normal(H)
    u /= np.linalg.norm(u)
    dout = np.zeros(out.shape, dtype=out.dtype)
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    rows = np.flatnonzero(lengths > 0)
    dout[rows, lengths[rows] - 1] = u / max(B, 1)
    return dout, float(np.sum(out * dout))


def _is_language_model(obj) -> bool:
    return all(hasattr(obj, a) for a in ("rnn", "head", "embedding", "vocab"))


def gradient_through_time(model_or_layer, batch, *, lengths=None, state=None, dout=None, loss: str = "last",
                          norm: str | None = "spectral", seed: int = 0) -> GradientThroughTime:
    """‖∂L/∂a<t>‖ at every step of every recurrent layer for a loss at the end, and ‖∂s<t>/∂s<t-1>‖.

    Args:
        model_or_layer: an RNN/GRU/LSTM layer, a :class:`Bidirectional`, a :class:`Stack`, or a
            :class:`~seqmodels.models.language_model.LanguageModel`.
        batch: for a layer, the inputs ``x`` (B, T, D) (or (B, T) one-hot ids) or a tuple
            ``(x, lengths)``; for a language model ``(x, y)`` or ``(x, y, lengths)`` of ids.
        dout: the gradient of L w.r.t. the layer's outputs (B, T, H_out) — for a language model,
            w.r.t. the logits (B, T, V) —, making ``L = Σ dout · out``. When None, ``loss`` decides.
        loss: ``"last"`` — a layer: ``L = (1/B) Σ_b u · out[b, len_b - 1]`` with a fixed random unit
            vector ``u`` (``seed``); a language model: the mean cross-entropy of each row's last token.
            ``"all"`` — a language model only: its training loss (mean cross-entropy over every token).
        norm: ``"spectral"``, ``"frobenius"`` or None (skip the Jacobians, much faster).

    Returns:
        :class:`GradientThroughTime`; ``result[name]`` is one layer's :class:`StateGradients`. Layers are
        named by their parameter prefixes (``layer`` for a lone layer). Gradients and training mode of
        the model are left as they were (dropout is off during the measurement).
    """
    check_choice("loss", loss, LOSSES)
    if norm is not None:
        check_choice("norm", norm, NORMS)
    obj = model_or_layer
    is_lm = _is_language_model(obj)
    if not is_lm and not isinstance(obj, Layer):
        raise DTypeError(f"model_or_layer: expected a recurrent layer, Stack, Bidirectional or LanguageModel, "
                         f"got {type(obj).__name__}")
    if loss == "all" and not is_lm:
        raise ConfigError("loss='all' needs a language model; for a layer pass dout (B, T, H) instead")
    saved = {k: v.copy() for k, v in obj.grads.items()}
    was = obj.training
    obj.eval()
    try:
        result = GradientThroughTime(float("nan"), {}, norm)
        if is_lm:
            _lm_gradients(obj, batch, dout, loss, norm, result)
        else:
            x, lens = (batch if isinstance(batch, tuple) else (batch, lengths))
            out, _, cache = obj.forward(x, lengths=lens, state=state)
            if dout is None:
                lens_arr = None if lens is None else np.asarray(lens)
                dout, value = _last_step_dout(out, lens_arr, np.random.default_rng(seed))
            else:
                dout = np.asarray(dout, dtype=out.dtype)
                if dout.shape != out.shape:
                    raise ShapeError(f"dout: expected the output's shape {out.shape}, got {dout.shape}")
                value = float(np.sum(out * dout))
            result.loss = value
            _record_any(obj, cache, dout, "", norm, result.layers)
    finally:
        obj.train(was)
        for k, v in saved.items():
            obj.grads[k] = v
    return result


def _lm_gradients(lm, batch, dlogits, loss: str, norm, result: GradientThroughTime) -> None:
    if not isinstance(batch, tuple) or len(batch) not in (2, 3):
        raise ShapeError("batch: a language model needs (x, y) or (x, y, lengths) arrays of token ids")
    x, y = np.asarray(batch[0]), np.asarray(batch[1])
    lengths = None if len(batch) == 2 else np.asarray(batch[2])
    if lm.embedding is not None:
        h, _, c_emb = lm.embedding.forward(x, lengths)
    else:
        h = x
    h, _, c_rnn = lm.rnn.forward(h, lengths)
    logits, _, c_head = lm.head.forward(h)
    if dlogits is None:
        B, T = y.shape
        if loss == "last":
            lens = np.full(B, T) if lengths is None else lengths
            mask = np.zeros((B, T), bool)
            rows = np.flatnonzero(lens > 0)
            mask[rows, lens[rows] - 1] = True
            value, dlogits = softmax_cross_entropy(logits, y, mask=mask, reduction="mean")
        else:
            value, dlogits = softmax_cross_entropy(logits, y, lengths=lengths, reduction="mean")
    else:
        dlogits = np.asarray(dlogits, dtype=logits.dtype)
        if dlogits.shape != logits.shape:
            raise ShapeError(f"dout: expected the logits' shape {logits.shape}, got {dlogits.shape}")
        value = float(np.sum(logits * dlogits))
    result.loss = float(value)
    dh, _ = lm.head.backward(dlogits, c_head)
    _record_any(lm.rnn, c_rnn, dh, "rnn", norm, result.layers)
