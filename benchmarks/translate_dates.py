"""Dates written many human ways -> ISO ``YYYY-MM-DD`` with the encoder–decoder (the notes' MT example in small).

Train on N generated pairs (:mod:`seqmodels.data.dates`), validate on 1,000 more, then score a held-out
test set of ``--test-per-style`` pairs for each of the 11 styles (seeded, none of its strings in the
training or validation data): exact match (the whole date right) and character BLEU-4, greedy and
beam search, overall and per style, plus the wrong answers.

    OPENBLAS_NUM_THREADS=1 python benchmarks/translate_dates.py            # ~4 min on one busy core
    OPENBLAS_NUM_THREADS=1 python benchmarks/translate_dates.py --unidirectional --out /tmp/uni.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from seqmodels.data.dates import STYLES, generate_dates  # noqa: E402
from seqmodels.models.bleu import corpus_bleu  # noqa: E402
from seqmodels.models.seq2seq import Seq2Seq  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=int, default=20000, help="training pairs (default 20000)")
    p.add_argument("--test-per-style", type=int, default=1000, help="test pairs per style (default 1000)")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--embedding-dim", type=int, default=32)
    p.add_argument("--cell", default="lstm", choices=("lstm", "gru", "rnn"))
    p.add_argument("--unidirectional", action="store_true", help="unidirectional encoder (default: bidirectional)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--beam", type=int, default=3, help="beam width scored besides greedy (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)

    train = generate_dates(args.train, seed=args.seed)
    seen = {h for h, _ in train}
    valid = generate_dates(1000, seed=args.seed + 1, exclude=seen)
    seen |= {h for h, _ in valid}
    test = {}
    for i, style in enumerate(STYLES):
        test[style] = generate_dates(args.test_per_style, seed=args.seed + 100 + i, styles=[style], exclude=seen)
    src, tgt = [h for h, _ in train], [i for _, i in train]
    sv, tv = Seq2Seq.build_vocabularies(src, tgt, level="char")
    model = Seq2Seq(sv, tv, args.cell, args.hidden, 1, bidirectional_encoder=not args.unidirectional,
                    embedding_dim=args.embedding_dim, seed=args.seed)
    print(f"{model.num_parameters():,} parameters; vocabularies {len(sv)} -> {len(tv)} characters; "
          f"{len(train):,} training pairs, {sum(map(len, test.values())):,} test pairs", file=sys.stderr)
    t0 = time.perf_counter()
    history = model.fit(src, tgt, [h for h, _ in valid], [i for _, i in valid], batch_size=args.batch_size,
                        epochs=args.epochs, lr=args.lr, eval_every=-(-len(train) // args.batch_size),
                        seed=args.seed)
    train_s = time.perf_counter() - t0

    results = {"config": vars(args), "parameters": model.num_parameters(), "train_seconds": round(train_s, 1),
               "steps": history.step, "final_valid_loss": history.val_loss[-1][1], "decoders": {}}
    sources = [h for s in STYLES for h, _ in test[s]]
    refs = [i for s in STYLES for _, i in test[s]]
    for name, beam in (("greedy", 1), (f"beam{args.beam}", args.beam)):
        t0 = time.perf_counter()
        hyps = model.translate(sources, beam=beam)
        dec_s = time.perf_counter() - t0
        right = [h == r for h, r in zip(hyps, refs)]
        per_style, k = {}, 0
        for s in STYLES:
            n = len(test[s])
            per_style[s] = sum(right[k:k + n]) / n
            k += n
        wrong = [(s, h, r) for s, h, r, ok in zip(sources, hyps, refs, right) if not ok]
        bleu = corpus_bleu([list(h) for h in hyps], [list(r) for r in refs]).bleu
        results["decoders"][name] = {"exact_match": sum(right) / len(right), "char_bleu": bleu,
                                     "per_style": per_style, "decode_seconds": round(dec_s, 1),
                                     "errors": len(wrong), "some_errors": wrong[:10]}
    print(f"\ntrained {history.step} steps in {train_s:.0f} s; final validation loss "
          f"{results['final_valid_loss']:.5f} nats/char")
    print("\n| style | " + " | ".join(results["decoders"]) + " |\n|---|" + "---|" * len(results["decoders"]))
    for s in STYLES:
        print(f"| `{s}` | " + " | ".join(f"{100 * d['per_style'][s]:.2f}%" for d in results["decoders"].values())
              + " |")
    print("| **all** | " + " | ".join(f"**{100 * d['exact_match']:.2f}%** (BLEU {100 * d['char_bleu']:.2f})"
                                      for d in results["decoders"].values()) + " |")
    for name, d in results["decoders"].items():
        print(f"\n{name}: {d['errors']} wrong of {len(sources)}; decoding took {d['decode_seconds']} s")
        for s, h, r in d["some_errors"]:
            print(f"  {s!r:36} -> {h}   (expected {r})")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
