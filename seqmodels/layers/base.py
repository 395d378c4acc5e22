"""The layer contract every building block follows (design.md §2).

``forward(x, lengths=None, state=None) -> (out, state, cache)`` and
``backward(dout, cache, dstate=None) -> (dx, dstate0)``; ``params`` and ``grads`` are
:class:`~seqmodels.core.params.ParamDict` mappings with the same keys and shapes; ``backward``
*accumulates* into ``grads`` and ``zero_grad()`` clears them. Arrays are batch-first:
x ``(B, T, D)``, out ``(B, T, H)``, states ``(B, H)``.
"""

from __future__ import annotations

import numpy as np

from ..core import accel
from ..core.errors import DTypeError, NonFiniteError, ShapeError
from ..core.params import ParamDict


class Layer:
    """Base class: parameter bookkeeping, training mode and the forward/backward contract."""

    params: ParamDict
    grads: ParamDict
    dtype: np.dtype

    def __init__(self) -> None:
        self.training = True

    def forward(self, x, lengths=None, state=None):  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dout, cache, dstate=None):  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, x, lengths=None, state=None):
        """Shorthand for ``forward(...)[0]``: the output only."""
        return self.forward(x, lengths=lengths, state=state)[0]

    def zero_grad(self) -> None:
        """Set every gradient to zero in place (backward accumulates)."""
        accel.zero(self.grads.values())

    def children(self) -> dict[str, "Layer"]:
        """Sub-layers by name (empty for leaf layers)."""
        return {}

    def train(self, mode: bool = True) -> "Layer":
        """Switch training mode (dropout on) for this layer and its children."""
        self.training = mode
        for child in self.children().values():
            child.train(mode)
        return self

    def eval(self) -> "Layer":
        """Switch to inference mode (dropout off)."""
        return self.train(False)

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.params.values()))


def resolve_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise DTypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


def check_sequence(x, input_size: int, dtype, name: str = "x") -> np.ndarray:
    """Validate a batch-first sequence ``(B, T, D)`` and return it as ``dtype``."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise DTypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 3:
        raise ShapeError(
            f"{name}: expected a 3-d array (batch, time, features), got shape {arr.shape}"
            + (" — add a batch axis with x[None]" if arr.ndim == 2 else "")
        )
    if arr.shape[2] != input_size:
        raise ShapeError(f"{name}: expected {input_size} features in the last axis, got shape {arr.shape}")
    arr = arr.astype(dtype, copy=False)
    if arr.size and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise NonFiniteError(f"{name}: contains NaN or inf (first at index {tuple(int(i) for i in bad)})")
    return arr


def check_lengths(lengths, batch: int, steps: int) -> np.ndarray:
    """Validate ``lengths`` (B,) of integers in [0, T]; None means every sequence is full length."""
    if lengths is None:
        return np.full(batch, steps, dtype=np.int64)
    arr = np.asarray(lengths)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DTypeError(f"lengths: expected integers, got {arr.dtype} values {arr.tolist()[:8]}")
    elif arr.dtype.kind not in "iu":
        raise DTypeError(f"lengths: expected an integer array, got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ShapeError(f"lengths: expected shape ({batch},) (one per sequence), got {arr.shape}")
    arr = arr.astype(np.int64)
    if batch and (arr.min() < 0 or arr.max() > steps):
        raise ShapeError(f"lengths: expected values in [0, {steps}] (the time axis), got {arr.tolist()}")
    return arr


def check_state_array(s, batch: int, hidden: int, dtype, name: str) -> np.ndarray:
    arr = np.asarray(s)
    if arr.shape != (batch, hidden):
        raise ShapeError(f"{name}: expected shape ({batch}, {hidden}), got {arr.shape}")
    arr = arr.astype(dtype, copy=False)
    if not np.isfinite(arr).all():
        raise NonFiniteError(f"{name}: contains NaN or inf")
    return arr


def time_mask(lengths: np.ndarray, steps: int) -> np.ndarray:
    """(B, T) boolean mask, True where t < lengths[b]."""
    return np.arange(steps)[None, :] < lengths[:, None]
