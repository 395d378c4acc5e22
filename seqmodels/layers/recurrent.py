"""The one time loop: :class:`Recurrent` runs any cell over a batch of variable-length sequences.

Forward, for a batch sorted by length (longest first) so that the sequences still running at step t
are the first ``n_t`` rows::

    G[t] = (W_x x<t> + b) * gate_scale  for all t at once: one GEMM before the loop
    cell.forward_loop: for t = 0 .. T-1, step t on the first n_t rows (only a<t-1> @ W_aᵀ per step)

``gate_scale`` halves the sigmoid gates' inputs (exact), see :meth:`seqmodels.cells.base.Cell.gate_scale`.

Backward (``cell.backward_loop``) runs the loop in reverse, writing each step's pre-activation
gradients into ``dz[t]``; the
input gradient ``dx = dz W_x``, ``dW_x = Σ dzᵀ x`` and the recurrent weight gradients are each one
GEMM after the loop. A sequence that has ended keeps its state untouched, which makes its final state
the state at its own last step; padded outputs are zero and padded positions never reach a gradient.
``reverse=True`` reads every sequence backwards within its own length (the backward half of a
bidirectional layer).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

from ..cells.base import Cell
from ..core import accel, blas, workspace
from ..core.errors import ConfigError, ShapeError
from ..core.init import as_generator, init_recurrent_block
from ..core.params import ParamDict
from ..core.scatter import scatter_add_rows
from .base import Layer, check_lengths, check_sequence, check_state_array, resolve_dtype


class LSTMState(NamedTuple):
    """State of an LSTM: hidden ``a`` and cell ``c``, each (B, H)."""

    a: np.ndarray
    c: np.ndarray


class RecurrentCache(NamedTuple):
    order: np.ndarray        # batch row i of the sorted batch is row order[i] of the input
    tidx: np.ndarray | None  # (T, B) time index read at step t (reverse within length), None = identity
    lengths: np.ndarray      # sorted lengths
    sizes: np.ndarray        # n_t: rows still running at step t
    x: np.ndarray            # (T_run, B, D) sorted, time-major input
    buf: object              # the cell's buffers
    steps: int               # T of the input
    run: int                 # T_run = longest length
    embedding: np.ndarray | None = None   # (V, D) when the input was ids of this embedding (folded in)


class Recurrent(Layer):
    """A recurrent layer: ``cell`` unrolled over time with lengths, reverse and BPTT.

    Use the named subclasses :class:`RNN`, :class:`GRU` and :class:`LSTM`.
    """

    kind = "recurrent"

    def __init__(self, cell: Cell, *, dtype=np.float32, seed=None, init: str = "default",
                 init_scale: float = 1.0, reverse: bool = False):
        super().__init__()
        self.cell = cell
        self.dtype = resolve_dtype(dtype)
        self.reverse = bool(reverse)
        self.input_size = cell.input_size
        self.hidden_size = cell.hidden_size
        H, D, G = cell.hidden_size, cell.input_size, cell.num_gates
        rng = as_generator(seed)
        self._W = np.concatenate(
            [init_recurrent_block(rng, init, H, D, self.dtype, init_scale) for _ in range(G)], axis=0)
        self._b = np.zeros(G * H, dtype=self.dtype)
        self._dW = np.zeros_like(self._W)
        self._db = np.zeros_like(self._b)
        extra = {k: np.zeros(s, dtype=self.dtype) for k, s in cell.extra_params().items()}
        dextra = {k: np.zeros_like(v) for k, v in extra.items()}
        cell.bind(self._W, self._b, extra, self._dW, self._db, dextra)
        params, grads = {}, {}
        for gate in cell.gates:
            rows = cell.block(gate)
            params[f"W_{gate}"], grads[f"W_{gate}"] = self._W[rows], self._dW[rows]
        for gate in cell.gates:
            rows = cell.block(gate)
            params[f"b_{gate}"], grads[f"b_{gate}"] = self._b[rows], self._db[rows]
        params.update(extra)
        grads.update(dextra)
        self.params, self.grads = ParamDict(params), ParamDict(grads)

    # ------------------------------------------------------------------ views
    @property
    def W_h(self) -> np.ndarray:
        """The recurrent half of the fused weight, ``W[:, :H]`` (a view)."""
        return self._W[:, : self.hidden_size]

    @property
    def W_x(self) -> np.ndarray:
        """The input half of the fused weight, ``W[:, H:]`` (a view)."""
        return self._W[:, self.hidden_size:]

    def input_weights(self):
        """``W_xᵀ`` (D, G*H) and ``b`` scaled by the cell's ``gate_scale`` (sigmoid gates halved, exactly),
        as the time loops read the input half of every gate."""
        scale = self.cell.gate_scale(self.dtype)
        if scale is None:
            return self.W_x.T, self._b
        W_xT = workspace.transposed(self.W_x)
        W_xT *= scale
        return W_xT, self._b * scale

    def config(self) -> dict:
        """Constructor arguments (JSON-able) that rebuild this layer's shape."""
        raise NotImplementedError

    def make_reverse(self, seed=None) -> "Recurrent":
        """A new, independently initialised layer of the same configuration reading time backwards."""
        cfg = dict(self.config(), reverse=not self.reverse)
        return type(self)(**cfg, dtype=self.dtype, seed=seed)

    # ---------------------------------------------------------------- helpers
    def zero_state(self, batch: int):
        z = np.zeros((batch, self.hidden_size), dtype=self.dtype)
        return LSTMState(z, z.copy()) if len(self.cell.state_names) == 2 else z

    def split_state(self, state, batch: int, name: str) -> tuple:
        """State (batch-first) -> tuple of (B, H) arrays in ``cell.state_names`` order."""
        names = self.cell.state_names
        if state is None:
            return tuple(None for _ in names)
        if len(names) == 1:
            if isinstance(state, tuple):
                raise ShapeError(f"{name}: expected one (B, H) array for a {type(self).__name__}, got a tuple")
            return (check_state_array(state, batch, self.hidden_size, self.dtype, name),)
        if not isinstance(state, tuple) or len(state) != 2:
            raise ShapeError(f"{name}: expected an (a, c) pair (LSTMState) for an LSTM, got {type(state).__name__}")
        return tuple(None if s is None else check_state_array(s, batch, self.hidden_size, self.dtype,
                                                               f"{name}.{n}")
                     for s, n in zip(state, names))

    def join_state(self, parts):
        return LSTMState(*parts) if len(parts) == 2 else parts[0]

    @staticmethod
    def _time_index(lengths: np.ndarray, steps: int) -> np.ndarray:
        """(T, B): time read at step t — len-1-t within the length, t itself in the padding."""
        t = np.arange(steps)[:, None]
        return np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)

    # ---------------------------------------------------------------- forward
    def forward(self, x, lengths=None, state=None, *, embedding: np.ndarray | None = None):
        """Run the layer over a batch.

        Args:
            x: (B, T, D) inputs, or (B, T) integer ids meaning one-hot vectors of size D: the product
                ``W_x o<w>`` is then the column lookup ``W_x[:, w]`` (no one-hot array is built).
            lengths: (B,) ints in [0, T], or None for all T.
            state: initial state (B, H) — for an LSTM an ``(a, c)`` pair — or None for zeros.
            embedding: (V, D): ``x`` are ids of its rows, folded into the input product — ``W_x E[w]``
                is row w of the (V, G*H) table ``E W_xᵀ``, built once per call instead of a product per
                position (cheaper whenever V < B*T); :meth:`backward` then returns the gradient w.r.t.
                ``embedding`` in place of ``dx``.

        Returns:
            out (B, T, H) — zero past each length —, the final state (each row's state at its own last
            step), and the cache for :meth:`backward`.
        """
        cache = self.begin(x, lengths, state, embedding)
        self.run(cache)
        return self.output(cache), self.final_state(cache), cache

    # The phases of forward and backward, in order; :mod:`seqmodels.layers.pipeline` calls them one
    # time slice at a time to run stacked layers side by side.
    def begin(self, x, lengths=None, state=None, embedding=None) -> RecurrentCache:
        """Check the input, sort the batch by length, time-major input and buffers with the initial state."""
        onehot = is_token_ids(x)
        if embedding is not None:
            embedding = np.asarray(embedding, dtype=self.dtype)
            if not onehot or embedding.ndim != 2 or embedding.shape[1] != self.input_size:
                raise ShapeError(f"embedding: expected (B, T) ids of a (V, {self.input_size}) table, got x of "
                                 f"shape {np.shape(x)} and a table of shape {embedding.shape}")
        x = self._check_ids(x, embedding) if onehot else check_sequence(x, self.input_size, self.dtype)
        B, T = x.shape[:2]
        lengths = check_lengths(lengths, B, T)
        order = np.argsort(-lengths, kind="stable")
        slen = lengths[order]
        run = int(slen[0]) if B else 0
        sizes = np.searchsorted(-slen, -np.arange(run), side="left")   # n_t = #{len > t}
        if self.reverse:
            tidx = self._time_index(slen, T)[:run]
            xs = x[order[None, :], tidx]                                # (run, B, D) or (run, B) ids
        else:
            tidx = None
            xs = _time_major(x, order, run)                             # (run, B, D), one copy
        return self._with_buffers(RecurrentCache(order, tidx, slen, sizes, xs, None, T, run, embedding), state)

    def begin_above(self, below: RecurrentCache, xs: np.ndarray, state=None) -> RecurrentCache:
        """:meth:`begin` for a layer stacked on a forward layer whose run is ``below``: the same batch order
        and lengths, the input ``xs`` (run, B, D) already time-major (its outputs, filled in later)."""
        if self.reverse or below.tidx is not None:
            raise ConfigError("begin_above: both layers must read time forwards")
        return self._with_buffers(below._replace(x=xs, buf=None, embedding=None), state)

    def _with_buffers(self, cache: RecurrentCache, state) -> RecurrentCache:
        B, run, cell = cache.order.shape[0], cache.run, self.cell
        buf = cell.alloc(run, B, self.dtype, full=_all_run(cache))
        for name, s0 in zip(cell.state_names, self.split_state(state, B, "state")):
            if s0 is not None:
                getattr(buf, name)[0] = s0[cache.order]
        return cache._replace(buf=buf)

    def run(self, cache: RecurrentCache) -> None:
        """The input projection and the time loop over the whole run (fills ``cache.buf``)."""
        if cache.run:
            self.project(cache, *self.projection(cache.embedding), 0, cache.run)
            with blas.blas_threads(blas.step_threads()):
                self.cell.forward_loop(cache.buf, self.W_h, cache.sizes)

    def projection(self, embedding=None) -> tuple:
        """``(W_xᵀ, b)`` as :meth:`project` reads them (scaled, see :meth:`input_weights`); with an embedding
        folded in, ``(E W_xᵀ + b, None)``: the bias added once per vocabulary row, not once per position."""
        W_xT, b = self.input_weights()
        if embedding is None:
            return W_xT, b
        table = embedding @ W_xT
        table += b
        return table, None

    def project(self, cache: RecurrentCache, W_xT, b, t0: int, t1: int) -> None:
        """``G[t] = W_x x<t> + b`` (scaled) for steps [t0, t1): one GEMM, or a row lookup for ids (``b`` None:
        already in the rows looked up)."""
        xs = cache.x[t0:t1]
        G = cache.buf.G[t0:t1].reshape(xs.shape[0] * xs.shape[1], -1)
        if xs.ndim == 2:
            # W_x o<w> = column w of W_x; the ids were range-checked, and mode="raise" would copy
            # ``out`` through a fresh temporary (3-12 ms a call at char-128 sizes, page faults included)
            np.take(W_xT, xs.reshape(-1), axis=0, out=G, mode="clip")
            if b is not None:
                G += b
        else:                                                            # W_x x<t> + b for all t: one GEMM
            accel.matmul(xs.reshape(G.shape[0], -1), W_xT, out=G, bias=b)

    def output(self, cache: RecurrentCache) -> np.ndarray:
        """(B, T, H) outputs in the caller's order, zero past each length."""
        order, tidx, run, T = cache.order, cache.tidx, cache.run, cache.steps
        full = _all_run(cache) and run == T
        out = (workspace.empty if full else workspace.zeros)((order.shape[0], T, self.hidden_size), self.dtype)
        if run:
            a_run = cache.buf.a[1:]
            if self.reverse:
                out[order[None, :], tidx] = a_run
            else:
                out[order, :run] = a_run.transpose(1, 0, 2)
        return out

    def final_state(self, cache: RecurrentCache):
        """Each row's state at its own last step, in the caller's order."""
        order, B = cache.order, cache.order.shape[0]
        cols = np.arange(B)
        final = []
        for name in self.cell.state_names:
            s = np.empty((B, self.hidden_size), dtype=self.dtype)
            s[order] = getattr(cache.buf, name)[cache.lengths, cols]    # state at each row's last step
            final.append(s)
        return self.join_state(final)

    # --------------------------------------------------------------- backward
    def backward(self, dout, cache: RecurrentCache, dstate=None):
        """Backpropagation through time; accumulates into ``grads``.

        Args:
            dout: (B, T, H) gradient w.r.t. the outputs (None for zeros; padded positions ignored).
            dstate: gradient w.r.t. the final state (same structure as the state), or None.

        Returns:
            dx (B, T, D) and the gradient w.r.t. the initial state.
        """
        carry = self.carry(cache, dstate)
        dz = self.gate_grads(cache)
        sums = self.run_backward(cache, carry, self.time_major_grad(dout, cache), dz)
        return self.input_grad(cache, dz, sums), self.initial_grad(cache, carry)

    def run_backward(self, cache: RecurrentCache, carry: list, dout_t, dz: np.ndarray):
        """The backward loop over the whole run (``dout_t``: time-major, see :meth:`time_major_grad`) and the
        weight gradients; returns :meth:`weight_grads`' token sums."""
        if not cache.run:
            return None
        with blas.blas_threads(blas.step_threads()):
            self.cell.backward_loop(cache.buf, self.W_h, cache.sizes, carry, dout_t, dz)
        return self.weight_grads(cache, dz)

    def carry(self, cache: RecurrentCache, dstate=None) -> list:
        """The carried state gradients (sorted rows), starting from ``dstate``."""
        B, H = cache.order.shape[0], self.hidden_size
        carry = []
        for part in self.split_state(dstate, B, "dstate"):
            carry.append(np.zeros((B, H), self.dtype) if part is None else part[cache.order].astype(self.dtype))
        return carry

    def gate_grads(self, cache: RecurrentCache) -> np.ndarray:
        """The buffer (run, B, G*H) the backward loop writes the pre-activation gradients into."""
        return workspace.empty((cache.run, cache.order.shape[0], self.cell.num_gates * self.hidden_size),
                               self.dtype)

    def time_major_grad(self, dout, cache: RecurrentCache):
        """``dout`` (B, T, H) checked, sorted and time-major as the backward loop reads it (None stays None)."""
        if dout is None:
            return None
        B, T, H = cache.order.shape[0], cache.steps, self.hidden_size
        dout = np.asarray(dout, dtype=self.dtype)
        if dout.shape != (B, T, H):
            raise ShapeError(f"dout: expected shape {(B, T, H)}, got {dout.shape}")
        if self.reverse:
            return dout[cache.order[None, :], cache.tidx]
        return _time_major(dout, cache.order, cache.run)                # (run, B, H), one copy

    def weight_grads(self, cache: RecurrentCache, dz: np.ndarray):
        """Accumulate ``dW_x``, ``db`` and the recurrent weights' gradients from the gate gradients.

        Returns the per-token sums of ``dz`` when an embedding was folded in (for :meth:`input_grad`)."""
        self.state_weight_grads(cache, dz)
        return self.input_weight_grads(cache, dz)

    def input_weight_grads(self, cache: RecurrentCache, dz: np.ndarray):
        """``dW_x`` (the part of :meth:`weight_grads` that reads the input); returns the token sums or None."""
        H, xs, embedding = self.hidden_size, cache.x, cache.embedding
        flat = dz.reshape(-1, dz.shape[-1])
        if embedding is not None:
            sums = np.zeros((embedding.shape[0], flat.shape[1]), dtype=self.dtype)
            scatter_add_rows(sums, xs.reshape(-1), flat)                 # S[w] = Σ dz<t> over x<t> = w
            accel.gemm_add(self._dW[:, H:], sums.T, embedding)           # Σ dz<t> E[w]ᵀ
            return sums
        if xs.ndim == 2:
            scatter_add_rows(self._dW[:, H:].T, xs.reshape(-1), flat)   # into the columns used
        else:
            accel.gemm_add(self._dW[:, H:], flat.T, xs.reshape(flat.shape[0], -1))   # Σ_t dz<t> x<t>ᵀ
        return None

    def state_weight_grads(self, cache: RecurrentCache, dz: np.ndarray) -> None:
        """``db`` and the recurrent weights' gradients (the rest of :meth:`weight_grads`)."""
        self._db += dz.reshape(-1, dz.shape[-1]).sum(axis=0)
        self.cell.recurrent_grads(cache.buf, dz, cache.run)

    def input_grad(self, cache: RecurrentCache, dz: np.ndarray, sums=None):
        """dx (B, T, D) — with an embedding folded in, the gradient w.r.t. it instead (from the token sums
        :meth:`weight_grads` returned) —, None for one-hot ids."""
        if cache.embedding is not None:
            return np.zeros_like(cache.embedding) if sums is None else sums @ self.W_x   # dE[w] = W_xᵀ S[w]
        if cache.x.ndim == 2:
            return None
        order, tidx, run, T = cache.order, cache.tidx, cache.run, cache.steps
        B = order.shape[0]
        full = run == T and _all_run(cache)                             # dx written everywhere below
        dx = (workspace.empty if full else workspace.zeros)((B, T, self.input_size), self.dtype)
        if run:
            dxs = self.time_major_input_grad(cache, dz)
            if self.reverse:
                dx[order[None, :], tidx] = dxs
            else:
                dx[order, :run] = dxs.transpose(1, 0, 2)
        return dx

    def time_major_input_grad(self, cache: RecurrentCache, dz: np.ndarray) -> np.ndarray:
        """``dz W_x``: the input gradient (run, B, D) in the loops' order (sorted rows, time-major)."""
        run, B = cache.run, cache.order.shape[0]
        return accel.matmul(dz.reshape(run * B, -1), self.W_x,
                            out=workspace.empty((run * B, self.input_size), self.dtype)).reshape(run, B, -1)

    def initial_grad(self, cache: RecurrentCache, carry: list):
        """The gradient w.r.t. the initial state, in the caller's order."""
        d0 = []
        for c in carry:
            s = np.empty_like(c)
            s[cache.order] = c
            d0.append(s)
        return self.join_state(d0)

    def _check_ids(self, ids, embedding=None) -> np.ndarray:
        ids = np.asarray(ids)
        V = self.input_size if embedding is None else embedding.shape[0]
        if ids.size and (ids.min() < 0 or ids.max() >= V):
            bad = ids[(ids < 0) | (ids >= V)][0]
            what = "one-hot vectors" if embedding is None else "the rows of the embedding"
            raise ShapeError(f"x: token ids index {what} of size {V}; got id {int(bad)}")
        return ids.astype(np.intp, copy=False)

    # ------------------------------------------------------------- one step
    def step(self, x_t, state=None):
        """One time step for generation: x_t (B, D) — or (B,) ids, one-hot — and the state -> new state.

        Forward only (no cache), for feeding samples back one at a time; no buffer is zero-filled and,
        at batch 1, the products are matrix-vector products (see :func:`seqmodels.cells.base.recur`).
        A loop of many steps over one batch runs faster in a :class:`~seqmodels.layers.stepper.Stepper`.
        """
        cell = self.cell
        onehot = is_token_ids(x_t)
        x_t = self._check_ids(x_t) if onehot else np.asarray(x_t, dtype=self.dtype)
        B = x_t.shape[0]
        buf = step_buffers(self, state, B)
        W_h = self.W_h
        if onehot:
            z = self.W_x.T[x_t]                                           # W_x o<w> = column w of W_x
        elif B == 1 and cell.whole_product_step:
            z = np.matmul(self._W, np.concatenate([buf.a[0, 0], x_t[0]]))[None]   # W [a; x]: one pass
            W_h = None                                                    # (W_h a is in z already)
        elif B == 1:
            z = np.matmul(self.W_x, x_t[0])[None]                         # matrix-vector: one pass over W_x
        else:
            z = x_t @ self.W_x.T
        z += self._b
        buf.G = z[None]
        cell.step(0, B, buf, W_h)
        return self.join_state([getattr(buf, name)[1] for name in cell.state_names])

    def input_table(self, embedding: np.ndarray | None = None, *, scaled: bool = False) -> np.ndarray:
        """``W_x x + b`` for every token of a vocabulary at once: (V, G*H).

        ``embedding`` (V, D) gives the input vector of each token; ``None`` means one-hot input over
        ``input_size`` tokens (the table is then ``W_xᵀ + b``). Row w is exactly what the layer adds
        for token w at every step, so a generator that feeds back token ids can look the whole input
        projection up instead of multiplying by W_x. ``scaled``: with the sigmoid gates halved, as the
        time loops read it (:meth:`input_weights`).
        """
        W_xT, b = self.input_weights() if scaled else (self.W_x.T, self._b)
        if embedding is None:
            return W_xT + b
        E = np.asarray(embedding, dtype=self.dtype)
        if E.ndim != 2 or E.shape[1] != self.input_size:
            raise ShapeError(f"input_table: embedding must be (V, {self.input_size}), got {E.shape}")
        return E @ W_xT + b


