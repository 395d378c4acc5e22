"""Binary sentiment on SST-2: BiLSTM classifiers without pre-trained embeddings, about 70 CPU s per model.

Data (``../shared/data/sst2/``): the 67,349 phrase-level training lines of GLUE SST-2 (lower-cased and
tokenized already, so words are split on whitespace), the 872 dev sentences and the 1,821 labelled test
sentences. The model is :class:`~seqmodels.models.classifier.Classifier`: learned word embeddings
(random start), a bidirectional LSTM, pooling over time, softmax over {0, 1}, Adam. The dev sentences
are scored every ``--eval-every`` steps and pick the weights; the test sentences are scored once per
model. Each seed trains one model; with several seeds the script also scores their ensemble (the mean of
their probabilities).

Run::

    OPENBLAS_NUM_THREADS=1 python benchmarks/sentiment_sst2.py                  # the reported runs (seeds 0, 1, 2)
    OPENBLAS_NUM_THREADS=1 python benchmarks/sentiment_sst2.py --pooling last --seeds 0
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

from seqmodels.data.readers import read_tsv  # noqa: E402
from seqmodels.models.classifier import Classifier  # noqa: E402
from seqmodels.models.metrics import classification_scores, format_classification_report  # noqa: E402


def data_dir() -> Path:
    env = os.environ.get("SEQMODELS_DATA")
    return (Path(env) if env else ROOT.parent / "shared" / "data") / "sst2"


def train_one(seed: int, X, y, Xd, yd, args):
    """Train one BiLSTM classifier; the weights with the best dev accuracy are kept."""
    clf = Classifier.from_data(X, y, min_count=args.min_count, lowercase=True, punctuation="keep", cell=args.cell,
                               hidden_size=args.hidden, num_layers=args.layers, bidirectional=True,
                               pooling=args.pooling, embedding_dim=args.embedding_dim, dropout=args.dropout,
                               word_dropout=args.word_dropout, seed=seed)
    best = {"accuracy": -1.0}
    t0, c0 = time.perf_counter(), time.process_time()

    def on_eval(step, loss):
        acc = clf.score(Xd, yd)
        print(f"  seed {seed} step {step:5d} ({time.process_time() - c0:4.0f} CPU s): dev loss {loss:.4f}, "
              f"dev accuracy {100 * acc:.2f}%", flush=True)
        if acc > best["accuracy"]:
            best.update(accuracy=acc, step=step, params={k: v.copy() for k, v in clf.params.items()})

    clf.fit(X, y, valid=(Xd, yd), batch_size=args.batch_size, seed=seed, epochs=args.epochs, lr=args.lr,
            eval_every=args.eval_every, on_eval=on_eval, progress=False, average=args.average or None)
    seconds, wall = time.process_time() - c0, time.perf_counter() - t0
    for k, v in best["params"].items():
        clf.params[k] = v
    return clf, {"seed": seed, "dev_accuracy": best["accuracy"], "best_step": best["step"], "cpu_seconds": seconds,
                 "wall_seconds": wall, "parameters": clf.num_parameters()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=None, help="folder with train.tsv, dev.tsv, test.tsv")
    p.add_argument("--cell", default="lstm")
    p.add_argument("--pooling", default="max", choices=("last", "mean", "max"))
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--embedding-dim", type=int, default=100)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--word-dropout", type=float, default=0.0)
    p.add_argument("--min-count", type=int, default=1)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-every", type=int, default=200, help="steps between dev evaluations")
    p.add_argument("--average", type=float, default=0.0, help="decay of the moving average of the weights that "
                   "the dev set scores and the model keeps (e.g. 0.999; 0: off)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds; more than one also reports their "
                   "ensemble (averaged probabilities)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    d = args.data or data_dir()
    X, y = read_tsv(d / "train.tsv")
    Xd, yd = read_tsv(d / "dev.tsv")
    Xt, yt = read_tsv(d / "test.tsv")
    print(f"SST-2: {len(X):,} training phrases, {len(Xd)} dev, {len(Xt)} test; settings {vars(args)}", flush=True)
    runs, probs = [], []
    for seed in [int(x) for x in args.seeds.split(",")]:
        clf, run = train_one(seed, X, y, Xd, yd, args)
        probs.append(clf.predict_proba(Xt))
        s = clf.evaluate(Xt, yt)
        run.update(test_accuracy=s["accuracy"], test=s)
        runs.append(run)
        print(f"seed {seed}: best dev accuracy {100 * run['dev_accuracy']:.2f}% at step {run['best_step']}; "
              f"{clf.num_parameters():,} parameters, vocabulary {len(clf.vocab):,}; {run['cpu_seconds']:.0f} CPU s "
              f"({run['wall_seconds']:.0f} s wall)\ntest: " + format_classification_report(s), flush=True)
    accs = 100 * np.array([r["test_accuracy"] for r in runs])
    summary = {"test_accuracy_mean": accs.mean() / 100, "test_accuracy_std": accs.std(ddof=1) / 100 if len(runs) > 1
               else 0.0}
    print(f"\ntest accuracy per seed: {', '.join(f'{a:.2f}%' for a in accs)}"
          + (f"; mean {accs.mean():.2f}% ± {accs.std(ddof=1):.2f}" if len(runs) > 1 else ""))
    if len(runs) > 1:                             # the ensemble: average the seeds' probabilities
        pred = [clf.classes[k] for k in np.mean(probs, axis=0).argmax(axis=1)]
        ens = classification_scores(yt, pred, clf.classes)
        summary["ensemble_test_accuracy"] = ens["accuracy"]
        print(f"ensemble of the {len(runs)} models (mean probability): test accuracy {100 * ens['accuracy']:.2f}%")
    if args.json:
        args.json.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                         "runs": runs, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
