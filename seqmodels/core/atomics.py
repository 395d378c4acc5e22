"""Counters shared between threads: atomic reads and increments, compiled (numba), waited on without the GIL.

The pieces every hand-off between seqmodels' threads is made of: the time loops' per-step barrier
(:mod:`seqmodels.cells.fast_gemm`), the pipelined stack's chunk counters (:mod:`seqmodels.layers.pipeline`)
and the team's task counters (:mod:`seqmodels.core.team`). Imported only where numba is installed.

The waits read the counter in a tight loop without the x86 ``pause`` hint: under a hypervisor a vCPU
that executes ``pause`` for more than a few thousand cycles is taken off its core (pause-loop exiting),
and every wait then costs tens of microseconds (measured, see ``fast_gemm``).
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as _llvm
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["SPIN_BEFORE_YIELD", "atomic_add", "atomic_load", "sched_yield", "wait_count", "spin_until", "count_up"]

#: reads of a counter before a waiting thread starts to yield its core to others
SPIN_BEFORE_YIELD = 1 << 16


def _bind_sched_yield():
    libc = ctypes.CDLL(None)
    _llvm.add_symbol("seqmodels_sched_yield", ctypes.cast(libc.sched_yield, ctypes.c_void_p).value)
    return types.ExternalFunction("seqmodels_sched_yield", types.int32())


sched_yield = _bind_sched_yield()


@intrinsic
def atomic_add(typingctx, addr, value):
    """``*addr += value`` (int64, sequentially consistent); returns the old value."""
    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        return builder.atomic_rmw("add", ptr, args[1], "seq_cst")
    return types.int64(types.intp, types.int64), codegen


@intrinsic
def atomic_load(typingctx, addr):
    """``*addr`` (int64, sequentially consistent): a plain read of the line, no locked write."""
    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        return builder.load_atomic(ptr, "seq_cst", 8)
    return types.int64(types.intp), codegen


@njit(nogil=True, cache=True)
def wait_count(addr, target, failed):
    """Wait until the int64 at ``addr`` reaches ``target`` (another thread counts it up); False as soon as
    the int64 at ``failed`` is not 0 (that thread stopped on an error)."""
    spins = 0
    while atomic_load(addr) < target:
        if atomic_load(failed) != 0:
            return False
        spins += 1
        if spins >= SPIN_BEFORE_YIELD:                # a long wait: let another thread have this core
            sched_yield()
    return True


@njit(nogil=True, cache=True)
def spin_until(addr, target, spins):
    """Read the int64 at ``addr`` up to ``spins`` times; True as soon as it reaches ``target``."""
    for _ in range(spins):
        if atomic_load(addr) >= target:
            return True
    return False


@njit(nogil=True, cache=True)
def count_up(addr):
    """``*addr += 1`` for the threads in :func:`wait_count`."""
    atomic_add(addr, 1)
