"""The per-step GEMM of the time loops: seqmodels' packed kernel vs NumPy's BLAS vs PyTorch's, side by side.

Each shape is one step of a benchmark configuration: forward ``a<t-1> @ W_hᵀ`` (B × H) @ (H × G·H) and
backward ``dz @ W_h`` (B × G·H) @ (G·H × H), float32. seqmodels multiplies by weights packed once
(``seqmodels.cells.fast_gemm``, one thread); NumPy's ``matmul`` and ``torch.mm`` get the weights as they
are, on 1 or 2 threads. The three alternate call by call; the best of 7 runs of ``--calls`` calls is kept.

    python benchmarks/bench_gemm.py                  # writes benchmarks/results/gemm.json
    python benchmarks/bench_gemm.py --threads 1 --out gemm-1thread.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine_info, set_threads, write_json  # noqa: E402  (seqmodels before NumPy)
import numpy as np  # noqa: E402

SHAPES = {  # name: (rows, k, n)
    "char128 lstm fwd": (32, 128, 512), "char128 lstm bwd": (32, 512, 128),
    "char512 lstm fwd": (32, 512, 2048), "char512 lstm bwd": (32, 2048, 512),
    "char512 gru fwd": (32, 512, 1536), "char512 rnn fwd": (32, 512, 512),
    "ptb lstm fwd": (20, 200, 800), "ptb lstm bwd": (20, 800, 200),
}


def best_time(fn, calls: int) -> float:
    fn()
    best = float("inf")
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t) / calls)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="BLAS threads for NumPy and PyTorch")
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--out", default="gemm.json")
    args = ap.parse_args(argv)

    import numba
    import torch

    from seqmodels.cells import fast_gemm

    @numba.njit(nogil=True)
    def packed_product(C, A, Bp, m, n, k):
        fast_gemm.gemm_packed(C, A, Bp, m, n, k, k, n, 0.0)

    rng = np.random.default_rng(0)
    rows = []
    print(f"{'shape':18} {'(m, k, n)':>18} thr {'packed':>9} {'numpy':>9} {'torch':>9}  packed/numpy  packed/torch")
    for threads in args.threads:
        set_threads(threads, own=False)                  # NumPy's BLAS itself on that many threads
        for name, (m, k, n) in SHAPES.items():
            A = rng.standard_normal((m, k)).astype(np.float32)
            B = rng.standard_normal((k, n)).astype(np.float32)
            C = np.empty((m, n), np.float32)
            NR = fast_gemm.panel_width(np.float32)
            Bp = np.empty((-(-n // NR), k, NR), np.float32)
            fast_gemm.pack(B, Bp)
            tA, tB, tC = torch.from_numpy(A), torch.from_numpy(B), torch.from_numpy(C)
            t = {"packed": best_time(lambda: packed_product(C, A, Bp, m, n, k), args.calls),
                 "numpy": best_time(lambda: np.matmul(A, B, out=C), args.calls),
                 "torch": best_time(lambda: torch.mm(tA, tB, out=tC), args.calls)}
            flops = 2.0 * m * k * n
            row = {"shape": name, "m": m, "k": k, "n": n, "threads": threads,
                   **{f"{key}_us": v * 1e6 for key, v in t.items()},
                   **{f"{key}_gflops": flops / v / 1e9 for key, v in t.items()}}
            rows.append(row)
            print(f"{name:18} {str((m, k, n)):>18} {threads:3d} {t['packed'] * 1e6:7.1f}us {t['numpy'] * 1e6:7.1f}us "
                  f"{t['torch'] * 1e6:7.1f}us  {t['numpy'] / t['packed']:11.2f}x  {t['torch'] / t['packed']:11.2f}x")
            write_json(args.out, {"machine": machine_info(), "rows": rows})
    print(f"\nwrote benchmarks/results/{args.out}  (ratios > 1: the packed kernel is faster)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
