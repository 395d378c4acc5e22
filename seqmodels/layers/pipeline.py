"""Stacked recurrent layers handed over time-major: one after another, or side by side on the cores.

Layer l at step t reads layer l-1's output at step t and its own state at step t-1, nothing else. Cut
the time axis into K chunks and layer l can run chunk k while layer l-1 already runs chunk k+1: a
pipeline. On two cores the time loops of a two-layer stack then take about (K+1)/K of one layer's
loop instead of two layers' — the second core is used even where one layer's loop is too small to
split over cores (below :data:`seqmodels.cells.fast_gemm.SPLIT_MIN_UNITS` hidden units a barrier per
step costs more than it saves; here threads meet once per chunk).

Forward, task (l, k) — layer l, steps [t0, t1) of chunk k — waits until layer l-1 has finished chunk
k, multiplies those outputs by the dropout mask, computes its own input projection
``G = W_x x + b`` for the chunk (one GEMM) and runs its loop over the chunk. Backward runs from the
top layer down and from the last chunk back: task (l, k) waits for layer l+1's gate gradients of
chunk k and turns them into its output gradient ``dz W_x`` (times the mask) before its backward loop
over the chunk, then adds the chunk's share of its weight gradients; the carried state gradients pass
from chunk to chunk within the thread. (Only a bottom layer with an embedding folded in adds its input
weights' gradient after the loops: the embedding's gradient needs the whole sequence's per-token sums.)

Thread j of P runs the layers l ≡ j (mod P), its tasks in order of the wavefront l + k, so a task
only ever waits for one of an earlier wavefront: no deadlock. Threads count finished chunks per layer
(atomic counters and a spin wait with the compiled accelerator, a condition variable without it). The
results are the layer-by-layer results: the same products, the same order of operations per element
(only the GEMMs' blocking differs, so float32 agrees to rounding; tested against a layer-by-layer walk).

:class:`~seqmodels.layers.stack.Stack` runs every two or more consecutive forward-reading recurrent
layers through :func:`forward` and :func:`backward`: on one thread (``threads=1``) one layer after the
other over the whole run, each layer's loops as :meth:`Recurrent.forward` runs them, the outputs and
their gradients handed over as the loops lay them out (sorted rows, time-major: two transposing copies
less per layer each way than a layer-by-layer walk, whose results they are). Side by side when switched
on: ``SEQMODELS_PIPELINE=on`` or :func:`set_mode("on") <set_mode>`; it then uses
seqmodels' thread count (``accel.threads()``), at least two. Off by default, because it pays only when the second core
is free, and with OpenBLAS on two threads it is not: after each multi-threaded call OpenBLAS's worker
spins on its core for ``2^OPENBLAS_THREAD_TIMEOUT`` cycles (seqmodels sets 24, ~7 ms), and a training
step calls it often enough that the worker held the second core all the time (over 30 char-128 steps
its CPU time equalled the main thread's); the pipeline's second thread was then preempted for 3-4 ms
at a time (step 31.3 ms off, 35.0 on). A shorter timeout frees the core but makes every BLAS call
wake the worker (one-layer char-128 step 12.2 -> 16.6 ms at 2^16). The recipe that pays: NumPy's BLAS
on one thread and the pipeline on two (``python benchmarks/bench_pipeline.py --threads 1``, char-128,
two LSTM layers: forward 13.6 -> 10.7 ms, backward 19.9 -> 16.1, step 35.3 -> 29.7, in
``benchmarks/results/pipeline-s6.txt``; ``bench_train.py --pipeline``: char-128 two layers against
PyTorch on two threads LSTM 1.04x (0.93x with OpenBLAS on two threads), GRU 1.79x (1.69x), tanh RNN
1.50x (1.73x); PTB, whose 10,000-word output layer then runs on one thread, 0.88-1.02x instead of
1.16-1.47x).
"""

from __future__ import annotations

import os
import threading

import numpy as np

from ..cells import fast
from ..core import accel, blas, workspace
from ..core.errors import ConfigError
from .recurrent import Recurrent, RecurrentCache, _time_major

__all__ = ["MODES", "set_mode", "get_mode", "eligible", "threads_for", "chunk_bounds", "forward", "backward"]

MODES = ("off", "on")
_MODE = {"mode": "on" if os.environ.get("SEQMODELS_PIPELINE", "").strip().lower() in ("1", "on", "yes", "true")
         else "off"}

#: chunks a run is cut into, and the fewest steps in one (a chunk costs ~2 thread hand-offs and calls)
CHUNKS = 8
MIN_CHUNK = 4


