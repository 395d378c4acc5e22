"""seqmodels' own worker threads, handed work in microseconds.

A thread that sleeps on a lock or a queue (``concurrent.futures``) is woken by the kernel, and on a
virtual machine whose other core is idle that wake-up goes through the hypervisor: 0.1-0.2 ms for each
parallel call, measured on the 2-vCPU benchmark machine — as much as a small GEMM split in two saves.
A :class:`Team` worker instead watches a counter (a compiled loop, without the GIL) for a while after
each task, and only then sleeps on a condition variable: work posted while it watches starts at once.

A sleeping worker woken by the caller is often put on the caller's own core (the scheduler's
"wake-affine" choice: the waker's cache is warm), where the two then take turns until the load balancer
moves one of them — measured: the first three training steps after a pause at 14-22 ms instead of
10. So a worker that wakes up on the core of the thread that woke it moves itself to another core
(:func:`_leave_cpu`: its allowed cores without that one, then all of them again).

Used by :mod:`seqmodels.core.accel` when the compiled kernels are available (numba); otherwise the
thread pool of the standard library runs the same calls.
"""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np

__all__ = ["Team", "WATCH_SPINS"]

#: reads of its counter a worker makes after a task before it sleeps (about 1.2 ms on the benchmark machine)
WATCH_SPINS = 1 << 22
_POSTED, _DONE = 0, 1            # int64 columns of a worker's row (a row is one 64-byte cache line)


def _cpu_reader():
    try:
        f = ctypes.CDLL(None, use_errno=True).sched_getcpu
    except (AttributeError, OSError):
        return None
    f.restype, f.argtypes = ctypes.c_int, []
    return f if hasattr(os, "sched_setaffinity") and f() >= 0 else None


_SCHED_GETCPU = _cpu_reader()


def current_cpu() -> int:
    """The core the calling thread runs on (-1 where the system does not say)."""
    return _SCHED_GETCPU() if _SCHED_GETCPU is not None else -1


def _leave_cpu(cpu: int) -> None:
    """Move the calling thread off core ``cpu`` if it runs there, keeping its set of allowed cores."""
    if cpu < 0 or current_cpu() != cpu:
        return
    try:
        allowed = os.sched_getaffinity(0)
        if len(allowed) > 1 and cpu in allowed:
            os.sched_setaffinity(0, allowed - {cpu})          # moves this thread now
            os.sched_setaffinity(0, allowed)
    except OSError:                                           # not allowed here: stay
        pass


class Team:
    """``workers`` daemon threads that run the calls :meth:`run` hands them, next to the calling thread.

    One caller at a time: :meth:`run` returns None when another thread is using the team (the caller
    then runs its calls some other way).
    """

    def __init__(self, workers: int, wrap):
        from . import atomics                              # compiled counters (imported only with numba)
        self._spin, self._wait, self._up = atomics.spin_until, atomics.wait_count, atomics.count_up
        self.workers = workers
        self._wrap = wrap                                  # runs one call: wrap(fn, *args)
        self._state = np.zeros((workers, 8), np.int64)
        self._never = np.zeros(1, np.int64)                # the "failed" flag wait_count reads: never set
        self._base, self._never_addr = self._state.ctypes.data, self._never.ctypes.data   # (~1 µs a read)
        self._calls: list = [None] * workers
        self._results: list = [None] * workers
        self._cond = threading.Condition()
        self._busy = threading.Lock()
        self._closed = False
        self._caller_cpu = -1                              # the core of the last run()'s caller
        self._threads = [threading.Thread(target=self._work, args=(i,), name=f"seqmodels-{i + 1}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    def _addr(self, i: int, column: int) -> int:
        return self._base + (i * 8 + column) * 8

    def _work(self, i: int) -> None:
        posted, target = self._addr(i, _POSTED), 1
        while True:
            if not self._spin(posted, target, WATCH_SPINS):
                with self._cond:
                    while self._state[i, _POSTED] < target and not self._closed:
                        self._cond.wait()
                _leave_cpu(self._caller_cpu)               # woken up next to the caller: go elsewhere
            if self._closed:
                return
            fn, args = self._calls[i]
            try:
                self._results[i] = (True, self._wrap(fn, *args))
            except BaseException as e:                     # handed to the caller, raised there
                self._results[i] = (False, e)
            self._calls[i] = None
            self._up(self._addr(i, _DONE))
            target += 1

    def run(self, fn, calls: list) -> list | None:
        """``[fn(*c) for c in calls]`` at the same time: ``calls[0]`` on the calling thread, the others on
        the workers. Raises the first exception after every call has returned; None if the team is busy."""
        k = len(calls) - 1
        if k > self.workers or not self._busy.acquire(blocking=False):
            return None
        if self._closed:                                   # (closed while we waited: the caller goes elsewhere)
            self._busy.release()
            return None
        try:
            for i, c in enumerate(calls[1:]):
                self._calls[i] = (fn, c)
                self._up(self._addr(i, _POSTED))
            self._caller_cpu = current_cpu()
            with self._cond:
                self._cond.notify_all()                    # for the workers that went to sleep
            try:
                first = self._wrap(fn, *calls[0])
            finally:
                for i in range(k):                         # every worker has returned
                    self._wait(self._addr(i, _DONE), self._state[i, _POSTED], self._never_addr)
            rest = [self._results[i] for i in range(k)]
            self._results[:k] = [None] * k
        finally:
            self._busy.release()
        for ok, value in rest:
            if not ok:
                raise value
        return [first] + [value for _, value in rest]

    def close(self) -> None:
        """Stop the workers once the run in progress, if any, has returned; a later :meth:`run` returns None."""
        with self._busy, self._cond:
            self._closed = True
            self._state[:, _POSTED] += 1
            self._cond.notify_all()
