"""Character-level language models on tiny Shakespeare: RNN vs GRU vs LSTM vs n-gram vs PyTorch.

Data: the first 90% of ``input.txt``'s characters train, the last 10% validate (nanoGPT's split). A line
break is ``<EOS>``; the vocabulary is <PAD>, <UNK>, <EOS> + the 64 other characters (67 outputs; the
file's 65 characters are the 64 plus the line break). Every loss is nats per predicted character.

Recurrent models: ``LanguageModel(cell, H, 1, mode="stream")`` with one-hot input (the notes' model),
trained on truncated-BPTT windows of ``B`` parallel streams × ``T`` characters with the state carried
between windows (``StreamBatcher``, a random start offset per epoch), by ``model.fit``: mean
cross-entropy, global-norm clipping at 5, Adam with a cosine schedule, no dropout. The hidden sizes of
the RNN and the GRU are chosen so that their parameter counts match the LSTM's::

    parameters = G·H·(H + V) + G·H  +  V·H + V        G = 1 (RNN), 3 (GRU), 4 (LSTM), V = 67

Validation: every window of the validation stream (``B`` streams, state carried), dropout off.

PyTorch twin (``--torch``): ``nn.LSTM`` (from ``seqmodels.interop.to_torch``) + ``nn.Linear`` with the
LSTM model's initial weights, the same windows in the same order, the same clipping, Adam and schedule,
float32 both; the final validation losses must agree within 2%.

N-gram baseline: interpolated Kneser-Ney over the training text as one token stream, n = 1..10.

Run (each well under 10 minutes on one core of an idle machine)::

    OPENBLAS_NUM_THREADS=1 python benchmarks/shakespeare_lm.py --quick                  # smoke test
    OPENBLAS_NUM_THREADS=1 python benchmarks/shakespeare_lm.py --cells lstm --torch --ngram
    OPENBLAS_NUM_THREADS=1 python benchmarks/shakespeare_lm.py --cells gru,rnn
    OPENBLAS_NUM_THREADS=1 python benchmarks/shakespeare_lm.py --evaluate RUN   # a `seqmodels train` run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from lm_common import (Stopwatch, TorchTwin, kneser_ney_table, log, markdown_table, set_threads,
                       shakespeare_split)
from seqmodels.models.language_model import LanguageModel
from seqmodels.text import StreamBatcher, Vocabulary

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def count_parameters(cell: str, H: int, V: int) -> int:
    """Parameters of a one-layer, one-hot-input LanguageModel (see the module docstring)."""
    G = GATES[cell]
    return G * H * (H + V) + G * H + V * H + V


def matched_hidden(cell: str, target: int, V: int) -> int:
    """The hidden size whose parameter count is closest to ``target``."""
    return min(range(1, 4096), key=lambda H: abs(count_parameters(cell, H, V) - target))


def schedule(lr: float, steps: int) -> dict:
    return {"name": "cosine", "total_steps": steps, "min_lr": lr / 10, "warmup_steps": min(100, steps // 10)}


def train_lstm_twin(model: LanguageModel, data: StreamBatcher, steps: int, lr: float, eval_every: int,
                    valid: StreamBatcher) -> tuple[list, float]:
    """Train the PyTorch twin of ``model`` (same initial weights) on the same windows; [(step, val)], s."""
    from seqmodels.training.schedule import make_schedule

    twin = TorchTwin(model, lr=lr, clip="norm", clip_value=5.0)
    sched = make_schedule(lr=lr, **schedule(lr, steps))
    per_epoch, curve = len(data), []
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(steps):
        epoch, k = divmod(step, per_epoch)
        if k == 0:
            twin.reset_state()                              # as train() resets the carried state
        for group in twin.opt.param_groups:
            group["lr"] = sched(step)
        x, y = data.window(k, epoch)
        twin.train_window(x, y)
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            curve.append((step + 1, twin.evaluate(valid)))
            log(f"  torch step {step + 1}: valid {curve[-1][1]:.4f}")
    return curve, time.perf_counter() - t0, time.process_time() - c0


def evaluate_run(run: Path, batch: int, seq_len: int, seed: int) -> int:
    """Validation loss of a saved language model on this script's split (the CLI cuts at a line break)."""
    from seqmodels.models.base import Model

    model = Model.load(run / "model" if (run / "model").is_dir() else run)
    _, valid_text = shakespeare_split()
    with Stopwatch() as sw:
        loss = model.evaluate(model.batcher(valid_text, batch_size=batch, seq_len=seq_len, shuffle=False))
    log(f"{run}: {model.cell} {model.num_layers}x{model.hidden_size}, {model.num_parameters():,} parameters; "
        f"validation (last 10% of the characters) {loss:.4f} nats/char ({sw.seconds:.1f} s)")
    for t in (0.5, 0.8, 1.0):
        text = model.sample(1, 300, prime="ROMEO:", temperature=t, seed=seed)[0]
        log(f"\ntemperature {t}:\nROMEO:{text}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", default="rnn,gru,lstm", help="comma-separated: rnn, gru, lstm")
    ap.add_argument("--hidden", type=int, default=128, help="LSTM hidden size; RNN/GRU sizes match its parameters")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--torch", action="store_true", help="also train PyTorch's nn.LSTM twin of the LSTM")
    ap.add_argument("--ngram", action="store_true", help="also fit Kneser-Ney n-grams, n = 1..10")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: 60 steps, hidden 32, n <= 4")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--evaluate", type=Path, default=None, metavar="RUN",
                    help="only score a `seqmodels train` run directory on this split (and sample from it)")
    args = ap.parse_args(argv)
    if args.evaluate:
        return evaluate_run(args.evaluate, args.batch, args.seq_len, args.seed)
    if args.quick:
        args.steps, args.hidden, args.eval_every = 60, 32, 30
    if args.torch:
        import torch  # noqa: F401  (imported before set_threads so that it gets the thread count)
    set_threads(args.threads)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    for c in cells:
        if c not in GATES:
            raise SystemExit(f"--cells: expected rnn, gru or lstm, got {c!r}")

    train_text, valid_text = shakespeare_split()
    if args.quick:
        valid_text = valid_text[:20000]
    vocab = Vocabulary.from_text(train_text + valid_text, level="char", lines_as_sequences=True, order="sorted")
    V = len(vocab)
    target = count_parameters("lstm", args.hidden, V)
    log(f"train {len(train_text):,} / valid {len(valid_text):,} characters; vocabulary {V}; "
        f"{args.steps} steps of {args.batch}x{args.seq_len}; Adam lr {args.lr} (cosine), clip norm 5")
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": []}
    rows = []

    if args.ngram:
        train_seq = [["<EOS>" if c == "\n" else c for c in train_text]]     # one stream, as the RNN sees it
        valid_seq = [["<EOS>" if c == "\n" else c for c in valid_text]]
        orders = range(1, 5) if args.quick else range(1, 11)
        for r in kneser_ney_table(train_seq, valid_seq, orders):
            log(f"KN {r['n']}-gram: valid {r['valid_loss']:.4f} ({r['seconds']:.1f} s)")
            rows.append([f"Kneser-Ney {r['n']}-gram", "-", "-", r["valid_loss"], r["valid_loss"],
                         f"{r['seconds']:.0f}"])
            results["rows"].append({"model": f"kn{r['n']}", "valid": r["valid_loss"], "seconds": r["seconds"]})

    for cell in cells:
        H = args.hidden if cell == "lstm" else matched_hidden(cell, target, V)
        model = LanguageModel(vocab, cell, H, 1, mode="stream", seed=args.seed)
        n_params = model.num_parameters()
        if n_params != count_parameters(cell, H, V):
            raise RuntimeError(f"parameter count of {cell} {H}: formula {count_parameters(cell, H, V)}, "
                               f"model {n_params}")
        data = model.batcher(train_text, batch_size=args.batch, seq_len=args.seq_len, seed=args.seed)
        valid = model.batcher(valid_text, batch_size=args.batch, seq_len=args.seq_len, shuffle=False)
        init = {k: np.array(v) for k, v in model.params.items()}
        log(f"\n{cell.upper()} H={H}: {n_params:,} parameters")
        with Stopwatch() as sw:
            hist = model.fit(data, valid, steps=args.steps, eval_every=args.eval_every, progress=False,
                             optimizer="adam", lr=args.lr, clip="norm", clip_value=5.0,
                             schedule=schedule(args.lr, args.steps))
        for step, val in hist.val_loss:
            log(f"  step {step}: valid {val:.4f}")
        final = hist.val_loss[-1][1]
        best = min(v for _, v in hist.val_loss)
        tokens = args.steps * args.batch * args.seq_len
        log(f"  {sw.seconds:.1f} s wall, {sw.cpu:.1f} s CPU, {tokens / sw.seconds:,.0f} characters/s (wall), "
            f"{tokens / len(train_text):.2f} epochs")
        sample = model.sample(1, 400, prime="ROMEO:", temperature=0.8, seed=args.seed)[0]
        shown = "\n".join("    " + line for line in ("ROMEO:" + sample).split("\n"))
        log("  sample (prime 'ROMEO:', temperature 0.8):\n" + shown)
        rows.append([f"seqmodels {cell.upper()}", H, f"{n_params:,}", final, best,
                     f"{sw.seconds:.0f} / {sw.cpu:.0f}"])
        results["rows"].append({"model": cell, "hidden": H, "parameters": n_params, "valid": final, "best": best,
                                "curve": hist.val_loss, "seconds": sw.seconds, "cpu": sw.cpu, "sample": sample})
        if cell == "lstm" and args.torch:
            twin_model = LanguageModel(vocab, cell, H, 1, mode="stream", seed=args.seed)
            for k, v in init.items():
                twin_model.params[k] = v                   # the initial weights, before our training
            curve, seconds, cpu = train_lstm_twin(twin_model, data, args.steps, args.lr, args.eval_every, valid)
            t_final = curve[-1][1]
            ratio = t_final / final
            log(f"  PyTorch nn.LSTM: valid {t_final:.4f}; torch / seqmodels = {ratio:.4f} "
                f"({'within' if abs(ratio - 1) <= 0.02 else 'NOT within'} 2%); {seconds:.1f} s wall, {cpu:.1f} s CPU")
            for (s1, a), (s2, b) in zip(hist.val_loss, curve):
                log(f"    step {s1}: seqmodels {a:.4f}  torch {b:.4f}  ratio {b / a:.4f}")
            rows.append(["PyTorch nn.LSTM (same init, data, steps)", H, f"{n_params:,}", t_final,
                         min(v for _, v in curve), f"{seconds:.0f} / {cpu:.0f}"])
            results["rows"].append({"model": "torch-lstm", "valid": t_final, "curve": curve, "ratio": ratio,
                                    "seconds": seconds, "cpu": cpu})

    log("\n" + markdown_table(["model", "H", "parameters", "final valid nats/char", "best valid",
                                  "seconds (wall / CPU)"], rows))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
