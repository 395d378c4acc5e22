"""Named-entity recognition on WNUT-17: uni- vs bidirectional LSTM taggers, 1 vs 2 layers.

The notes' claim: a bidirectional RNN is the better first choice for tagging, because the tag of a word
depends on the words after it too. Measured here on WNUT-17 (``../shared/data/wnut17/``, CC BY 4.0;
noisy social-media text, 6 entity types, IOB2 tags): every configuration is the same
:class:`~seqmodels.models.tagger.Tagger` (learned word embeddings, no characters, no pre-trained vectors,
case kept) trained on the training file with Adam; the development file picks the epoch (the weights
with the best dev entity F1 are kept) and the test file is scored once, with the conlleval rules.

Run (each run takes one to three CPU minutes)::

    OPENBLAS_NUM_THREADS=1 python benchmarks/ner_wnut17.py --seeds 0,1,2        # the reported runs
    OPENBLAS_NUM_THREADS=1 python benchmarks/ner_wnut17.py --configs bi1 --epochs 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from seqmodels.data.readers import read_conll  # noqa: E402
from seqmodels.models.tagger import Tagger  # noqa: E402

CONFIGS = {"uni1": (False, 1), "bi1": (True, 1), "uni2": (False, 2), "bi2": (True, 2)}


def data_dir() -> Path:
    env = os.environ.get("SEQMODELS_DATA")
    return (Path(env) if env else ROOT.parent / "shared" / "data") / "wnut17"


def run(name: str, seed: int, train, dev, test, args) -> dict:
    bidirectional, layers = CONFIGS[name]
    tagger = Tagger.from_data(train, min_count=args.min_count, cell=args.cell, hidden_size=args.hidden,
                              num_layers=layers, bidirectional=bidirectional, embedding_dim=args.embedding_dim,
                              dropout=args.dropout, word_dropout=args.word_dropout, seed=seed)
    per_epoch = -(-len(train) // args.batch_size)
    best = {"f1": -1.0}

    def on_eval(step, loss):                       # keep the weights with the best dev entity F1
        f1 = tagger.evaluate(dev)["f1"]
        print(f"  {name} seed {seed} epoch {step // per_epoch:2d}: dev loss {loss:.4f}, dev F1 {100 * f1:.2f}",
              flush=True)
        if f1 > best["f1"]:
            best.update(f1=f1, epoch=step // per_epoch, params={k: v.copy() for k, v in tagger.params.items()})

    t0 = time.process_time()
    tagger.fit(train, dev, batch_size=args.batch_size, seed=seed, epochs=args.epochs, lr=args.lr,
               eval_every=per_epoch, on_eval=on_eval, progress=False)
    seconds = time.process_time() - t0                  # CPU seconds (training + the dev evaluations)
    for k, v in best["params"].items():
        tagger.params[k] = v
    s = tagger.evaluate(test)
    return {"config": name, "seed": seed, "bidirectional": bidirectional, "layers": layers,
            "parameters": tagger.num_parameters(), "vocabulary": len(tagger.vocab), "best_epoch": best["epoch"],
            "dev_f1": best["f1"], "test_precision": s["precision"], "test_recall": s["recall"],
            "test_f1": s["f1"], "test_token_accuracy": s["token_accuracy"],
            "test_per_type_f1": {t: v["f1"] for t, v in s["per_type"].items()}, "cpu_seconds": seconds}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="uni1,bi1,uni2,bi2", help="comma-separated: uni1, bi1, uni2, bi2")
    p.add_argument("--data", type=Path, default=None, help="folder with the WNUT-17 files")
    p.add_argument("--cell", default="lstm")
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--embedding-dim", type=int, default=100)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--word-dropout", type=float, default=0.05)
    p.add_argument("--min-count", type=int, default=2)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--seeds", default="0", help="comma-separated seeds; each configuration runs once per seed")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    d = args.data or data_dir()
    train = read_conll(d / "wnut17train.conll")
    dev = read_conll(d / "emerging.dev.conll")
    test = read_conll(d / "emerging.test.annotated")
    print(f"WNUT-17: {len(train)} / {len(dev)} / {len(test)} sentences; settings {vars(args)}", flush=True)
    results = []
    for name in args.configs.split(","):
        for seed in [int(x) for x in args.seeds.split(",")]:
            r = run(name.strip(), seed, train, dev, test, args)
            results.append(r)
            print(f"{name} seed {seed}: test F1 {100 * r['test_f1']:.2f} (P {100 * r['test_precision']:.2f}, "
                  f"R {100 * r['test_recall']:.2f}), dev F1 {100 * r['dev_f1']:.2f} at epoch {r['best_epoch']}, "
                  f"{r['parameters']:,} parameters, {r['cpu_seconds']:.0f} CPU s", flush=True)
    print("\n| model | layers | parameters | seeds | dev F1 | test precision | test recall | test F1 | "
          "CPU time per run |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.configs.split(","):
        rs = [r for r in results if r["config"] == name.strip()]
        kind = "BiLSTM" if rs[0]["bidirectional"] else "LSTM (left to right)"

        def ms(key):
            v = 100 * np.array([r[key] for r in rs])
            return f"{v.mean():.2f}" + (f" ± {v.std(ddof=1):.2f}" if len(v) > 1 else "")

        print(f"| {kind} | {rs[0]['layers']} | {rs[0]['parameters']:,} | {len(rs)} | {ms('dev_f1')} | "
              f"{ms('test_precision')} | {ms('test_recall')} | {ms('test_f1')} | "
              f"{np.mean([r['cpu_seconds'] for r in rs]):.0f} s |")
    if args.json:
        args.json.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
