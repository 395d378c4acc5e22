"""``seqmodels demo``: the main job on its embedded default.

Trains a character-level LSTM for a fixed time budget (about two minutes on 2 CPU cores) on prose that
ships with every Python installation — the docstrings of the standard library — and shows what it
learned: the loss falling, the n-gram baseline it has to beat, samples at three temperatures, and the
notes' sentence-probability comparison. No network needed; ``--corpus shakespeare`` downloads
tiny-shakespeare once (SHA-256 checked) and ``--corpus PATH`` uses any text file.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from ..data.corpora import fetch, python_docstrings
from ..data.readers import read_text
from ..models.language_model import LanguageModel
from ..models.ngram import NGramLM
from ..text import Vocabulary
from ..training.loop import History, TrainConfig, train
from ..training.progress import Progress
from .common import log, plot_history, write_json
from .lm import MODEL_SUBDIR, split_corpus

SENTENCES = [
    ("the apple and pear salad", "the apple and pair salad"),
    ("return the number of items in the list", "return the number of itmes in the list"),
]


def load_corpus(name: str) -> tuple[str, str]:
    if name == "python-docs":
        return python_docstrings(), "docstrings of Python's standard library"
    if name in ("shakespeare", "tiny-shakespeare"):
        return read_text(fetch("shakespeare")), "tiny-shakespeare"
    return read_text(name), str(name)


def run_demo(args) -> int:
    text, source = load_corpus(args.corpus)
    train_text, valid_text = split_corpus(text, 0.1)
    vocab = Vocabulary.from_text(train_text, level="char", lines_as_sequences=True, order="sorted")
    model = LanguageModel(vocab, "lstm", args.hidden, 1, seed=args.seed)
    data = model.batcher(train_text, batch_size=32, seq_len=64, seed=args.seed)
    valid = model.batcher(valid_text, batch_size=16, seq_len=64, shuffle=False)
    print(f"seqmodels demo: a character-level LSTM ({args.hidden} units, {model.num_parameters():,} parameters) "
          f"learns {source}\n  {len(train_text):,} characters to train on, {len(valid_text):,} held out, "
          f"{len(vocab) - 3} distinct characters", flush=True)

    # calibrate the number of steps to the time budget
    probe = TrainConfig(optimizer="adam", lr=3e-3, steps=1, clip="norm", clip_value=5.0)
    train(model, data, probe, progress=False)                    # warm-up (first-call costs)
    probe = TrainConfig(optimizer="adam", lr=3e-3, steps=3, clip="norm", clip_value=5.0)
    t0 = time.perf_counter()
    train(model, data, probe, progress=False)
    per_step = (time.perf_counter() - t0) / 3
    steps = max(int(args.seconds * 0.85 / per_step), 20)
    config = TrainConfig(optimizer="adam", lr=3e-3, steps=steps, clip="norm", clip_value=5.0,
                         schedule={"name": "cosine", "total_steps": steps, "min_lr": 3e-4},
                         eval_every=max(steps // 6, 1))
    before = model.evaluate(valid)
    print(f"\nbefore training: validation loss {before:.3f} nats/char (uniform guessing: "
          f"{math.log(len(vocab) - 3):.3f})\n\n  {'step':>6}  {'train loss':>10}  {'valid loss':>10}", flush=True)
    history = History(step=4, tokens=4 * 32 * 64)

    def on_eval(step, value):
        recent = [v for s, v in history.loss[-20:]]
        print(f"  {step:>6}  {sum(recent) / max(len(recent), 1):>10.3f}  {value:>10.3f}", flush=True)

    def validate():
        v = model.evaluate(valid)
        on_eval(history.step, v)
        return v

    bar = Progress(steps, "train", enabled=not args.no_progress, initial=4)
    history = train(model, data, config, validate=validate, progress=bar, history=history)
    final = history.val_loss[-1][1]
    print(f"\ntrained {history.step} steps in {history.seconds:.0f}s: validation loss {before:.3f} -> "
          f"{final:.3f} nats/char (perplexity {math.exp(final):.2f})", flush=True)

    # the baseline the RNN must beat
    def seqs(t):
        return [list(line) + ["<EOS>"] for line in t.split("\n")]

    best = None
    for n in (3, 5):
        ngram = NGramLM(n, smoothing="kneser_ney").fit(seqs(train_text))
        ppl = ngram.perplexity(seqs(valid_text))
        best = ppl if best is None else min(best, ppl)
        print(f"  {n}-gram Kneser-Ney baseline: {math.log(ppl):.3f} nats/char (perplexity {ppl:.2f})")
    verdict = "beats" if math.exp(final) < best else "does not yet beat"
    print(f"  the LSTM {verdict} the best n-gram baseline on held-out text", flush=True)

    print("\nsamples (the model writes one character at a time, feeding each back in):")
    prime = "The " if all(ch in vocab for ch in "The ") else ""
    for temperature in (0.5, 0.8, 1.0):
        sample = model.sample(1, 240, temperature=temperature, seed=args.seed, prime=prime)[0]
        print(f"\n  temperature {temperature}:\n    {prime}" + sample.replace("\n", "\n    "))

    print("\nsentence probabilities, log P = sum of log P(y<t> | y<1..t-1>) over the characters:")
    for a, b in SENTENCES:
        if not all(ch in vocab for ch in a + b):
            print(f"  (skipping {a!r}: the corpus lacks some of its characters)")
            continue
        pa, pb = model.log_prob(a).total, model.log_prob(b).total
        more = a if pa > pb else b
        print(f"  log P({a!r}) = {pa:8.3f}\n  log P({b!r}) = {pb:8.3f}\n    -> the model finds {more!r} "
              f"{math.exp(abs(pa - pb)):.1f}x more probable")

    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / MODEL_SUBDIR, meta={"history": history.to_dict(), "step": history.step})
        write_json(out / "history.json", history.to_dict())
        png = plot_history(history, out / "loss.png", title=f"demo: character LSTM on {source}")
        log(f"saved to {out}" + (f" (loss curve {png})" if png else ""))
    return 0