def set_mode(mode: str) -> str:
    """``"on"`` or ``"off"`` (the default); returns the previous mode."""
    if mode not in MODES:
        raise ConfigError(f"mode: expected one of {', '.join(map(repr, MODES))}, got {mode!r}")
    before, _MODE["mode"] = _MODE["mode"], mode
    return before


def get_mode() -> str:
    return _MODE["mode"]


def eligible(layer) -> bool:
    """A layer the pipeline can run: recurrent and reading time forwards."""
    return isinstance(layer, Recurrent) and not layer.reverse


def threads_for(layers, steps: int) -> int:
    """Threads to run ``layers`` (consecutive stacked layers) over as a pipeline; 1: one after another.

    When on: seqmodels' thread count (``accel.threads()``), at least 2 and at most one per layer, for two or more eligible
    layers over at least two chunks of steps.
    """
    if _MODE["mode"] == "off" or len(layers) < 2 or steps < 2 * MIN_CHUNK or not all(map(eligible, layers)):
        return 1
    return min(max(accel.threads(), 2), len(layers))


def chunk_bounds(steps: int) -> list[int]:
    """``[0, t1, t2, ..., steps]``: CHUNKS chunks of at least MIN_CHUNK steps (the last may be shorter)."""
    size = max(MIN_CHUNK, -(-steps // CHUNKS))
    return list(range(0, steps, size)) + [steps]


class _Stopped(Exception):
    """Another thread of the pipeline failed: this one stops too."""


class _Progress:
    """Chunks finished per layer: counted up by the layer's thread, waited for by the next layer's."""

    def __init__(self, layers: int):
        self.counts = np.zeros(layers + 1, np.int64)        # the last slot: set when a thread failed
        self.error: BaseException | None = None
        self.spin = fast.is_enabled() and fast.available()
        if self.spin:                                       # (numba is there: the compiled counters are)
            from ..core import atomics
            self._wait, self._up = atomics.wait_count, atomics.count_up
        self.cond = threading.Condition()

    def _addr(self, slot: int) -> int:
        return self.counts.ctypes.data + (slot % self.counts.shape[0]) * self.counts.itemsize

    def wait(self, layer: int, chunks: int) -> None:
        if self.spin:
            if not self._wait(self._addr(layer), chunks, self._addr(-1)):
                raise _Stopped
            return
        with self.cond:
            self.cond.wait_for(lambda: self.counts[layer] >= chunks or self.counts[-1])
            if self.counts[layer] < chunks:
                raise _Stopped

    def done(self, layer: int) -> None:
        if self.spin:
            self._up(self._addr(layer))
            return
        with self.cond:
            self.counts[layer] += 1
            self.cond.notify_all()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        if self.spin:
            self._up(self._addr(-1))
            return
        with self.cond:
            self.counts[-1] = 1
            self.cond.notify_all()


def _run(task, layers: int, chunks: int, threads: int) -> None:
    """``task(l, k, progress)`` for every layer l and chunk k, on ``threads`` threads (see the module)."""
    progress = _Progress(layers)

    def worker(j: int) -> None:
        try:
            for wave in range(chunks + layers - 1):
                for l in range(j, layers, threads):
                    k = wave - l
                    if 0 <= k < chunks:
                        task(l, k, progress)
                        progress.done(l)
        except _Stopped:
            pass
        except BaseException as e:            # noqa: BLE001 - handed to the caller below
            progress.fail(e)

    with blas.blas_threads(1):                # each thread's GEMMs on its own core
        accel.on_threads(threads, worker)
    if progress.error is not None:
        raise progress.error


def forward(layers, x, lengths, states, embedding, masks, threads: int):
    """Run ``layers`` (eligible, stacked) over ``x`` as :meth:`Recurrent.forward` one after another would.

    ``states``: initial state per layer (None entries for zeros); ``masks``: per boundary between layers
    (len(layers) - 1) a (B, T, H) inverted-dropout mask for the lower layer's output, or None.
    Returns the top layer's output (B, T, H), the final states, the caches and the time-major masks
    (for :func:`backward`).
    """
    bottom = layers[0].begin(x, lengths, states[0], embedding)
    caches, tmasks = [bottom], []
    for l in range(1, len(layers)):
        below, mask = caches[-1], masks[l - 1]
        if mask is None:
            tmasks.append(None)
            xs = below.buf.a[1:]                                   # its outputs, read as they are written
        else:
            tmasks.append(_time_major(np.asarray(mask, layers[l].dtype), below.order, below.run))
            xs = workspace.empty(below.buf.a[1:].shape, layers[l].dtype)
        caches.append(layers[l].begin_above(below, xs, states[l]))
    run = bottom.run
    if run and threads == 1:                                       # one layer after another, whole runs
        for l, (layer, cache) in enumerate(zip(layers, caches)):
            if l and tmasks[l - 1] is not None:
                np.multiply(caches[l - 1].buf.a[1:], tmasks[l - 1], out=cache.x)
            layer.run(cache)
    elif run:
        bounds = chunk_bounds(run)
        weights = [layer.projection(c.embedding) for layer, c in zip(layers, caches)]
        packed = [layer.cell.packed_for(layer.W_h, layer.dtype) for layer in layers]
        memos = [{"steps": run} for _ in layers]

        def task(l: int, k: int, progress: _Progress) -> None:
            layer, cache = layers[l], caches[l]
            t0, t1 = bounds[k], bounds[k + 1]
            if l:
                progress.wait(l - 1, k + 1)
                if tmasks[l - 1] is not None:
                    np.multiply(caches[l - 1].buf.a[t0 + 1:t1 + 1], tmasks[l - 1][t0:t1], out=cache.x[t0:t1])
            layer.project(cache, *weights[l], t0, t1)
            layer.cell.forward_loop(layer.cell.time_slice(cache.buf, t0, t1, memos[l]), layer.W_h,
                                    cache.sizes[t0:t1], packed[l])

        _run(task, len(layers), len(bounds) - 1, threads)
    finals = [layer.final_state(c) for layer, c in zip(layers, caches)]
    return layers[-1].output(caches[-1]), finals, caches, tmasks


def backward(layers, caches: list[RecurrentCache], dout, dstates, tmasks, threads: int):
    """Backpropagation through ``layers`` run by :func:`forward`; accumulates every layer's gradients.

    Returns the bottom layer's input gradient (as :meth:`Recurrent.backward` returns it) and the
    gradients w.r.t. each layer's initial state.
    """
    L, top = len(layers), len(layers) - 1
    carries = [layer.carry(c, dstates[l]) for l, (layer, c) in enumerate(zip(layers, caches))]
    bottom = caches[0]
    run = bottom.run
    if threads == 1:                                               # one layer after another, whole runs
        d = layers[top].time_major_grad(dout, caches[top])
        for l in range(top, -1, -1):
            layer, cache = layers[l], caches[l]
            dz = None                            # released first, so the workspace can hand its memory out again
            dz = layer.gate_grads(cache)
            sums = layer.run_backward(cache, carries[l], d, dz)
            if l and run:
                d = layer.time_major_input_grad(cache, dz)         # the output gradient of the layer below
                if tmasks[l - 1] is not None:
                    d *= tmasks[l - 1]
        dx = layers[0].input_grad(bottom, dz, sums)
        return dx, [layer.initial_grad(c, carry) for layer, c, carry in zip(layers, caches, carries)]
    dzs = [layer.gate_grads(c) for layer, c in zip(layers, caches)]
    sums = None
    if run:
        douts = [workspace.empty(c.buf.a[1:].shape, layer.dtype) for layer, c in zip(layers[:-1], caches[:-1])]
        douts.append(layers[top].time_major_grad(dout, caches[top]))
        bounds = chunk_bounds(run)
        K = len(bounds) - 1
        memos = [{"steps": run} for _ in layers]

        def task(p: int, k: int, progress: _Progress) -> None:      # p counts layers from the top
            l = top - p
            layer, cache, d = layers[l], caches[l], douts[l]
            t0, t1 = bounds[K - 1 - k], bounds[K - k]
            if p:
                progress.wait(p - 1, k + 1)
                above, dz = layers[l + 1], dzs[l + 1][t0:t1]
                np.matmul(dz.reshape(-1, dz.shape[-1]), above.W_x, out=d[t0:t1].reshape(-1, d.shape[-1]))
                if tmasks[l] is not None:
                    d[t0:t1] *= tmasks[l][t0:t1]                  # through the dropout between them
            part = layer.cell.time_slice(cache.buf, t0, t1, memos[l])
            dz = dzs[l][t0:t1]
            layer.cell.backward_loop(part, layer.W_h, cache.sizes[t0:t1], carries[l],
                                     None if d is None else d[t0:t1], dz)
            # this chunk's share of the weight gradients, on this thread while it is in cache (each
            # layer's gradients are only ever added to by the thread that runs the layer)
            chunk = cache._replace(x=cache.x[t0:t1], buf=part, run=t1 - t0)
            layer.state_weight_grads(chunk, dz)
            if cache.embedding is None:
                layer.input_weight_grads(chunk, dz)

        _run(task, L, K, threads)
        if bottom.embedding is not None:                          # dE needs the whole sequence's token sums
            sums = layers[0].input_weight_grads(bottom, dzs[0])
    dx = layers[0].input_grad(bottom, dzs[0], sums)
    return dx, [layer.initial_grad(c, carry) for layer, c, carry in zip(layers, caches, carries)]
