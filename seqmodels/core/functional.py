"""Numerically careful primitives, each forward paired with its backward.

Legend for shapes: ``B`` batch, ``T`` time, ``V`` classes (vocabulary), ``K`` independent binary
labels, ``...`` any leading axes. Every function accepts float32 or float64 and keeps the dtype
(integer or boolean input becomes float64).

* ``sigmoid`` / ``log_sigmoid`` never pass a positive number to ``exp``, so ``x = ±1e4`` gives no
  overflow warning and keeps full relative precision in both tails.
* ``softmax`` / ``log_softmax`` / ``logsumexp`` subtract the maximum along the reduced axis first.
* ``softmax_cross_entropy`` and ``sigmoid_cross_entropy`` return ``(loss, dlogits)``: the loss as a
  Python float and its exact gradient with respect to the logits; positions excluded by ``lengths``,
  ``mask`` or ``ignore_index`` contribute nothing to either (their gradient rows are zeros, whatever
  the logits or targets hold there).

>>> import numpy as np
>>> logits = np.array([[[2.0, 0.0], [0.0, 2.0]]])            # (B=1, T=2, V=2)
>>> loss, dlogits = softmax_cross_entropy(logits, np.array([[0, 0]]), lengths=np.array([1]))
>>> round(loss, 6), dlogits[0, 1].tolist()                     # t=1 is padding
(0.126928, [0.0, 0.0])
"""

from __future__ import annotations

import numpy as np

from seqmodels.core import accel, workspace
from seqmodels.core.errors import ConfigError, DTypeError, ShapeError, check_choice

__all__ = [
    "sigmoid",
    "sigmoid_backward",
    "tanh_backward",
    "log_sigmoid",
    "log_sigmoid_backward",
    "softmax",
    "softmax_backward",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "logsumexp_backward",
    "length_mask",
    "softmax_cross_entropy",
    "sigmoid_cross_entropy",
]

REDUCTIONS = ("sum", "mean")


def _float_array(name: str, x) -> np.ndarray:
    """``x`` as an ndarray of a floating dtype (float kept, integers/booleans -> float64)."""
    a = np.asarray(x)
    if a.dtype.kind == "f":
        return a
    if a.dtype.kind in "biu":
        return a.astype(np.float64)
    raise DTypeError(f"{name}: expected a real floating-point array, got dtype {a.dtype}")


def _scalar_if_0d(a: np.ndarray):
    return a[()] if a.ndim == 0 else a


# ----------------------------------------------------------------------------------- element-wise


def sigmoid(x, out: np.ndarray | None = None) -> np.ndarray:
    """Logistic function ``σ(x) = 1 / (1 + exp(-x))``, without overflow for any ``x``.

    Computed as ``σ(x) = exp(min(x, 0)) / (1 + exp(-|x|))``, which equals ``1 / (1 + exp(-x))`` for
    ``x >= 0`` and ``exp(x) / (1 + exp(x))`` for ``x < 0``; ``exp`` only ever sees arguments <= 0.

    Shapes: ``x`` (...) -> (...). ``out``: optional array of the same shape to write into (it may be
    ``x`` itself).

    >>> sigmoid(np.array([-1e4, 0.0, 1e4])).tolist()
    [0.0, 0.5, 1.0]
    """
    x = _float_array("x", x)
    if out is not None and out.shape != x.shape:
        raise ShapeError(f"out: expected shape {x.shape} (the shape of x), got {out.shape}")
    num = np.minimum(x, 0.0, out=np.empty_like(x))      # min(x, 0)
    np.exp(num, out=num)                                # exp(min(x, 0))
    den = np.abs(x, out=np.empty_like(x))               # |x|
    np.negative(den, out=den)
    np.exp(den, out=den)                                # exp(-|x|)
    den += 1.0                                          # 1 + exp(-|x|)
    res = np.divide(num, den, out=out)                  # σ(x)
    return res if out is not None else _scalar_if_0d(res)


