"""The pipelined stack on and off, alternated in one process: a stack's forward and backward and the
whole training step, and how much CPU each thread of the process used meanwhile.

    python benchmarks/bench_pipeline.py --config char128-2 --cell lstm --threads 2
    python benchmarks/bench_pipeline.py --config char128-2 --cell lstm --threads 1

With ``--threads 1`` NumPy's BLAS runs on one thread and the pipeline on two (its minimum): that shows
what the pipeline gains when the second core is free. The per-thread CPU time shows whether it is:
with OpenBLAS on two threads its worker keeps spinning after each call (``OPENBLAS_THREAD_TIMEOUT``).
Prints one line per mode and writes nothing; see seqmodels/layers/pipeline.py for the numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import CELLS, CONFIGS, SeqmodelsStep, set_threads  # noqa: E402  (seqmodels before NumPy)
import numpy as np  # noqa: E402
from seqmodels.layers import pipeline  # noqa: E402


def thread_ticks() -> dict:
    """CPU time (clock ticks) of each thread of this process, by thread id (Linux)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[tid] = int(fields[11]) + int(fields[12])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=list(CONFIGS), default="char128-2")
    ap.add_argument("--cell", choices=list(CELLS), default="lstm")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    set_threads(args.threads, torch_too=False, own=False)   # NumPy's BLAS on --threads, as it prints
    step = SeqmodelsStep(args.cell, CONFIGS[args.config])
    stack, x = step.model.rnn, step.batches[0][0]
    E = step.model.embedding.params["W_e"]
    modes = ("off", "on")
    res = {m: {"forward": [], "backward": [], "step": []} for m in modes}
    ticks = {m: {} for m in modes}
    for m in modes:                                      # warm up both (compiles the hand-off kernels)
        pipeline.set_mode(m)
        step(), step()
    for _ in range(args.repeats):
        for m in modes:
            pipeline.set_mode(m)
            time.sleep(0.2)
            before = thread_ticks()
            for _ in range(3):
                t0 = time.perf_counter()
                h, _, cache = stack.forward(x, embedding=E)
                t1 = time.perf_counter()
                stack.backward(np.ones_like(h), cache)
                t2 = time.perf_counter()
                step()
                t3 = time.perf_counter()
                for k, v in (("forward", t1 - t0), ("backward", t2 - t1), ("step", t3 - t2)):
                    res[m][k].append(1e3 * v)
            for tid, n in thread_ticks().items():
                ticks[m][tid] = ticks[m].get(tid, 0) + n - before.get(tid, 0)
    for m in modes:
        cpu = sorted((v for v in ticks[m].values() if v), reverse=True)
        print(f"{args.config} {args.cell} BLAS threads {args.threads} pipeline {m:3}: "
              + ", ".join(f"{k} {np.median(v):6.2f} ms" for k, v in res[m].items())
              + f"; CPU ticks per thread {cpu}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
