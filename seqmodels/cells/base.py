"""What a recurrent cell provides to the one time loop in :mod:`seqmodels.layers.recurrent`.

A cell owns one fused weight ``W`` of shape ``(G*H, H + D)`` — its G gate blocks stacked, each acting on
``[a<t-1>; x<t>]`` — and a fused bias ``b`` ``(G*H,)``; the notes' names (``W_u``, ``b_u``, ...) are views.
The loop computes ``W_x x<t> + b`` for every step in one GEMM into the gate buffer ``G`` and calls:

- ``forward_loop(buf, W_h, sizes, packed=None)``: every step t = 0 .. T-1 for the first ``n_t = sizes[t]``
  rows, leaving the post-activation gates in ``buf.G`` and the states in ``buf.<state>[1:]``; ``packed``
  is what ``pack(W_h)`` returns (the per-step weights laid out for the loop), made once by a caller that
  runs many short loops (generation) instead of once per call;
- ``backward_loop(buf, W_h, sizes, carry, dout_t, dz)``: every step backwards, turning the carried
  state gradients (in place, ``carry``) into the pre-activation gradients ``dz`` (T, B, G*H);
- ``recurrent_grads(buf, dz_all, steps)``: after the loop, the gradients of the recurrent weights
  (and of anything else that is not ``W_x`` or ``b``) from whole-sequence buffers, in one GEMM.

The loops are written once per cell, for NumPy (vectorised over the batch, no allocation per step);
when the optional accelerator is installed (``pip install seqmodels[fast]``, see
:mod:`seqmodels.cells.fast`) the same loops run as compiled kernels instead. The plain per-step
functions ``step(t, n, buf, W_h)`` and ``step_back(t, n, buf, W_h, dstate, dz)`` stay: they are the
equations one step at a time (used for generation and by the diagnostics), and the loops are tested
against them.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

from ..core import workspace
from . import fast


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """σ(x) = (1 + tanh(x/2)) / 2 in place: stable for any x, no overflow warnings."""
    x *= 0.5
    np.tanh(x, out=x)
    x += 1.0
    x *= 0.5
    return x


def dsigmoid(s: np.ndarray) -> np.ndarray:
    """σ'(z) from s = σ(z): s (1 - s)."""
    return s * (1.0 - s)


def dtanh(t: np.ndarray) -> np.ndarray:
    """tanh'(z) from t = tanh(z): 1 - t²."""
    return 1.0 - t * t


def recur(a_prev: np.ndarray, W_h: np.ndarray | None):
    """``a<t-1> @ W_hᵀ`` (n, G*H); for one row as the matrix-vector product ``W_h a`` (about 1.5x faster
    at batch 1, the case of sampling one sequence). ``W_h=None`` means the caller already added it
    (one product over the whole fused ``W [a; x]``): returns 0."""
    if W_h is None:
        return 0.0
    if a_prev.shape[0] == 1:
        return np.matmul(W_h, a_prev[0])[None]
    return a_prev @ W_h.T


class TransposedRows(NamedTuple):
    """``Wᵀ`` with its first ``halve`` columns halved, not copied yet: the compiled loops pack it straight
    from the rows of ``W`` (:func:`seqmodels.cells.fast_gemm.operand_of_rows`), one pass instead of the
    transposing copy and the packing."""

    W: np.ndarray
    halve: int = 0

    @property
    def shape(self) -> tuple:
        return self.W.shape[::-1]

    @property
    def dtype(self) -> np.dtype:
        return self.W.dtype


def packed_transpose(W_h: np.ndarray, halve: int = 0, lazy: bool = False):
    """``W_hᵀ`` as a C-contiguous (H, G*H) copy, its first ``halve`` columns halved (exact: a power of 2).

    ``a @ W_hᵀ`` with a contiguous right operand runs OpenBLAS's fastest path for the small per-step
    GEMM (about 1.4x the rate with the transposed view). Halving the sigmoid gates' columns makes the
    product ``z/2`` for them, so ``σ(z) = (1 + tanh(z/2)) / 2`` needs one ``tanh`` over all gates at
    once and no separate scaling pass. ``lazy``: a :class:`TransposedRows` for the compiled loops instead.
    """
    if lazy:
        return TransposedRows(W_h, halve)
    out = workspace.transposed(W_h)
    if halve:
        out[:, :halve] *= 0.5
    return out


#: bytes of dz per chunk of steps whose δ-independent factors are computed together (stays in L2)
CHUNK_BYTES = 1 << 18