def sigmoid_backward(dout, y) -> np.ndarray:
    """Gradient through ``y = σ(x)``: ``dx = dout * y * (1 - y)``. Shapes: all (...).

    >>> sigmoid_backward(np.ones(1), sigmoid(np.zeros(1))).tolist()
    [0.25]
    """
    return dout * y * (1.0 - y)                         # dσ/dx = σ(x)(1 - σ(x))


def tanh_backward(dout, y) -> np.ndarray:
    """Gradient through ``y = tanh(x)``: ``dx = dout * (1 - y²)``. Shapes: all (...).

    >>> tanh_backward(np.ones(1), np.tanh(np.zeros(1))).tolist()
    [1.0]
    """
    return dout * (1.0 - y * y)                         # dtanh/dx = 1 - tanh²(x)


def log_sigmoid(x) -> np.ndarray:
    """``log σ(x) = min(x, 0) - log1p(exp(-|x|))``, finite for every finite ``x``.

    Shapes: ``x`` (...) -> (...).

    >>> log_sigmoid(np.array([-1e4, 0.0, 1e4])).round(6).tolist()
    [-10000.0, -0.693147, 0.0]
    """
    x = _float_array("x", x)
    res = np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))   # log σ(x)
    return _scalar_if_0d(np.asarray(res))


def log_sigmoid_backward(dout, x) -> np.ndarray:
    """Gradient through ``y = log σ(x)``: ``dx = dout * σ(-x)`` (that is ``dout * (1 - σ(x))``).

    Shapes: ``dout``, ``x`` (...) -> (...).

    >>> log_sigmoid_backward(np.ones(1), np.zeros(1)).tolist()
    [0.5]
    """
    x = _float_array("x", x)
    return dout * sigmoid(-x)                           # d log σ(x)/dx = σ(-x)


# ------------------------------------------------------------------------------ along one axis


def _safe_max(x: np.ndarray, axis: int) -> np.ndarray:
    """max along ``axis`` (keepdims), with non-finite maxima replaced by 0 so ``x - m`` stays defined."""
    m = np.max(x, axis=axis, keepdims=True)
    return np.where(np.isfinite(m), m, 0.0).astype(x.dtype, copy=False)


def softmax(x, axis: int = -1) -> np.ndarray:
    """``softmax(x)_i = exp(x_i - m) / Σ_j exp(x_j - m)`` with ``m = max_j x_j`` along ``axis``.

    Shapes: ``x`` (..., V, ...) -> same shape, summing to 1 along ``axis``.

    >>> softmax(np.array([[1e4, 0.0, -1e4]])).tolist()
    [[1.0, 0.0, 0.0]]
    """
    x = _float_array("x", x)
    e = x - _safe_max(x, axis)                          # x - m
    np.exp(e, out=e)                                    # exp(x - m)
    e /= e.sum(axis=axis, keepdims=True)                # / Σ_j exp(x_j - m)
    return e


def softmax_backward(dout, y, axis: int = -1) -> np.ndarray:
    """Gradient through ``y = softmax(x)``: ``dx = y * (dout - Σ_j dout_j y_j)``. Shapes: all equal.

    >>> softmax_backward(np.array([1.0, 1.0]), np.array([0.5, 0.5])).tolist()
    [0.0, 0.0]
    """
    return y * (dout - np.sum(dout * y, axis=axis, keepdims=True))


def log_softmax(x, axis: int = -1) -> np.ndarray:
    """``log softmax(x)_i = (x_i - m) - log Σ_j exp(x_j - m)``, ``m = max_j x_j`` along ``axis``.

    Shapes: ``x`` (..., V, ...) -> same shape.

    >>> log_softmax(np.array([1e4, -1e4])).tolist()
    [0.0, -20000.0]
    """
    x = _float_array("x", x)
    z = x - _safe_max(x, axis)                          # x - m
    z -= np.log(np.sum(np.exp(z), axis=axis, keepdims=True))   # - log Σ_j exp(x_j - m)
    return z


