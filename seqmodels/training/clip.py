"""Gradient clipping, in place, over a mapping of gradient arrays.

``‖g‖ = sqrt(Σ_arrays Σ_elements g²)`` is the global norm over every array together, accumulated in
float64 (float32 gradients of 1e30 still give a finite norm).

* ``clip_by_value``: the notes' element-wise clipping, ``g ← min(max(g, -limit), limit)``.
* ``clip_by_global_norm``: ``g ← g · max_norm / ‖g‖`` when ``‖g‖ > max_norm`` (direction kept).
* ``clip``: either of them (or none) plus a :class:`ClipStats` record for logging; gradients that
  hold NaN or inf are left untouched and reported with ``finite=False`` so the caller can skip the step.

>>> import numpy as np
>>> grads = {"W": np.array([3.0, -4.0]), "b": np.array([0.0])}
>>> clip(grads, "norm", 1.0)
ClipStats(norm_before=5.0, norm_after=1.0, n_clipped=2, finite=True)
>>> grads["W"].round(6).tolist()
[0.6, -0.8]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np

from seqmodels.core import accel
from seqmodels.core.errors import ConfigError, DTypeError, check_choice

__all__ = ["ClipStats", "global_norm", "clip_by_value", "clip_by_global_norm", "clip", "CLIP_MODES"]

CLIP_MODES = ("value", "norm", None)


class ClipStats(NamedTuple):
    """What :func:`clip` did: norms before and after, how many elements it changed, and whether
    the gradients were finite (if not, nothing was changed)."""

    norm_before: float
    norm_after: float
    n_clipped: int
    finite: bool


def _arrays(grads) -> list[np.ndarray]:
    arrays = list(grads.values()) if isinstance(grads, Mapping) else list(grads)
    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
            what = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise DTypeError(f"grads[{i}]: expected a floating-point np.ndarray, got {what}")
    return arrays


def _threshold(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a finite number > 0, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ConfigError(f"{name}: expected a finite number > 0, got {value!r}")
    return v


#: float32 elements per partial sum of squares: each is one BLAS dot (float32 accumulators in the
#: kernel's SIMD lanes, a few thousand terms each), the partial sums add up in float64
_CHUNK = 1 << 16


def _sum_squares(arrays: list[np.ndarray], scale: float = 1.0) -> float:
    total = 0.0
    for a in arrays:
        x = a.ravel()
        kernels = accel.kernels(x.dtype) if x.dtype == np.float32 and scale == 1.0 else None
        if kernels is not None:                         # float64 sums of squares, on every thread at once
            total += sum(accel.parallel_for(x.size, kernels.sum_squares, x))
            continue
        if x.dtype == np.float32 and scale == 1.0:     # no float64 copy of every gradient (12 MB/step at H=512)
            for i in range(0, x.size, _CHUNK):
                c = x[i:i + _CHUNK]
                part = float(np.dot(c, c))
                if math.isinf(part):                    # squares beyond float32's range: redo in float64
                    c = c.astype(np.float64)
                    part = float(np.dot(c, c))
                total += part
            continue
        x = x.astype(np.float64, copy=False)
        if scale != 1.0:
            x = x * scale
        total += float(np.dot(x, x))                    # Σ g²
    return total


def global_norm(grads: Mapping[str, np.ndarray] | Iterable[np.ndarray]) -> float:
    """``‖g‖ = sqrt(Σ g²)`` over all arrays of ``grads`` (a mapping or an iterable of arrays).

    NaN anywhere gives NaN, inf gives inf; finite values too large to square in float64 are rescaled.

    >>> global_norm([np.array([3.0]), np.array([[4.0]])])
    5.0
    """
    arrays = _arrays(grads)
    with np.errstate(over="ignore"):                    # overflow is detected and handled below
        total = _sum_squares(arrays)
    if math.isinf(total) and all(np.isfinite(a).all() for a in arrays):
        big = max(float(np.max(np.abs(a))) for a in arrays if a.size)
        return big * math.sqrt(_sum_squares(arrays, 1.0 / big))   # ‖g‖ = M ‖g / M‖
    return math.sqrt(total)


def clip_by_value(grads: Mapping[str, np.ndarray] | Iterable[np.ndarray], limit: float) -> float:
    """Clip every element to ``[-limit, limit]`` in place; return the global norm *before* clipping.

    >>> g = {"W": np.array([0.5, -7.0])}
    >>> round(clip_by_value(g, 1.0), 4), g["W"].tolist()
    (7.0178, [0.5, -1.0])
    """
    limit = _threshold("limit", limit)
    arrays = _arrays(grads)
    norm = global_norm(arrays)
    for a in arrays:
        np.clip(a, -limit, limit, out=a)                # g ← min(max(g, -limit), limit)
    return norm


def clip_by_global_norm(grads: Mapping[str, np.ndarray] | Iterable[np.ndarray], max_norm: float) -> float:
    """Scale all arrays in place by ``max_norm / ‖g‖`` when ``‖g‖ > max_norm``; return ``‖g‖`` before.

    A non-finite norm leaves the gradients untouched (scaling would turn inf into NaN).

    >>> g = {"W": np.array([6.0, 8.0])}
    >>> clip_by_global_norm(g, 5.0), g["W"].tolist()
    (10.0, [3.0, 4.0])
    """
    max_norm = _threshold("max_norm", max_norm)
    arrays = _arrays(grads)
    norm = global_norm(arrays)
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / norm
        for a in arrays:
            a *= scale                                  # g ← g · max_norm / ‖g‖
    return norm


def clip(grads: Mapping[str, np.ndarray] | Iterable[np.ndarray], mode: str | None = "value",
         threshold: float | None = None) -> ClipStats:
    """Clip ``grads`` in place by ``mode`` ("value", "norm" or None) at ``threshold``; report it.

    ``n_clipped``: for "value" the number of elements with ``|g| > threshold``; for "norm" the
    number of nonzero elements when the gradients were scaled, else 0; for None 0. ``norm_after``
    is recomputed for "value" and is ``threshold`` itself after a "norm" rescale. Non-finite
    gradients are not modified and give ``ClipStats(norm, norm, 0, False)``.

    >>> clip({"W": np.array([0.5, -7.0, 9.0])}, "value", 1.0).n_clipped
    2
    """
    check_choice("mode", mode, CLIP_MODES)
    if mode is not None:
        threshold = _threshold("threshold", threshold)
    arrays = _arrays(grads)
    before = global_norm(arrays)
    finite = math.isfinite(before) or all(np.isfinite(a).all() for a in arrays)
    if not finite or mode is None:
        return ClipStats(before, before, 0, finite)
    if mode == "value":
        n = sum(int(np.count_nonzero(np.abs(a) > threshold)) for a in arrays)
        if n == 0:
            return ClipStats(before, before, 0, True)
        for a in arrays:
            np.clip(a, -threshold, threshold, out=a)    # g ← min(max(g, -limit), limit)
        return ClipStats(before, global_norm(arrays), n, True)
    if not before > threshold:
        return ClipStats(before, before, 0, True)
    n = sum(int(np.count_nonzero(a)) for a in arrays)
    scale = threshold / before
    for a in arrays:
        a *= scale                                      # g ← g · max_norm / ‖g‖
    return ClipStats(before, threshold, n, True)
