"""Central-difference gradient checks, the proof behind every hand-written backward pass.

For a layer and random "upstream" weights ``R_out``, ``R_state`` the scalar
``L = Σ out * R_out + Σ final_state * R_state`` has ``dL/dout = R_out`` and ``dL/dstate = R_state``,
so ``backward(R_out, cache, R_state)`` must return the same gradients as perturbing each input, initial
state and parameter by ±ε: ``(L(θ + ε) - L(θ - ε)) / 2ε``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f() / d array by central differences, perturbing ``array`` in place (restored afterwards)."""
    grad = np.zeros(array.shape, dtype=np.float64)
    flat = array.reshape(-1)
    if flat.base is not array and not np.shares_memory(flat, array):
        raise ValueError("numerical_gradient needs an array whose reshape(-1) is a view")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        grad.reshape(-1)[i] = (up - down) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(|a|, |b|, tiny) over all entries."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-12)
    return float(np.abs(a - b).max(initial=0.0) / scale)


def _flatten_state(state) -> list[np.ndarray]:
    if state is None:
        return []
    if isinstance(state, np.ndarray):
        return [state]
    out = []
    for s in state:
        out.extend(_flatten_state(s))
    return out


def _like(state, rng):
    """Random arrays with the structure of ``state`` (tuples / NamedTuples / arrays / None)."""
    if state is None:
        return None
    if isinstance(state, np.ndarray):
        return rng.standard_normal(state.shape)
    parts = [_like(s, rng) for s in state]
    return type(state)(*parts) if hasattr(state, "_fields") else type(state)(parts)


def check_layer(layer, x, lengths=None, state=None, *, seed: int = 0, eps: float = 1e-5,
                check_params: bool = True) -> dict[str, float]:
    """Relative errors of ``dx``, ``dstate0`` and every parameter gradient of ``layer`` (float64).

    ``x`` and the arrays in ``state`` are perturbed in place, so pass float64 copies. Returns a
    mapping ``{"x": err, "state.0": err, "<param>": err, ...}``.
    """
    rng = np.random.default_rng(seed)
    out, final, _ = layer.forward(x, lengths=lengths, state=state)
    r_out = rng.standard_normal(out.shape)
    r_state = _like(final, rng)

    def loss() -> float:
        o, s, _ = layer.forward(x, lengths=lengths, state=state)
        total = float(np.sum(o * r_out))
        for a, r in zip(_flatten_state(s), _flatten_state(r_state)):
            total += float(np.sum(a * r))
        return total

    layer.zero_grad()
    _, _, cache = layer.forward(x, lengths=lengths, state=state)
    dx, dstate0 = layer.backward(r_out, cache, r_state)
    errors = {}
    if dx is not None and np.issubdtype(np.asarray(x).dtype, np.floating):
        errors["x"] = relative_error(dx, numerical_gradient(loss, x, eps))
    for i, (s, ds) in enumerate(zip(_flatten_state(state), _flatten_state(dstate0))):
        errors[f"state.{i}"] = relative_error(ds, numerical_gradient(loss, s, eps))
    if check_params:
        for key, p in layer.params.items():
            errors[key] = relative_error(layer.grads[key], numerical_gradient(loss, p, eps))
    return errors