def log_softmax_backward(dout, logp, axis: int = -1) -> np.ndarray:
    """Gradient through ``logp = log_softmax(x)``: ``dx = dout - exp(logp) * Σ_j dout_j``.

    Shapes: ``dout``, ``logp`` (..., V, ...) -> same shape.

    >>> log_softmax_backward(np.array([1.0, 0.0]), np.log([0.5, 0.5])).tolist()
    [0.5, -0.5]
    """
    return dout - np.exp(logp) * np.sum(dout, axis=axis, keepdims=True)


def logsumexp(x, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """``logsumexp(x) = m + log Σ_j exp(x_j - m)``, ``m = max_j x_j`` along ``axis``.

    Shapes: ``x`` (..., V, ...) -> ``x`` without ``axis`` (kept as size 1 with ``keepdims``).
    A slice of all ``-inf`` gives ``-inf``.

    >>> logsumexp(np.array([1e4, 1e4])).round(6).tolist()
    10000.693147
    """
    x = _float_array("x", x)
    m = _safe_max(x, axis)                              # m
    s = np.sum(np.exp(x - m), axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):                  # log 0 = -inf for all -inf slices
        res = m + np.log(s)                             # m + log Σ_j exp(x_j - m)
    return res if keepdims else _scalar_if_0d(np.squeeze(res, axis=axis))


def logsumexp_backward(dout, x, axis: int = -1) -> np.ndarray:
    """Gradient through ``logsumexp(x)`` along ``axis``: ``dx = dout * softmax(x)``.

    Shapes: ``dout`` is ``x`` without ``axis`` (or with it kept as size 1); ``x`` (..., V, ...).

    >>> logsumexp_backward(np.float64(2.0), np.zeros(2)).tolist()
    [1.0, 1.0]
    """
    x = _float_array("x", x)
    dout = np.asarray(dout)
    if dout.ndim == x.ndim - 1:
        dout = np.expand_dims(dout, axis)
    return dout * softmax(x, axis=axis)


# ------------------------------------------------------------------------------------- masks


def length_mask(lengths, max_len: int) -> np.ndarray:
    """Boolean mask of valid (unpadded) positions: ``mask[b, t] = t < lengths[b]``.

    Shapes: ``lengths`` (B,) integers in ``[0, max_len]`` -> (B, max_len) bool.

    >>> length_mask(np.array([2, 0]), 3).tolist()
    [[True, True, False], [False, False, False]]
    """
    lengths = np.asarray(lengths)
    if lengths.dtype.kind not in "iu":
        raise DTypeError(f"lengths: expected an integer array, got dtype {lengths.dtype}")
    if lengths.ndim != 1:
        raise ShapeError(f"lengths: expected shape (B,), got {lengths.shape}")
    bad = (lengths < 0) | (lengths > max_len)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise ShapeError(f"lengths: expected values in [0, {max_len}] (the time axis), "
                         f"got lengths[{b}] = {int(lengths[b])}")
    return np.arange(max_len) < lengths[:, None]


def _valid_positions(shape: tuple, lengths, mask) -> np.ndarray | None:
    """(B,) or (B, T) bool of positions that count, or None when all of them do."""
    valid = None
    if lengths is not None:
        if len(shape) != 2:
            raise ShapeError(f"lengths: only defined with a time axis, i.e. positions (B, T); these "
                             f"logits have positions {shape} (use mask for per-example exclusion)")
        lengths = np.asarray(lengths)
        if lengths.shape != shape[:1]:
            raise ShapeError(f"lengths: expected shape ({shape[0]},) (one length per example), "
                             f"got {lengths.shape}")
        valid = length_mask(lengths, shape[1])
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise DTypeError(f"mask: expected a bool array (True = counts), got dtype {mask.dtype}; "
                             f"convert with mask.astype(bool)")
        if mask.shape != shape:
            raise ShapeError(f"mask: expected shape {shape} (one entry per position), got {mask.shape}")
        valid = mask if valid is None else valid & mask
    return valid


# ------------------------------------------------------------------------------------- losses


def softmax_cross_entropy(logits, targets, lengths=None, mask=None, reduction: str = "sum",
                          ignore_index: int | None = None) -> tuple[float, np.ndarray]:
    """Cross-entropy of integer targets under ``softmax(logits)``, and its gradient.

    ``L = -Σ_{valid (b,t)} log softmax(logits[b, t])[y<b,t>]``, divided by the number of valid
    positions when ``reduction="mean"`` (0 valid positions give ``L = 0``).
    ``dL/dlogits[b, t] = softmax(logits[b, t]) - onehot(y<b,t>)`` at valid positions (times
    ``1/N`` for "mean"), zeros elsewhere.

    Shapes: ``logits`` (B, T, V) or (B, V) (many-to-one); ``targets`` (B, T) or (B,) integers in
    ``[0, V)`` at valid positions (anything at excluded ones); ``lengths`` (B,) ints in ``[0, T]``,
    positions ``t >= lengths[b]`` are excluded (3-D logits only); ``mask`` bool of the targets'
    shape, False excluded (combined with ``lengths`` by AND when both are given); positions whose
    target equals ``ignore_index`` are excluded. Returns ``(loss: float, dlogits)`` with ``dlogits``
    of the logits' shape and dtype.

    >>> loss, d = softmax_cross_entropy(np.array([[1e4, -1e4]]), np.array([1]))
    >>> loss, d.tolist()
    (20000.0, [[1.0, -1.0]])
    """
    logits = _float_array("logits", logits)
    if logits.ndim not in (2, 3) or logits.shape[-1] == 0:
        raise ShapeError(f"logits: expected shape (B, T, V) or (B, V) with V >= 1, got {logits.shape}")
    V = logits.shape[-1]
    y, rows, scale = target_rows(logits.shape[:-1], V, targets, lengths, mask, reduction, ignore_index)
    z = logits.reshape(-1, V)                           # (N, V), positions flattened
    if rows is not None:
        z = z[rows]                                     # valid positions only
    loss, p = softmax_xent_rows(z, y, scale)
    if rows is None:
        return loss, p.reshape(logits.shape)
    dlogits = np.zeros((int(np.prod(logits.shape[:-1])), V), dtype=logits.dtype)
    dlogits[rows] = p
    return loss, dlogits.reshape(logits.shape)


def target_rows(positions: tuple, V: int, targets, lengths=None, mask=None, reduction: str = "sum",
                ignore_index: int | None = None):
    """The checked class ids of the positions that count, for a softmax over ``V`` classes at
    ``positions`` (B, T) or (B,): ``(y, rows, scale)`` — ``y`` the ids of the valid positions (flattened
    order), ``rows`` their flat indices (None when every position counts) and ``scale`` the factor of
    ``reduction`` (``1/len(y)`` for "mean", else 1). Raises with the argument's name on bad input (see
    :func:`softmax_cross_entropy`)."""
    targets = np.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise DTypeError(f"targets: expected integer class ids, got dtype {targets.dtype}; "
                         f"convert with targets.astype(np.int64)")
    if targets.shape != tuple(positions):
        raise ShapeError(f"targets: expected shape {tuple(positions)} (logits.shape[:-1]), "
                         f"got {targets.shape}")
    check_choice("reduction", reduction, REDUCTIONS)
    valid = _valid_positions(targets.shape, lengths, mask)
    if ignore_index is not None:
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise DTypeError(f"ignore_index: expected an int or None, got {ignore_index!r}")
        keep = targets != ignore_index
        valid = keep if valid is None else valid & keep
    y = targets.reshape(-1)
    rows = None if valid is None or valid.all() else np.flatnonzero(valid)
    if rows is not None:
        y = y[rows]
    bad = (y < 0) | (y >= V)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where = np.unravel_index(i if rows is None else rows[i], targets.shape)
        raise ShapeError(f"targets: expected class ids in [0, {V}) at valid positions, "
                         f"got {int(y[i])} at index {tuple(int(w) for w in where)}")
    scale = 1.0 / y.size if reduction == "mean" and y.size else 1.0
    return y, rows, scale


def softmax_xent_rows(z: np.ndarray, y: np.ndarray, scale: float = 1.0, bias=None, dbias=None,
                      out=None) -> tuple[float, np.ndarray]:
    """``(scale · Σ_i -log softmax(z_i + b)[y_i], scale · (softmax(z + b) - onehot(y)))`` for (N, V)
    logits ``z`` (``bias`` b of length V, or None for 0), checked ids ``y`` (see :func:`target_rows`).

    The gradient goes to ``out`` (may be ``z`` itself: the logits are then overwritten) or to recycled
    memory; with ``dbias`` (V,) its column sums are added there. One compiled pass per row for float32
    with ``seqmodels[fast]`` (the bias added and the column sums taken while the row is in cache), else
    NumPy.
    """
    n, V = z.shape
    kernels = accel.kernels(z.dtype)
    p = workspace.empty(z.shape, z.dtype) if out is None else out
    if kernels is not None and z.dtype == np.float32:    # the kernel's exp is float32's
        k = accel.parts_for(n, z.size)
        b = np.zeros(0, z.dtype) if bias is None else np.ascontiguousarray(bias, z.dtype)
        db = np.zeros((k, V) if dbias is not None else (1, 0), z.dtype)
        parts = accel.parallel_for(n, kernels.softmax_xent_rows, np.ascontiguousarray(z), b,
                                   y.astype(np.intp, copy=False), p, z.dtype.type(scale), db,
                                   with_part=True, parts=k)
        if dbias is not None:
            dbias += db.sum(axis=0)
        return float(sum(parts)) * scale, p
    if bias is not None:
        np.add(z, bias, out=p)                          # z + b
        z = p
    pick = (np.arange(n), y)
    np.subtract(z, _safe_max(z, 1), out=p)              # z - m
    z_y = p[pick]                                       # z_y - m
    np.exp(p, out=p)                                    # exp(z - m)
    total = p.sum(axis=1, keepdims=True)                # Σ_j exp(z_j - m)
    log_p_y = z_y - np.log(total[:, 0])                 # log softmax(z)_y
    loss = -float(np.sum(log_p_y, dtype=np.float64))    # L = -Σ log p_y
    p /= total                                          # p = softmax(z)
    p[pick] -= 1.0                                      # dL/dz = p - onehot(y)
    if scale != 1.0:
        loss *= scale
        p *= scale
    if dbias is not None:
        dbias += p.sum(axis=0)
    return loss, p


def sigmoid_cross_entropy(logits, targets, lengths=None, mask=None, reduction: str = "sum",
                          multilabel: bool | None = None) -> tuple[float, np.ndarray]:
    """Binary cross-entropy from logits, and its gradient.

    Per element, with ``ŷ = σ(x)``: ``L<t> = -y log ŷ - (1 - y) log(1 - ŷ)``, computed stably as
    ``max(x, 0) - x*y + log1p(exp(-|x|))``; ``dL<t>/dx = σ(x) - y``. The loss is the sum over all
    valid elements. A *position* is one time step of one example: with ``multilabel`` the last axis
    holds K labels that share a position, otherwise every element is its own position.
    ``reduction="mean"`` divides by the number of valid positions, so for (B, T, K) logits it is the
    per-time-step NLL *summed over the K labels*, averaged over valid time steps (not the mean over
    all B*T*K elements); for (B, T) or (B,) it is the plain mean. 0 valid positions give ``L = 0``.

    Shapes: ``logits`` (B,), (B, T), (B, K) with ``multilabel=True``, or (B, T, K);
    ``multilabel=None`` means True for 3-D logits, False otherwise. ``targets`` the logits' shape,
    values in [0, 1] at valid positions. ``lengths`` (B,) ints in [0, T] for positions (B, T);
    ``mask`` bool of the positions' shape ((B, T) for (B, T, K) logits). Returns
    ``(loss: float, dlogits)`` with ``dlogits`` of the logits' shape and dtype (zeros where excluded).

    >>> loss, d = sigmoid_cross_entropy(np.array([1e4, -1e4]), np.array([0.0, 0.0]))
    >>> loss, d.tolist()
    (10000.0, [1.0, 0.0])
    """
    x = _float_array("logits", logits)
    if x.ndim not in (1, 2, 3):
        raise ShapeError(f"logits: expected shape (B,), (B, T), (B, K) or (B, T, K), got {x.shape}")
    if multilabel is None:
        multilabel = x.ndim == 3
    if multilabel and x.ndim == 1 or not multilabel and x.ndim == 3:
        raise ConfigError(f"multilabel: {multilabel} does not fit logits of shape {x.shape}; "
                          f"expected True for (B, K) or (B, T, K), False for (B,) or (B, T)")
    y = np.asarray(targets)
    if y.dtype.kind not in "biuf":
        raise DTypeError(f"targets: expected real values in [0, 1], got dtype {y.dtype}")
    if y.shape != x.shape:
        raise ShapeError(f"targets: expected shape {x.shape} (the logits' shape), got {y.shape}")
    check_choice("reduction", reduction, REDUCTIONS)
    y = y.astype(x.dtype, copy=False)
    positions = x.shape[:-1] if multilabel else x.shape
    valid = _valid_positions(positions, lengths, mask)
    keep = None if valid is None else np.broadcast_to(valid[..., None] if multilabel else valid, x.shape)
    bad = ~((y >= 0) & (y <= 1))
    if keep is not None:
        bad &= keep
    if bad.any():
        i = tuple(int(w) for w in np.argwhere(bad)[0])
        raise ShapeError(f"targets: expected values in [0, 1] at valid positions, got {y[i]} at index {i}")
    with np.errstate(invalid="ignore", over="ignore"):  # only excluded elements can misbehave
        ell = np.maximum(x, 0.0) - x * y + np.log1p(np.exp(-np.abs(x)))   # L<t> = -y log ŷ - (1-y) log(1-ŷ)
        grad = sigmoid(x) - y                                              # dL<t>/dx = ŷ - y
    if keep is None:
        loss, count = float(np.sum(ell, dtype=np.float64)), int(np.prod(positions))
    else:
        loss, count = float(np.sum(ell, where=keep, dtype=np.float64)), int(valid.sum())
        grad = np.where(keep, grad, 0.0).astype(x.dtype, copy=False)
    if reduction == "mean" and count > 0:
        loss /= count
        grad *= 1.0 / count
    return loss, grad


def inverted_dropout(h: np.ndarray, p: float, rng: np.random.Generator):
    """Inverted dropout: ``(h * mask, mask)`` with ``mask = [u < 1 - p] / (1 - p)``, u ~ U(0, 1) per element.

    The expected value of every unit is unchanged, so nothing is rescaled at inference. The backward pass
    is ``dh * mask``. Returns ``(h, None)`` when ``p == 0``.
    """
    if p <= 0:
        return h, None
    mask = dropout_mask(h.shape, p, rng, h.dtype)
    return h * mask, mask


def dropout_mask(shape, p: float, rng: np.random.Generator, dtype) -> np.ndarray:
    """The mask of :func:`inverted_dropout`: ``[u < 1 - p] / (1 - p)``, u ~ U(0, 1) drawn from ``rng``."""
    keep = 1.0 - p
    return (rng.random(shape) < keep).astype(dtype) / keep