def step_buffers(layer: Recurrent, state, B: int) -> SimpleNamespace:
    """The cell's buffers for one step at batch B: each state (2, B, H) with slot 0 = ``state`` (or 0)."""
    buf = SimpleNamespace()
    for name, s0 in zip(layer.cell.state_names, layer.split_state(state, B, "state")):
        arr = np.empty((2, B, layer.hidden_size), dtype=layer.dtype)
        arr[0] = 0.0 if s0 is None else s0
        setattr(buf, name, arr)
    for name in layer.cell.extra_buffers:
        setattr(buf, name, np.empty((1, B, layer.hidden_size), dtype=layer.dtype))
    return buf


def _time_major(x: np.ndarray, order: np.ndarray, run: int) -> np.ndarray:
    """``x[order, :run]`` time-major, (run, B, ...) C-contiguous (one transposing copy when ``order`` is
    the identity, as for equal lengths; else a gather first — both ~2x faster than ``np.take`` along
    the strided batch axis)."""
    out = workspace.empty((run, order.shape[0]) + x.shape[2:], x.dtype)
    same = order.shape[0] == x.shape[0] and bool((order == np.arange(order.shape[0])).all())
    np.copyto(out, (x[:, :run] if same else x[order, :run]).swapaxes(0, 1))
    return out


def _all_run(cache: RecurrentCache) -> bool:
    """Every row runs every step of the run (equal lengths): buffers need no zeroing."""
    return cache.run == 0 or int(cache.sizes[-1]) == cache.order.shape[0]


def is_token_ids(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype.kind in "iu" and x.ndim in (1, 2)
