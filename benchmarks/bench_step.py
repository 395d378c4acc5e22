"""seqmodels' training step alone, for before/after comparisons of a change (no PyTorch, no pauses).

    python benchmarks/bench_step.py rnn:char512-2 lstm:char128-2 --threads 2
    git stash && python benchmarks/bench_step.py rnn:char512-2 --threads 2 && git stash pop

Each ``cell:config`` (cells and configurations as in ``bench_train.py``) is built, warmed up (3
steps) and timed in ``--repeats`` runs of ``--steps`` steps with a short sleep between them; prints the
median and the fastest run, in ms per step. Run the two versions one after the other, on a quiet
machine, more than once: differences under ~5 % are within the machine's run-to-run spread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CELLS, CONFIGS, SeqmodelsStep, median, set_threads  # noqa: E402


def time_step(step, repeats: int, steps: int, sleep: float = 0.05) -> list[float]:
    """Seconds per step of ``repeats`` runs of ``steps`` calls (after 3 warm-up calls)."""
    for _ in range(3):
        step()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        runs.append((time.perf_counter() - t0) / steps)
        time.sleep(sleep)
    return runs


def parse_spec(spec: str) -> tuple[str, str]:
    cell, _, config = spec.partition(":")
    if cell not in CELLS or config not in CONFIGS:
        raise SystemExit(f"{spec!r}: expected CELL:CONFIG with CELL in {', '.join(CELLS)} and CONFIG in "
                         f"{', '.join(CONFIGS)}")
    return cell, config


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("specs", nargs="+", metavar="CELL:CONFIG", help="e.g. rnn:char512-2")
    ap.add_argument("--threads", type=int, default=1, help="seqmodels' threads (accel.set_threads)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5, help="steps per timed run")
    args = ap.parse_args(argv)
    specs = [parse_spec(s) for s in args.specs]
    set_threads(args.threads, torch_too=False)
    for cell, config in specs:
        runs = time_step(SeqmodelsStep(cell, CONFIGS[config]), args.repeats, args.steps)
        print(f"{cell + ':' + config:22s} {1e3 * median(runs):8.1f} ms  (fastest run {1e3 * min(runs):.1f})",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