def chunks_backwards(steps: int, bytes_per_step: int):
    """(t0, t1) ranges covering [0, steps) from the end, each about CHUNK_BYTES of one buffer.

    Element-wise work over a chunk of steps is one NumPy call instead of one per step, while the
    chunk stays in the cache for the per-step loop that follows.
    """
    size = max(1, CHUNK_BYTES // max(bytes_per_step, 1))
    t1 = steps
    while t1 > 0:
        t0 = max(0, t1 - size)
        yield t0, t1
        t1 = t0


def zero_padded_rows(dz: np.ndarray, sizes: np.ndarray) -> None:
    """``dz[t, n_t:] = 0``: rows that had finished at step t must not reach the weight gradients."""
    B = dz.shape[1]
    for t in np.flatnonzero(sizes < B):
        dz[t, sizes[t]:] = 0


class Cell:
    """Base of the cells: fused parameter layout, buffer allocation and the reference loops."""

    #: gate blocks in the fused matrix, top to bottom; sigmoid gates first, the tanh candidate last
    gates: tuple[str, ...] = ()
    #: names of the state components (``("a",)`` or ``("a", "c")``)
    state_names: tuple[str, ...] = ("a",)
    #: extra per-step buffers (T, B, H) besides the gates and states
    extra_buffers: tuple[str, ...] = ()

    def __init__(self, input_size: int, hidden_size: int):
        self.input_size = input_size
        self.hidden_size = hidden_size

    @property
    def num_gates(self) -> int:
        return len(self.gates)

    def extra_params(self) -> dict[str, tuple[int, ...]]:
        """Parameters besides the fused W and b (peepholes, reset-after bias): name -> shape."""
        return {}

    def bind(self, W: np.ndarray, b: np.ndarray, extra: dict[str, np.ndarray],
             dW: np.ndarray, db: np.ndarray, dextra: dict[str, np.ndarray]) -> None:
        """Remember the arrays the step functions read (params) and accumulate into (grads)."""
        self.W, self.b, self.P = W, b, extra
        self.dW, self.db, self.dP = dW, db, dextra

    def alloc(self, steps: int, batch: int, dtype, full: bool = False) -> SimpleNamespace:
        """Buffers: gates G (T, B, G*H) uninitialised, states (T+1, B, H) and extras (T, B, H) zeroed
        (on recycled memory: see :mod:`seqmodels.core.workspace`). ``full``: every row runs every step,
        so the loops write every entry after the initial state — only that one is zeroed."""
        H = self.hidden_size
        make = workspace.empty if full else workspace.zeros
        buf = SimpleNamespace(G=workspace.empty((steps, batch, self.num_gates * H), dtype))
        for name in self.state_names:
            s = make((steps + 1, batch, H), dtype)
            if full:
                s[0] = 0.0
            setattr(buf, name, s)
        for name in self.extra_buffers:
            setattr(buf, name, make((steps, batch, H), dtype))
        return buf

    def time_slice(self, buf, t0: int, t1: int, memo: dict | None = None) -> SimpleNamespace:
        """Views of ``buf`` for steps [t0, t1): the loops run on it as on a whole sequence (states keep
        their extra leading step). ``memo`` (``{"steps": run}``, one dict per loop over the run) lets the
        compiled loops pack the weights once for all the slices of that run."""
        out = SimpleNamespace(G=buf.G[t0:t1], memo=memo)
        for name in self.state_names:
            setattr(out, name, getattr(buf, name)[t0:t1 + 1])
        for name in self.extra_buffers:
            setattr(out, name, getattr(buf, name)[t0:t1])
        return out

    #: number of leading gate blocks that are sigmoid gates (their inputs arrive halved, see forward_loop)
    sigmoid_gates: int = 0
    #: True when ``step`` needs ``W_h a<t-1>`` only as one term added to all gates (so the caller may
    #: compute ``W [a; x]`` in one product and pass ``W_h=None``)
    whole_product_step: bool = True

    def gate_scale(self, dtype) -> np.ndarray | None:
        """(G*H,) factors for ``W_x x + b`` before :meth:`forward_loop`: 1/2 on the sigmoid gates, else 1.

        Halving is exact (a power of two), so folding it into the input projection's weights costs
        nothing and lets the loop take ``σ(z) = (1 + tanh(z/2)) / 2`` with one ``tanh`` for all gates.
        """
        if not self.sigmoid_gates:
            return None
        scale = np.ones(self.num_gates * self.hidden_size, dtype=dtype)
        scale[:self.sigmoid_gates * self.hidden_size] = 0.5
        return scale

    def block(self, name: str) -> slice:
        """Rows of gate ``name`` in the fused matrix."""
        i = self.gates.index(name)
        H = self.hidden_size
        return slice(i * H, (i + 1) * H)

    # ----------------------------------------------------------- reference loops (one step at a time)
    def pack(self, W_h: np.ndarray, lazy: bool = False) -> tuple:
        """The recurrent weights as :meth:`forward_loop` reads them (default: ``W_h`` as it is); ``lazy``:
        the transposes as :class:`TransposedRows`, for the compiled loops alone (see :meth:`packed_for`)."""
        return (W_h,)

    def packed_for(self, W_h: np.ndarray, dtype) -> tuple:
        """:meth:`pack` for a loop over arrays of ``dtype``: lazy when the compiled loops will run it."""
        return self.pack(W_h, lazy=fast.compiled(dtype) is not None)

    def forward_loop(self, buf, W_h: np.ndarray, sizes: np.ndarray, packed: tuple | None = None) -> None:
        """All steps forward; ``buf.G`` holds ``(W_x x<t> + b) * gate_scale`` on entry.

        This reference version runs ``step(t, n_t)`` for t = 0 .. T-1 after undoing the scale; the
        cells override it with loops that use the halved inputs directly.
        """
        if packed is not None:
            (W_h,) = packed
        scale = self.gate_scale(buf.G.dtype)
        if scale is not None:
            buf.G /= scale
        for t in range(sizes.shape[0]):
            self.step(t, int(sizes[t]), buf, W_h)

    def backward_loop(self, buf, W_h: np.ndarray, sizes: np.ndarray, carry: list, dout_t, dz: np.ndarray) -> None:
        """All steps backwards with ``step_back``; ``carry`` (B, H) arrays are updated in place.

        ``carry`` holds the gradient w.r.t. the final state on entry and w.r.t. the initial state on
        exit; ``dout_t`` (T, B, H) is added to the gradient of ``a<t>`` (None: no output gradient).
        """
        dz[...] = 0
        for t in range(sizes.shape[0] - 1, -1, -1):
            n = int(sizes[t])
            d = [c[:n] for c in carry]
            if dout_t is not None:
                d[0] = d[0] + dout_t[t, :n]
            new = self.step_back(t, n, buf, W_h, d, dz[t, :n])
            for c, v in zip(carry, new):
                c[:n] = v
