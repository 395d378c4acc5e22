"""Training speed, seqmodels vs PyTorch, side by side: one language-model training step.

    python benchmarks/bench_train.py            # every configuration, LSTM/GRU/RNN (+ variants), 1 and 2 threads
    python benchmarks/bench_train.py --quick    # a 2-minute subset
    python benchmarks/bench_train.py --configs char128-1 --cells lstm --threads 2 --repeats 9
    python benchmarks/bench_train.py --pipeline --configs char128-2 ptb-small --threads 2  # see layers/pipeline.py

The step (see benchmarks/common.py): embedding -> L recurrent layers -> linear -> mean cross-entropy ->
backward -> clip (global norm 5) -> Adam, the state carried from window to window, float32, both
frameworks built with the same sizes. Each row warms both up, then times them in turns, repeat by
repeat, with a pause between them (OpenBLAS's worker threads spin for a while after each call and
would slow a PyTorch region started meanwhile); a repeat is one untimed step, then as many timed steps
as make the slower framework take ~0.3 s (``--seconds``), so that it measures training step after step
rather than the first step after a pause (slower for both: the CPUs come back from idle, the caches
hold the other framework's data); medians are reported.

Columns: ms per step for each framework, ``speed`` = PyTorch time / seqmodels time (> 1: seqmodels is
faster), seqmodels' GEMM rate, and the physical limit — the step's GEMM FLOPs over the best GEMM rate
measured in this run with NumPy's BLAS as installed (``bound``) — with the fraction of it reached
(``of bound``). The variants the notes define and PyTorch cannot run fused (peephole LSTM, the notes'
GRU) are timed for seqmodels only, in turns with its plain cell (``vs plain``: plain time / variant
time, above 1: the variant is faster). Peak RSS of a training run (5 steps, in a fresh process per
framework) is measured for the LSTM rows.

Writes benchmarks/results/train.json (train-quick.json with --quick).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (CELLS, CONFIGS, VARIANT_OF, alternate, gemm_rate, machine_info, make_step,  # noqa: E402
                               median, peak_rss, set_threads, train_flops, write_json)
from seqmodels.cells import fast  # noqa: E402
from seqmodels.core import blas  # noqa: E402
from seqmodels.layers import pipeline  # noqa: E402

QUICK = dict(configs=["char128-1", "char512-1"], cells=["lstm", "gru", "rnn"], threads=[2], repeats=3)


def bench_row(cell: str, cfg, repeats: int, pause: float, seconds: float) -> dict:
    """One row: seqmodels alternated with PyTorch, or a variant PyTorch cannot run alternated with
    seqmodels' plain cell (``vs plain``: from the same turns, not from another row's)."""
    runners = {"seqmodels": make_step("seqmodels", cell, cfg)}
    if CELLS[cell][2] is not None:
        runners["torch"] = make_step("torch", cell, cfg)
    elif cell in VARIANT_OF:
        runners["plain"] = make_step("seqmodels", VARIANT_OF[cell], cfg)
    steps, times = alternate(runners, repeats, seconds=seconds, warmup=2, pause=pause)
    row = {"config": cfg.name, "cell": cell, "steps_per_repeat": steps, "times": times,
           "ms": {k: 1e3 * median(v) for k, v in times.items()}, "flops": train_flops(cell, cfg)}
    if "torch" in row["ms"]:
        row["speed"] = row["ms"]["torch"] / row["ms"]["seqmodels"]
    if "plain" in row["ms"]:
        row["vs_plain"] = row["ms"]["plain"] / row["ms"]["seqmodels"]
    return row


def fmt(x, spec, unit=""):
    width = int(spec.lstrip("<>^").split(".")[0] or 0) + len(unit)
    return "-".rjust(width) if x is None else format(x, spec) + unit


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="char128-1 and char512-1, LSTM/GRU/RNN, 2 threads")
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    ap.add_argument("--cells", nargs="+", choices=list(CELLS), default=list(CELLS))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pause", type=float, default=0.2, help="seconds between the frameworks' turns")
    ap.add_argument("--seconds", type=float, default=0.3,
                    help="length of one repeat (steps per repeat: enough for the slower framework to take this long)")
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--fast", choices=("auto", "off"), default="auto",
                    help="off: run seqmodels on its NumPy loops even when numba is installed")
    ap.add_argument("--step-threads", type=int, default=None,
                    help="BLAS threads for seqmodels' per-step GEMMs (default: the same as --threads)")
    ap.add_argument("--pipeline", action="store_true",
                    help="seqmodels with NumPy's BLAS on one thread and stacked layers pipelined over two threads "
                         "(SEQMODELS_PIPELINE=on) on the rows of 2+ threads; PyTorch unchanged")
    ap.add_argument("--blas-threads", action="store_true",
                    help="seqmodels the way before accel.set_threads: NumPy's BLAS on --threads threads, "
                         "seqmodels' own parallel work following it")
    ap.add_argument("--out", default=None, help="JSON file name under benchmarks/results/")
    args = ap.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    if args.fast == "off":
        fast.set_enabled(False)
    if args.step_threads:
        blas.set_step_threads(args.step_threads)
    info = machine_info()
    print(f"seqmodels {info['seqmodels']} (fast loops: {'on' if fast.is_enabled() else 'off'}, per-step GEMM "
          f"threads: {blas.step_threads() or 'as set'}), numpy "
          f"{info['numpy']} ({info['blas']['corename']}), torch {info['torch']}, {info['cpu']}, "
          f"{info['cores']} cores, load average {info['loadavg'][0]:.2f}" if info["loadavg"] else "")
    gemm = {}
    for n in sorted(set(args.threads)):
        gemm[n] = {"installed": gemm_rate(n), "SkylakeX": gemm_rate(n, "SkylakeX"), "Haswell": gemm_rate(n, "Haswell")}
        g = gemm[n]
        print(f"best GEMM, {n} thread(s): {g['installed']['gflops']:.0f} GFLOP/s as installed "
              f"({g['installed']['corename']}), {g['SkylakeX']['gflops']:.0f} with OPENBLAS_CORETYPE=SkylakeX, "
              f"{g['Haswell']['gflops']:.0f} with Haswell (AVX2)")
    rows, rss = [], []
    out = args.out or ("train-quick.json" if args.quick else "train.json")

    def save():                                       # after every row: an interrupted run keeps its rows
        return write_json(out, {"machine": info, "fast": fast.is_enabled(), "step_threads": blas.step_threads(),
                                "gemm": gemm, "rows": rows, "rss": rss, "args": vars(args)})

    head = (f"{'config':10} {'cell':14} {'thr':>3} {'seqmodels':>10} {'torch':>9} {'speed':>6} {'GFLOP/s':>8} "
            f"{'bound':>7} {'of bound':>8} {'vs plain':>8}")
    for n in args.threads:
        set_threads(n, own=not args.blas_threads)
        if args.pipeline:
            pipeline.set_mode("on" if n > 1 else "off")
            if n > 1:
                blas.set_num_threads(1)               # PyTorch keeps n; the pipeline takes two threads
        print(f"\n{head}\n{'-' * len(head)}")
        for name in args.configs:
            cfg = CONFIGS[name]
            for cell in args.cells:
                row = bench_row(cell, cfg, args.repeats, args.pause, args.seconds)
                row["threads"] = n
                rate = gemm[n]["installed"]["gflops"] * 1e9
                row["gflops"] = row["flops"] / (row["ms"]["seqmodels"] * 1e-3) / 1e9
                row["bound_ms"] = row["flops"] / rate * 1e3
                row["of_bound"] = row["bound_ms"] / row["ms"]["seqmodels"]
                row["bound_ms_skylakex"] = row["flops"] / (gemm[n]["SkylakeX"]["gflops"] * 1e9) * 1e3
                rows.append(row)
                save()
                print(f"{name:10} {cell:14} {n:>3} {row['ms']['seqmodels']:>8.1f}ms "
                      f"{fmt(row['ms'].get('torch'), '>7.1f', 'ms')} {fmt(row.get('speed'), '>5.2f', 'x')} "
                      f"{row['gflops']:>8.0f} {row['bound_ms']:>5.1f}ms {row['of_bound']:>8.0%} "
                      f"{fmt(row.get('vs_plain'), '>7.2f', 'x')}", flush=True)
    if not args.no_rss:
        print("\npeak RSS of 5 training steps, fresh process each (MiB; 'after import' = before the model is built)")
        for name in args.configs:
            cfg = CONFIGS[name]
            got = {fw: peak_rss(fw, "lstm", cfg, threads=max(args.threads)) for fw in ("seqmodels", "torch")}
            rss.append({"config": name, "cell": "lstm", **got})
            save()
            print(f"  {name:10} lstm  seqmodels {got['seqmodels']['peak_mb']:7.0f} (after import "
                  f"{got['seqmodels']['base_mb']:.0f})   torch {got['torch']['peak_mb']:7.0f} (after import "
                  f"{got['torch']['base_mb']:.0f})")
    path = save()
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
