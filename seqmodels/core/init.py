"""Weight initialisers. Every one takes an explicit ``np.random.Generator`` (never the global state).

Shapes follow the notes: a weight maps its input (columns) to its output (rows), ``(fan_out, fan_in)``.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError


def as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return ``seed`` if it is a Generator, else a new ``np.random.default_rng(seed)``."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def xavier_uniform(rng: np.random.Generator, shape: tuple[int, int], dtype=np.float32) -> np.ndarray:
    """Glorot uniform: U(-b, b) with b = sqrt(6 / (fan_in + fan_out)); keeps activations' variance."""
    fan_out, fan_in = shape
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def uniform(rng: np.random.Generator, shape, bound: float, dtype=np.float32) -> np.ndarray:
    """U(-bound, bound); PyTorch's recurrent default uses bound = 1/sqrt(hidden_size)."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def orthogonal(rng: np.random.Generator, n: int, gain: float = 1.0, dtype=np.float32) -> np.ndarray:
    """A random (n, n) orthogonal matrix (QR of a Gaussian, signs fixed so it is uniform)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    q *= np.sign(np.diag(r))
    return (gain * q).astype(dtype)


def identity(n: int, scale: float = 1.0, dtype=np.float32) -> np.ndarray:
    """``scale * I``: the IRNN recipe (Le et al. 2015) for W_aa with ReLU and a zero bias."""
    return (scale * np.eye(n)).astype(dtype)


RECURRENT_INITS = ("default", "orthogonal", "identity", "uniform", "xavier")


def init_recurrent_block(rng, kind: str, hidden: int, inputs: int, dtype, scale: float = 1.0) -> np.ndarray:
    """One gate's weight ``[W_aa | W_ax]`` of shape (H, H + D), initialised by ``kind``.

    - ``default``/``orthogonal``: orthogonal W_aa (times ``scale``), Xavier-uniform W_ax.
    - ``identity``: ``scale * I`` for W_aa (IRNN), Xavier-uniform W_ax (Le et al. use N(0, 0.001)).
    - ``uniform``: PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for both parts (times ``scale``).
    - ``xavier``: Xavier-uniform for both parts.
    """
    block = np.empty((hidden, hidden + inputs), dtype=dtype)
    if kind in ("default", "orthogonal"):
        block[:, :hidden] = orthogonal(rng, hidden, gain=scale, dtype=dtype)
        block[:, hidden:] = xavier_uniform(rng, (hidden, inputs), dtype)
    elif kind == "identity":
        block[:, :hidden] = identity(hidden, scale, dtype)
        block[:, hidden:] = xavier_uniform(rng, (hidden, inputs), dtype)
    elif kind == "uniform":
        block[:] = scale * uniform(rng, block.shape, 1.0 / np.sqrt(hidden), dtype)
    elif kind == "xavier":
        block[:, :hidden] = scale * xavier_uniform(rng, (hidden, hidden), dtype)
        block[:, hidden:] = xavier_uniform(rng, (hidden, inputs), dtype)
    else:
        options = ", ".join(repr(k) for k in RECURRENT_INITS)
        raise ConfigError(f"init: expected one of {options}, got {kind!r}")
    return block
