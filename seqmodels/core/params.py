"""Named parameter mappings shared by every layer, optimiser, clipper, checkpoint and gradient check.

A layer's ``params`` and ``grads`` are :class:`ParamDict` objects: ordered mappings from a name
(``W_f``; dotted for composites: ``layers.0.forward.W_f``) to an ndarray. The arrays are often views
into one fused weight matrix, so every write goes *into* the existing array: ``params["W_f"] = w``
copies ``w`` in (with a shape check) instead of rebinding the key, and optimisers update in place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from .errors import ShapeError


class ParamDict(Mapping):
    """An ordered name -> ndarray mapping whose item assignment writes in place."""

    __slots__ = ("_arrays",)

    def __init__(self, arrays: Mapping[str, np.ndarray] | None = None):
        self._arrays: dict[str, np.ndarray] = dict(arrays or {})

    def __getitem__(self, key: str) -> np.ndarray:
        return self._arrays[key]

    def __setitem__(self, key: str, value) -> None:
        if key not in self._arrays:
            raise KeyError(f"no parameter named {key!r}; known: {', '.join(self._arrays)}")
        target = self._arrays[key]
        value = np.asarray(value)
        if value.shape != target.shape:
            raise ShapeError(f"params[{key!r}]: expected shape {target.shape}, got {value.shape}")
        target[...] = value

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}: {v.shape}" for k, v in self._arrays.items())
        return f"ParamDict({inner})"

    @classmethod
    def merged(cls, children: Mapping[str, Mapping[str, np.ndarray]]) -> "ParamDict":
        """Join children's mappings under dotted prefixes: ``{"forward": {"W": ..}}`` -> ``forward.W``."""
        out: dict[str, np.ndarray] = {}
        for prefix, mapping in children.items():
            for key, arr in mapping.items():
                out[f"{prefix}.{key}"] = arr
        return cls(out)


def num_parameters(params: Mapping[str, np.ndarray]) -> int:
    """Total number of scalars in a parameter mapping."""
    return int(sum(p.size for p in params.values()))


def global_norm(arrays: Mapping[str, np.ndarray]) -> float:
    """sqrt(sum of squares) over every array (the norm that global clipping uses)."""
    total = 0.0
    for a in arrays.values():
        flat = a.reshape(-1)
        total += float(np.dot(flat, flat))
    return float(np.sqrt(total))
