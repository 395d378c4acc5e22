"""Sampling speed: µs per generated token, seqmodels vs PyTorch, batch 1.

The model: embedding (V -> H) -> 1-layer LSTM (H = 256) -> linear (H -> V = 65) -> softmax -> draw,
feeding each drawn token back in. seqmodels runs ``LanguageModel.sample`` (its public sampling path:
a ``Stepper`` per layer, the output layer and a ``TokenSampler`` per token); PyTorch runs its fastest one-step
path, an ``nn.LSTMCell`` loop under ``torch.no_grad()`` with ``torch.multinomial``. Both alternate,
repeat by repeat, with a pause between them; medians are reported.

    python benchmarks/bench_sample.py                 # 2 threads, 2000 tokens x 7 repeats
    python benchmarks/bench_sample.py --threads 1 --tokens 500 --repeats 3

Writes benchmarks/results/sample.json (``--out NAME`` for another name).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import make_vocab, machine_info, median, set_threads, write_json  # noqa: E402
from seqmodels.cells import fast  # noqa: E402
from seqmodels.models.language_model import LanguageModel  # noqa: E402


def seqmodels_sampler(V: int, H: int, tokens: int):
    lm = LanguageModel(make_vocab(V), "lstm", H, 1, embedding_dim=H, seed=0)
    calls = {"n": 0}

    def run():
        calls["n"] += 1
        lm.sample(1, tokens, seed=calls["n"], stop_at_eos=False)
    return run


def torch_sampler(V: int, H: int, tokens: int):
    import torch
    from torch import nn

    torch.manual_seed(0)
    emb, cell, head = nn.Embedding(V, H), nn.LSTMCell(H, H), nn.Linear(H, V)

    def run():
        with torch.no_grad():
            x = torch.full((1,), 2, dtype=torch.long)
            h = c = torch.zeros(1, H)
            for _ in range(tokens):
                h, c = cell(emb(x), (h, c))
                p = torch.softmax(head(h), dim=-1)
                x = torch.multinomial(p, 1).squeeze(1)
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--pause", type=float, default=0.2)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--out", default="sample.json", help="JSON file name under benchmarks/results/")
    ap.add_argument("--fast", choices=("auto", "off"), default="auto",
                    help="off: run seqmodels on its NumPy loops even when numba is installed")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    if args.fast == "off":
        fast.set_enabled(False)
    runners = {"seqmodels": seqmodels_sampler(args.vocab, args.hidden, args.tokens),
               "torch": torch_sampler(args.vocab, args.hidden, args.tokens)}
    for fn in runners.values():
        fn()
    times = {k: [] for k in runners}
    for _ in range(args.repeats):
        for name, fn in runners.items():
            time.sleep(args.pause)
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) / args.tokens * 1e6)
    us = {k: median(v) for k, v in times.items()}
    speed = us["torch"] / us["seqmodels"]
    print(f"sampling, batch 1, LSTM H={args.hidden} V={args.vocab}, {args.threads} thread(s), "
          f"fast loops {'on' if fast.is_enabled() else 'off'}")
    print(f"  seqmodels {us['seqmodels']:8.1f} µs/token")
    print(f"  torch     {us['torch']:8.1f} µs/token")
    print(f"  speed     {speed:8.2f}x  (torch time / seqmodels time)")
    path = write_json(args.out, {"machine": machine_info(), "args": vars(args), "us_per_token": us,
                                      "all_us_per_token": times, "speedup": speed,
                                      "fast": fast.is_enabled()})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
