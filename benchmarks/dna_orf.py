"""Tagging open reading frames in generated DNA: per-base F1 of a bidirectional vs a unidirectional LSTM.

Data (seqmodels.data.dna): random sequences of 120-240 bases with 1-3 planted ORFs of 10-30 codons
(``ATG`` ... in-frame ``TAA``/``TAG``/``TGA``); the background keeps the shorter ORFs that occur by chance
(decoys, labelled 0), so the model must track the reading frame and the distance to the next in-frame
stop, not just spot ``ATG``. Each base is labelled 1 inside a planted ORF, 0 outside.

Model: ``Tagger`` (seqmodels.models.tagger) with one sigmoid per base (``output="sigmoid"``), one (bi)LSTM
layer over an embedding of what it reads at each base: by default the codon (3-mer) starting there
(``--tokens codon``), or the base alone (``--tokens base``), or the codon and the position modulo 3.
Reported on a held-out test set: per-base precision/recall/F1 of "inside an ORF", and exact ORF recovery
(a predicted run of 1s whose start and end are both exactly right).

    OPENBLAS_NUM_THREADS=1 python benchmarks/dna_orf.py --directions bi      # about 6 minutes each
    OPENBLAS_NUM_THREADS=1 python benchmarks/dna_orf.py --directions uni
    OPENBLAS_NUM_THREADS=1 python benchmarks/dna_orf.py --directions bi --tokens base
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from seqmodels.data.dna import make_orf_dataset  # noqa: E402
from seqmodels.models.tagger import Tagger  # noqa: E402
from seqmodels.text import Vocabulary  # noqa: E402


TOKENIZERS = ("base", "codon", "codon+phase")


def tokens(sequence: str, kind: str) -> list[str]:
    """One token per base: the base itself, the codon (3-mer) starting there (``ATG``; ``TA.`` near the end),
    or that codon and the base's position modulo 3 (``ATG1``)."""
    if kind == "base":
        return list(sequence)
    padded = sequence + ".."
    codons = [padded[i:i + 3] for i in range(len(sequence))]
    return codons if kind == "codon" else [c + str(i % 3) for i, c in enumerate(codons)]


def vocabulary(kind: str) -> Vocabulary:
    """Every token :func:`tokens` can produce (the 4 bases; or 64 codons + 20 end-of-sequence stubs, x3 phases)."""
    if kind == "base":
        return Vocabulary(list("ACGT"), level="word", lowercase=False, punctuation="keep")
    codons = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT"]
    codons += [a + b + "." for a in "ACGT" for b in "ACGT"] + [a + ".." for a in "ACGT"]
    if kind == "codon+phase":
        codons = [c + str(p) for c in codons for p in range(3)]
    return Vocabulary(codons, level="word", lowercase=False, punctuation="keep")


def as_pairs(examples, kind: str) -> list[tuple[list[str], list[str]]]:
    return [(tokens(ex.sequence, kind), ["ORF" if v else "O" for v in ex.labels]) for ex in examples]


