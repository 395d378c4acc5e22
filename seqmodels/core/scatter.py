"""Scatter-add of rows, the gradient of a row lookup (embeddings, one-hot inputs).

``target[idx[n]] += values[n]`` for every n. With the optional accelerator (float32) it is one
compiled pass over ``values``, its columns split between the threads. Otherwise, for a small table
the one-hot product ``onehot(idx)ᵀ @ values`` is one GEMM; for a large one, rows are sorted by index
and summed per index with ``np.add.reduceat`` (all much faster than ``np.add.at``).
"""

from __future__ import annotations

import numpy as np

from . import accel, blas

ONEHOT_MAX_ROWS = 1024


def scatter_add_rows(target: np.ndarray, idx: np.ndarray, values: np.ndarray) -> None:
    """In place: ``target[idx[n], :] += values[n, :]`` (duplicates accumulate). target may be a view."""
    idx = np.asarray(idx).reshape(-1)
    if idx.size == 0:
        return
    values = values.reshape(idx.size, -1)
    if target.ndim != 2 or values.shape[1] != target.shape[1]:
        raise ValueError(f"scatter_add_rows: values of shape {values.shape} do not match rows of {target.shape}")
    V = target.shape[0]
    kernels = accel.kernels(values.dtype)
    if (kernels is not None and target.dtype == values.dtype and target.strides[-1] == target.itemsize
            and 0 <= idx.min() and idx.max() < V):       # the compiled loop does not check its indices
        values = np.ascontiguousarray(values)
        accel.parallel_for(values.shape[1], kernels.scatter_add_rows, target, idx.astype(np.intp, copy=False),
                           values, cost=values.size)
        return
    if V <= ONEHOT_MAX_ROWS and idx.size * V <= 64_000_000:
        onehot = np.zeros((idx.size, V), dtype=values.dtype)
        onehot[np.arange(idx.size), idx] = 1
        blas.gemm_add(target, onehot.T, values)
        return
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    starts = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]])
    sums = np.add.reduceat(values[order], starts, axis=0)
    target[sorted_idx[starts]] += sums
