"""A fully connected layer applied at every time step: ``ŷ<t> = g(W_y a<t> + b_y)``.

Used as the output layer of every model (with g = identity, the loss takes logits) and, stacked, as a
deep non-recurrent head per step. Accepts ``(B, T, D)`` sequences or ``(B, D)`` vectors.
"""

from __future__ import annotations

import numpy as np

from ..core import accel, workspace
from ..core.functional import softmax_xent_rows, target_rows
from ..core.errors import ConfigError, DTypeError, ShapeError, check_choice, check_positive_int
from ..core.init import as_generator, xavier_uniform
from ..core.params import ParamDict
from .base import Layer, check_lengths, resolve_dtype, time_mask

ACTIVATIONS = (None, "tanh", "relu", "sigmoid")


class Dense(Layer):
    """``y = g(x W_yᵀ + b_y)`` over the last axis, with g in {None, "tanh", "relu", "sigmoid"}.

    >>> import numpy as np, seqmodels as sm
    >>> sm.Dense(4, 2, seed=0).forward(np.ones((3, 5, 4), np.float32))[0].shape
    (3, 5, 2)
    """

    kind = "dense"

    def __init__(self, in_features: int, out_features: int, activation: str | None = None, *,
                 dtype=np.float32, seed=None):
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        check_choice("activation", activation, ACTIVATIONS)
        self.activation = activation
        self.dtype = resolve_dtype(dtype)
        rng = as_generator(seed)
        W = xavier_uniform(rng, (out_features, in_features), self.dtype)
        b = np.zeros(out_features, dtype=self.dtype)
        self.params = ParamDict({"W_y": W, "b_y": b})
        self.grads = ParamDict({"W_y": np.zeros_like(W), "b_y": np.zeros_like(b)})

    def config(self) -> dict:
        return dict(in_features=self.in_features, out_features=self.out_features, activation=self.activation)

    def forward(self, x, lengths=None, state=None):
        x = self._check_input(x)
        z = workspace.empty(x.shape[:-1] + (self.out_features,), self.dtype)
        accel.matmul(x.reshape(-1, self.in_features), self.params["W_y"].T,        # one 2-D GEMM (a 3-D
                     out=z.reshape(-1, self.out_features), bias=self.params["b_y"])  # matmul loops over B)
        if self.activation == "tanh":
            np.tanh(z, out=z)
        elif self.activation == "relu":
            np.maximum(z, 0, out=z)
        elif self.activation == "sigmoid":
            np.exp(-np.logaddexp(0.0, -z), out=z)
        mask = None
        if lengths is not None and x.ndim == 3:
            mask = time_mask(check_lengths(lengths, x.shape[0], x.shape[1]), x.shape[1])
            z *= mask[..., None]
        return z, None, (x, z, mask)

    def _check_input(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise DTypeError(f"x: expected a numeric array, got dtype {x.dtype}")
        if x.ndim not in (2, 3) or x.shape[-1] != self.in_features:
            raise ShapeError(f"x: expected shape (B, T, {self.in_features}) or (B, {self.in_features}), "
                             f"got {x.shape}")
        return x.astype(self.dtype, copy=False)

    def softmax_cross_entropy(self, x, targets, lengths=None, mask=None, reduction: str = "sum"):
        """Forward, softmax cross-entropy and backward in one pass, for training an output layer:
        ``(loss, dx)``, accumulating ``dW_y`` and ``db_y`` into ``grads``.

        The same numbers as :meth:`forward`, :func:`~seqmodels.core.functional.softmax_cross_entropy`
        and :meth:`backward` in turn (arguments as there), without their passes over the (N, V) logits:
        only the positions that count are computed, the bias is added and its gradient summed while
        each row of logits is in cache, and the gradient overwrites the logits (at V = 10,000 the
        logits are the largest array of a language model's step). Needs ``activation=None``.
        """
        if self.activation is not None:
            raise ConfigError(f"softmax_cross_entropy: needs a layer without activation (logits), this one "
                              f"applies {self.activation!r}")
        x = self._check_input(x)
        D, V = self.in_features, self.out_features
        y, rows, scale = target_rows(x.shape[:-1], V, targets, lengths, mask, reduction)
        flat = x.reshape(-1, D)
        if rows is not None:
            flat = flat[rows]                                   # valid positions only
        W = self.params["W_y"]
        z = accel.matmul(flat, W.T, out=workspace.empty((flat.shape[0], V), self.dtype))
        loss, dz = softmax_xent_rows(z, y, scale, bias=self.params["b_y"], dbias=self.grads["b_y"], out=z)
        accel.gemm_add(self.grads["W_y"], dz.T, flat)            # dW += dzᵀ x
        dflat = workspace.empty(flat.shape, self.dtype)
        accel.matmul(W.T, dz.T, out=dflat.T)       # dx = dz W as (Wᵀ dzᵀ)ᵀ: steadier on OpenBLAS's threads
        if rows is None:                        # (PTB, 2 threads: 11.9 ms every run, dz W 11.9-15.9 ms)
            return loss, dflat.reshape(x.shape)
        dx = np.zeros(x.shape, self.dtype)
        dx.reshape(-1, D)[rows] = dflat
        return loss, dx

    def backward(self, dout, cache, dstate=None):
        x, y, mask = cache
        dz = np.asarray(dout, dtype=self.dtype)
        if dz.shape != y.shape:
            raise ShapeError(f"dout: expected shape {y.shape}, got {dz.shape}")
        if mask is not None:
            dz = dz * mask[..., None]
        if self.activation == "tanh":
            dz = dz * (1.0 - y * y)
        elif self.activation == "relu":
            dz = dz * (y > 0)
        elif self.activation == "sigmoid":
            dz = dz * y * (1.0 - y)
        flat_dz = dz.reshape(-1, self.out_features)
        W, dW = self.params["W_y"], self.grads["W_y"]
        accel.gemm_add(dW, flat_dz.T, x.reshape(-1, self.in_features))
        self.grads["b_y"] += flat_dz.sum(axis=0)
        dx = workspace.empty(x.shape, self.dtype)
        accel.matmul(flat_dz, W, out=dx.reshape(-1, self.in_features))
        return dx, None