def runs(mask: np.ndarray) -> set[tuple[int, int]]:
    """(start, end) of each run of True."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return set(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def scores(model: Tagger, examples, kind: str) -> dict:
    probs = model.predict_proba([tokens(ex.sequence, kind) for ex in examples])
    tp = fp = fn = exact = planted = predicted = 0
    for ex, p in zip(examples, probs):
        pred, gold = p > 0.5, ex.labels.astype(bool)
        tp += int((pred & gold).sum())
        fp += int((pred & ~gold).sum())
        fn += int((~pred & gold).sum())
        found = runs(pred)
        exact += len(found & set(ex.orfs))
        planted += len(ex.orfs)
        predicted += len(found)
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {"precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "accuracy": 1 - (fp + fn) / sum(ex.labels.size for ex in examples),
            "orfs_exact_recall": exact / max(planted, 1), "orfs_exact_precision": exact / max(predicted, 1)}


def show(model: Tagger, ex, kind: str, width: int = 100) -> str:
    """The sequence with gold (``=``) and predicted (``^``) ORF bases under it, around the first ORF."""
    p = model.predict_proba([tokens(ex.sequence, kind)])[0] > 0.5
    s = max(ex.orfs[0][0] - 10, 0) if ex.orfs else 0
    seq = ex.sequence[s:s + width]
    gold = "".join("=" if v else " " for v in ex.labels[s:s + width])
    pred = "".join("^" if v else " " for v in p[s:s + width])
    return f"bases {s}..{s + len(seq) - 1}\n  seq  {seq}\n  gold {gold}\n  pred {pred}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=3000)
    p.add_argument("--valid", type=int, default=200)
    p.add_argument("--test", type=int, default=500)
    p.add_argument("--length", type=int, nargs=2, default=(120, 240), help="bases per sequence (range)")
    p.add_argument("--min-codons", type=int, default=10)
    p.add_argument("--max-codons", type=int, default=30)
    p.add_argument("--hidden", type=int, default=48)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--patience", type=int, default=4, help="early stopping (validations without improvement)")
    p.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    p.add_argument("--directions", nargs="+", choices=("bi", "uni"), default=["bi", "uni"])
    p.add_argument("--tokens", choices=TOKENIZERS, default="codon", help="what the tagger reads at each base")
    p.add_argument("--embedding", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(REPO / "docs" / "dna"))
    args = p.parse_args(argv)
    sizes = (args.train, args.valid, args.test)
    data = make_orf_dataset(sum(sizes), tuple(args.length), min_codons=args.min_codons,
                            max_codons=args.max_codons, seed=args.seed)
    train, valid, test = data[:sizes[0]], data[sizes[0]:sizes[0] + sizes[1]], data[sizes[0] + sizes[1]:]
    inside = np.mean(np.concatenate([ex.labels for ex in test]))
    print(f"data: {len(train)}/{len(valid)}/{len(test)} sequences, {inside:.1%} of test bases inside an ORF",
          flush=True)
    vocab = vocabulary(args.tokens)
    results, example = [], None
    for direction in args.directions:
        model = Tagger(vocab, ["O", "ORF"], args.cell, args.hidden, args.layers, bidirectional=direction == "bi",
                       embedding_dim=args.embedding, output="sigmoid", seed=args.seed)
        t0 = time.perf_counter()
        per_epoch = -(-len(train) // args.batch_size)
        model.fit(as_pairs(train, args.tokens), as_pairs(valid, args.tokens), batch_size=args.batch_size,
                  seed=args.seed, epochs=args.epochs, optimizer="adam", lr=args.lr, clip="norm", clip_value=5.0,
                  eval_every=per_epoch, patience=args.patience, progress=False)
        seconds = time.perf_counter() - t0
        r = {"direction": direction, "hidden": args.hidden, "layers": args.layers,
             "parameters": model.num_parameters(), "seconds": round(seconds, 1),
             "best_epoch": model.history.best_step / per_epoch, **scores(model, test, args.tokens)}
        results.append(r)
        print(f"{direction:3s}-LSTM {args.hidden} units ({r['parameters']} params, {seconds:.0f} s): per-base "
              f"F1 {r['f1']:.4f} (P {r['precision']:.4f}, R {r['recall']:.4f}, accuracy {r['accuracy']:.4f}); "
              f"exact ORFs: recall {r['orfs_exact_recall']:.3f}, precision {r['orfs_exact_precision']:.3f}",
              flush=True)
        if direction == "bi":
            example = show(model, test[0], args.tokens)
    if example:
        print(example)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"dna_results_{args.tokens}_{'_'.join(args.directions)}.json"
    (out / name).write_text(json.dumps({"args": vars(args), "results": results, "example": example}, indent=1))
    print("\n| model | parameters | per-base precision | recall | F1 | exact ORFs recall / precision |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['direction']}-LSTM ({r['hidden']}) | {r['parameters']:,} | {r['precision']:.3f} | "
              f"{r['recall']:.3f} | {r['f1']:.3f} | {r['orfs_exact_recall']:.3f} / {r['orfs_exact_precision']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
