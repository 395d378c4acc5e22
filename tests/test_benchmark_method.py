"""The benchmarks' timing (``benchmarks/common.alternate``): the runners take turns, every repeat of every
runner times the same number of calls, after the warm-up calls and ``lead`` untimed calls; and
``bench_step.py``'s runs of steps."""

import time

import pytest

from benchmarks.common import alternate


def test_alternate_times_the_same_steps_for_each_runner_after_untimed_lead_calls():
    calls = []

    def runner(name, seconds):
        def call():
            calls.append(name)
            time.sleep(seconds)
        return call

    steps, times = alternate({"fast": runner("fast", 0.001), "slow": runner("slow", 0.004)}, repeats=3,
                             seconds=0.02, warmup=2, pause=0.0, lead=1)
    assert 2 <= steps <= 5                      # ~0.02 s of the slower runner's calls (its last warm-up: >= 4 ms)
    assert {k: len(v) for k, v in times.items()} == {"fast": 3, "slow": 3}
    # warm-up: 2 calls each; then per repeat, in turns: 1 untimed + `steps` timed calls of each runner
    turn = lambda name: [name] * (1 + steps)                   # noqa: E731
    assert calls == ["fast"] * 2 + ["slow"] * 2 + (turn("fast") + turn("slow")) * 3
    assert min(times["slow"]) >= 0.004 and min(times["fast"]) >= 0.001   # seconds per call (a sleep: at least)


def test_bench_step_times_runs_of_steps_after_a_warm_up_and_names_bad_specs():
    from benchmarks.bench_step import parse_spec, time_step

    calls = []
    runs = time_step(lambda: calls.append(1), repeats=4, steps=3, sleep=0.0)
    assert len(runs) == 4 and len(calls) == 3 + 4 * 3
    assert parse_spec("rnn:char512-2") == ("rnn", "char512-2")
    for bad in ("rnn", "lstm:char999", "cnn:char128-1"):
        with pytest.raises(SystemExit, match="CELL:CONFIG"):
            parse_spec(bad)
