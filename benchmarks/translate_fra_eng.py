"""English -> French with the encoder–decoder on the Tatoeba/manythings pairs (``fra-eng/fra.txt``).

To fit in CPU minutes, the pairs are filtered to short sentences (``--max-words`` whitespace-separated
English words, ``--max-words + 2`` French words). The distinct English sentences are split 90/5/5 with a
seeded permutation, each with all its French translations, so no test sentence is seen in training.
Tokens are lower-cased words with punctuation marks as tokens (``word_tokenize``); tokens seen fewer than
``--min-count`` times in training become ``<UNK>``.

Scores on the test split: corpus BLEU-4 against all the references of each English sentence (the data
has several translations for many sentences), BLEU-4 with one reference per pair (each pair scored on
its own), exact match (any reference), and the teacher-forced loss; greedy and beam search.

    OPENBLAS_NUM_THREADS=1 python benchmarks/translate_fra_eng.py              # ~9 min on one busy core
    OPENBLAS_NUM_THREADS=1 python benchmarks/translate_fra_eng.py --hidden 256 --embedding-dim 128 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from seqmodels.data import read_parallel  # noqa: E402
from seqmodels.models.bleu import corpus_bleu, exact_match  # noqa: E402
from seqmodels.models.seq2seq import Seq2Seq  # noqa: E402


def default_data() -> Path:
    base = Path(os.environ["SEQMODELS_DATA"]) if "SEQMODELS_DATA" in os.environ else ROOT.parent / "shared" / "data"
    return base / "fra-eng" / "fra.txt"


def split(pairs, seed: int):
    """90/5/5 over the distinct source sentences: {name: {source: [targets]}}."""
    groups: dict[str, list[str]] = {}
    for s, t in pairs:
        groups.setdefault(s, []).append(t)
    sources = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(sources))
    n_train, n_valid = int(0.9 * len(sources)), int(0.05 * len(sources))
    cut = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid], "test": order[n_train + n_valid:]}
    return {name: {sources[i]: groups[sources[i]] for i in idx} for name, idx in cut.items()}


def flat(groups):
    return [s for s, ts in groups.items() for _ in ts], [t for ts in groups.values() for t in ts]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="fra.txt (default: the shared data folder)")
    p.add_argument("--max-words", type=int, default=4, help="longest English sentence kept, in words (default 4)")
    p.add_argument("--min-count", type=int, default=3)
    p.add_argument("--cell", default="lstm", choices=("lstm", "gru", "rnn"))
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--embedding-dim", type=int, default=96)
    p.add_argument("--unidirectional", action="store_true")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--alpha", type=float, default=0.6, help="GNMT length normalisation for the beam (default 0.6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--examples", type=int, default=12)
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)

    src_all, tgt_all = read_parallel(args.data or default_data())
    pairs = [(s, t) for s, t in zip(src_all, tgt_all)
             if len(s.split()) <= args.max_words and len(t.split()) <= args.max_words + 2]
    parts = split(pairs, args.seed)
    train_src, train_tgt = flat(parts["train"])
    valid_src, valid_tgt = flat(parts["valid"])
    sv, tv = Seq2Seq.build_vocabularies(train_src, train_tgt, level="word", min_count=args.min_count)
    model = Seq2Seq(sv, tv, args.cell, args.hidden, args.layers, bidirectional_encoder=not args.unidirectional,
                    embedding_dim=args.embedding_dim, dropout=args.dropout, seed=args.seed)
    sizes = {k: (len(v), sum(map(len, v.values()))) for k, v in parts.items()}
    print(f"{len(pairs):,} pairs of <= {args.max_words} English words; distinct sources / pairs: {sizes}; "
          f"vocabularies {len(sv):,} -> {len(tv):,}; {model.num_parameters():,} parameters", file=sys.stderr)
    t0 = time.perf_counter()
    history = model.fit(train_src, train_tgt, valid_src, valid_tgt, batch_size=args.batch_size, epochs=args.epochs,
                        lr=args.lr, eval_every=-(-len(train_src) // args.batch_size), seed=args.seed)
    train_s = time.perf_counter() - t0

    test = parts["test"]
    sources = list(test)
    refs = [[tv.tokenize(t) for t in test[s]] for s in sources]
    unk = sum(tok not in tv for r in refs for ref in r for tok in ref) / sum(len(ref) for r in refs for ref in r)
    test_src, test_tgt = flat(test)
    results = {"config": {k: str(v) for k, v in vars(args).items()}, "pairs": len(pairs), "split": sizes,
               "vocab": [len(sv), len(tv)], "parameters": model.num_parameters(), "steps": history.step,
               "train_seconds": round(train_s, 1), "valid_loss": history.val_loss,
               "test_loss": model.loss(model.batcher(test_src, test_tgt, shuffle=False)),
               "test_reference_tokens_unknown": unk, "decoders": {}}
    rng = np.random.default_rng(args.seed + 1)
    shown = sorted(rng.choice(len(sources), size=min(args.examples, len(sources)), replace=False).tolist())
    outputs = {}
    for name, beam in (("greedy", 1), (f"beam{args.beam}", args.beam)):
        t0 = time.perf_counter()
        hyps = model.decode(sources, beam=beam, alpha=args.alpha if beam > 1 else 0.0)
        dec_s = time.perf_counter() - t0
        toks = [model.tokens(h.ids) for h in hyps]
        outputs[name] = [model.detokenize(t) for t in toks]
        multi = corpus_bleu(toks, refs, multi_reference=True)
        single = corpus_bleu([t for t, r in zip(toks, refs) for _ in r], [x for r in refs for x in r])
        results["decoders"][name] = {
            "bleu_multi_reference": multi.bleu, "bleu_single_reference": single.bleu,
            "precisions": multi.precisions, "bp": multi.bp,
            "exact_match": exact_match(toks, refs, multi_reference=True),
            "decode_seconds": round(dec_s, 1)}
    results["examples"] = [{"source": sources[i], "references": test[sources[i]],
                            **{name: outputs[name][i] for name in outputs}} for i in shown]

    print(f"\ntrained {history.step} steps ({args.epochs} epochs) in {train_s:.0f} s; test loss "
          f"{results['test_loss']:.3f} nats/token; {100 * unk:.1f}% of the test reference tokens are unknown")
    print("\n| decoder | BLEU (all refs) | BLEU (one ref per pair) | exact match | decode s |\n|---|---|---|---|---|")
    for name, d in results["decoders"].items():
        print(f"| {name} | {100 * d['bleu_multi_reference']:.2f} | {100 * d['bleu_single_reference']:.2f} | "
              f"{100 * d['exact_match']:.1f}% | {d['decode_seconds']} |")
    print()
    for ex in results["examples"]:
        print(f"EN  {ex['source']}")
        for name in outputs:
            print(f"{name:>8}  {ex[name]}")
        print(f"     ref  {' | '.join(ex['references'][:3])}\n")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
