"""seqmodels on threads of its own (accel.set_threads): split GEMMs, the team of workers, loops split by rows."""

import threading

import numpy as np
import pytest

from seqmodels.core import accel, blas
from seqmodels.core.errors import ConfigError


@pytest.fixture
def own2():
    before = accel.set_threads(2)
    yield
    accel.set_threads(before)


def test_set_threads_takes_the_cores_from_the_blas_and_gives_them_back():
    start = blas.get_num_threads()
    before = accel.set_threads(3)
    try:
        assert accel.threads() == 3 and accel.owns_threads()
        assert blas.get_num_threads() in (1, None)
    finally:
        accel.set_threads(before)
    assert accel.threads() == max(1, start or 1) and not accel.owns_threads()
    assert blas.get_num_threads() == start
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="n: expected a number of threads"):
            accel.set_threads(bad)


@pytest.mark.parametrize("shape", [(300, 40, 70), (20, 50, 500), (64, 1000, 48)])
def test_split_gemms_equal_one_call(own2, rng, shape, monkeypatch):
    """Row and column splits (and the transposed, strided operands the layers pass) give the product of
    one BLAS call; the split really happens (each part is a call of its own)."""
    monkeypatch.setattr(accel, "GEMM_SPLIT_MIN", 1)
    m, k, n = shape
    A, B = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    how = accel._gemm_cuts(m, n, k)
    assert how is not None and len(how[1]) == 3
    calls = []
    real = np.matmul
    monkeypatch.setattr(np, "matmul", lambda a, b, out: (calls.append(a.shape), real(a, b, out=out))[1])
    out = np.empty((m, n))
    assert accel.matmul(A, B, out) is out
    monkeypatch.setattr(np, "matmul", real)
    assert len(calls) == 2
    np.testing.assert_allclose(out, A @ B, rtol=1e-12, atol=1e-12)
    big = rng.standard_normal((k + 3, m)).T[:, 1:k + 1]                  # strided, transposed view
    C0 = rng.standard_normal((m + 2, n))[1:-1]
    C = C0.copy()
    accel.gemm_add(C, big, B)
    np.testing.assert_allclose(C, C0 + big @ B, rtol=1e-12, atol=1e-12)
    out = np.empty((n, m)).T                                             # an output written through .T
    accel.matmul(A, B, out)
    np.testing.assert_allclose(out, A @ B, rtol=1e-12, atol=1e-12)
    bias = rng.standard_normal(n)                                        # each part adds its share of it
    accel.matmul(A, B, out, bias=bias)
    np.testing.assert_allclose(out, A @ B + bias, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("owned", [True, False])
def test_matmul_adds_the_bias_split_or_not(rng, owned, monkeypatch):
    monkeypatch.setattr(accel, "GEMM_SPLIT_MIN", 1)
    before = accel.set_threads(2 if owned else None)
    try:
        A, B, bias = rng.standard_normal((40, 7)), rng.standard_normal((7, 30)), rng.standard_normal(30)
        assert (accel._gemm_cuts(40, 30, 7) is not None) is owned
        out = accel.matmul(A, B, np.empty((40, 30)), bias=bias)
        np.testing.assert_allclose(out, A @ B + bias, rtol=1e-12, atol=1e-12)
    finally:
        accel.set_threads(before)


def test_small_gemms_and_parts_of_parallel_calls_are_not_split(own2, monkeypatch):
    assert accel._gemm_cuts(10, 10, 10) is None                          # below GEMM_SPLIT_MIN
    monkeypatch.setattr(accel, "GEMM_SPLIT_MIN", 1)
    assert accel._gemm_cuts(64, 64, 64) is not None
    inside = accel.on_threads(2, lambda i: (accel.in_part(), accel._gemm_cuts(64, 64, 64), accel.parts_for(10**7)))
    assert inside == [(True, None, 1)] * 2                               # nested work runs where it is
    accel.set_threads(None)
    assert accel._gemm_cuts(64, 64, 64) is None                          # the BLAS splits its own


def test_team_runs_every_call_and_raises_the_first_error(own2):
    pytest.importorskip("numba")
    from seqmodels.core.team import Team

    team = Team(2, lambda fn, *a: fn(*a))
    try:
        where = team.run(lambda i: (i, threading.get_ident()), [(0,), (1,), (2,)])
        assert [w[0] for w in where] == [0, 1, 2]
        assert where[0][1] == threading.get_ident() and len({w[1] for w in where}) == 3
        for _ in range(50):                                              # hand-offs back to back
            assert team.run(lambda i: i * i, [(1,), (2,)]) == [1, 4]

        def fail(i):
            if i == 1:
                raise KeyError("worker")
            return i

        with pytest.raises(KeyError, match="worker"):
            team.run(fail, [(0,), (1,)])
        assert team.run(lambda i: i, [(5,), (6,)]) == [5, 6]             # still works afterwards
        assert team.run(lambda i: i, [(1,)] * 4) is None                 # more calls than workers + caller
        release = threading.Event()
        holder = threading.Thread(target=team.run, args=(lambda i: release.wait(5), [(0,), (1,)]))
        holder.start()
        try:
            while not team._busy.locked():
                pass
            assert team.run(lambda i: i, [(0,), (1,)]) is None           # busy: the caller goes elsewhere
        finally:
            release.set()
            holder.join()
    finally:
        team.close()


def test_a_sleeping_worker_wakes_for_new_work(monkeypatch):
    pytest.importorskip("numba")
    from seqmodels.core import team as team_module

    monkeypatch.setattr(team_module, "WATCH_SPINS", 1)                 # sleeps almost at once
    team = team_module.Team(1, lambda fn, *a: fn(*a))
    try:
        for _ in range(20):
            threading.Event().wait(0.001)
            assert team.run(lambda i: i + 1, [(1,), (2,)]) == [2, 3]
    finally:
        team.close()
    for t in team._threads:
        t.join(5)
        assert not t.is_alive()


def test_a_worker_woken_on_the_callers_core_moves_and_keeps_its_cores():
    import os

    from seqmodels.core import team

    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if len(allowed) < 2 or team.current_cpu() < 0:
        pytest.skip("needs two cores and sched_getcpu")
    result = {}

    def probe():
        here = team.current_cpu()
        team._leave_cpu(here)
        result.update(before=here, after=team.current_cpu(), allowed=os.sched_getaffinity(0))
        team._leave_cpu(-1)                                            # unknown core: nothing to do

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    assert result["after"] != result["before"] and result["allowed"] == allowed


def test_command_line_threads_are_seqmodels_own(monkeypatch):
    import seqmodels

    assert seqmodels.set_threads is accel.set_threads
    from seqmodels.cli.main import _set_threads

    before = accel.set_threads(None)
    try:
        _set_threads(2)
        if accel.is_enabled():
            assert accel.threads() == 2 and accel.owns_threads() and blas.get_num_threads() in (1, None)
        else:
            assert not accel.owns_threads() and blas.get_num_threads() in (2, None)
        accel.set_threads(None)
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
        _set_threads(None)                                             # the user chose: left alone
        assert not accel.owns_threads()
    finally:
        accel.set_threads(before)


def test_closing_a_team_waits_for_the_run_in_progress_and_later_runs_go_elsewhere():
    pytest.importorskip("numba")
    from seqmodels.core.team import Team

    team = Team(1, lambda fn, *a: fn(*a))
    release, results = threading.Event(), []
    holder = threading.Thread(target=lambda: results.append(team.run(lambda i: release.wait(5) and i,
                                                                     [(0,), (1,)])))
    holder.start()
    while not team._busy.locked():
        pass
    closer = threading.Thread(target=team.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()                                 # close waits for the run in progress ...
    release.set()
    holder.join(5)
    closer.join(5)
    assert results == [[0, 1]] and not closer.is_alive()     # ... which finished on both threads
    assert team.run(lambda i: i, [(0,), (1,)]) is None       # closed: the caller runs its calls elsewhere
    for t in team._threads:
        t.join(5)
        assert not t.is_alive()


def test_split_gemms_cut_the_longer_side_of_the_product(own2):
    """Rows when C has at least as many rows as columns, else columns: PTB's logits (700 × 10000) and its
    dx as (200 × 700) by columns, the output layer's weight gradient (10000 × 200) by rows."""
    assert accel._gemm_cuts(700, 10000, 200)[0] == "cols"
    assert accel._gemm_cuts(200, 700, 10000)[0] == "cols"
    assert accel._gemm_cuts(10000, 200, 700)[0] == "rows"
    assert accel._gemm_cuts(512, 512, 512)[0] == "rows"


@pytest.mark.parametrize("threads", [1, 2])
def test_zero_clears_every_array_whole(threads, rng):
    """accel.zero: big contiguous arrays cut over the threads (every slice cleared, nothing past them touched),
    small and strided ones in one call; float64 and float32 alike."""
    before = accel.set_threads(threads)
    try:
        base = rng.standard_normal(3 * accel.PARALLEL_MIN + 7).astype(np.float32)
        big = base[: base.size - 5]                                   # a view: the last 5 stay as they were
        small = rng.standard_normal((3, 4))
        strided = rng.standard_normal((accel.PARALLEL_MIN, 4))[:, ::2]
        tail = base[-5:].copy()
        accel.zero([big, small, strided])
        assert not big.any() and not small.any() and not strided.any()
        np.testing.assert_array_equal(base[-5:], tail)
    finally:
        accel.set_threads(before)
