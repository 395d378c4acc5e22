"""The best dinosaur-name model in a few CPU minutes, against the course's RNN and a Kneser-Ney n-gram.

The names (lower-cased, one per line, each ending with ``<EOS>``) are shuffled with a seed and split
80% / 10% / 10% into train / validation / test. The validation names choose the n-gram order, stop the
recurrent models early and pick the hyperparameters; the test names are scored once, at the end. Every
loss is the mean negative log-probability per predicted character, ``<EOS>`` included (nats)::

    loss = -(1/N) Σ_names Σ_t log P(y<t> | y<1..t-1>),   N = Σ_names (len(name) + 1)

Models:
* Kneser-Ney n-grams (interpolated, discounts estimated per order), n = 1..8;
* the course's model (``dinos_course.py``: RNN, 50 units, SGD lr 0.01, clip ±5, one name per step,
  22,001 steps) trained on the training names only;
* the recurrent model of this script: ``LanguageModel(mode="lines")`` (each name from a zero state),
  Adam with a cosine schedule, global-norm clipping, dropout, mini-batches of names bucketed by length,
  validated every epoch, early stopping that restores the best weights.

Run::

    OPENBLAS_NUM_THREADS=1 python benchmarks/dinos_best.py                  # defaults = the reported run
    OPENBLAS_NUM_THREADS=1 python benchmarks/dinos_best.py --cell gru --hidden 128 --epochs 20
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from dinos_course import train_course_model
from lm_common import (Stopwatch, char_sequences, dino_names, dino_vocab, kneser_ney_table, log,
                       markdown_table, set_threads)
from seqmodels.models.language_model import LanguageModel


def split3(names: list[str], seed: int = 0, fraction: float = 0.1):
    """Shuffled names -> (train, valid, test), the last two ``fraction`` of the names each."""
    order = np.random.default_rng(seed).permutation(len(names))
    names = [names[i] for i in order]
    k = int(round(len(names) * fraction))
    return names[:-2 * k], names[-2 * k:-k], names[-k:]


def score(model: LanguageModel, names: list[str]) -> float:
    """Mean nats per predicted character (<EOS> included) over ``names``, zero state, dropout off."""
    return model.evaluate(model.batcher("\n".join(names), batch_size=64, shuffle=False))


def paired_difference(model: LanguageModel, ngram, names: list[str]) -> tuple[float, float]:
    """Mean per-character loss of ``model`` minus the n-gram's on ``names``, and its standard error.

    Per name i: d_i = -log P_model(name_i) + log P_ngram(name_i) (nats); the difference per character is
    Σ d_i / N with N characters, its standard error sqrt(n) · std(d_i) / N over the n names.
    """
    d = np.array([-model.log_prob(s).total + ngram.log_prob(list(s) + ["<EOS>"]).total for s in names])
    N = sum(len(s) + 1 for s in names)
    return float(d.sum() / N), float(math.sqrt(len(d)) * d.std(ddof=1) / N)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cell", default="lstm", choices=("lstm", "gru", "rnn"))
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--embedding", type=int, default=32, help="embedding size (0: one-hot input)")
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.0, help="AdamW's decoupled weight decay")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--average", type=float, default=0.0, help="decay of a moving average of the weights (0: off)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--patience", type=int, default=6, help="epochs without validation improvement")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--skip-baselines", action="store_true", help="only the recurrent model")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    set_threads(args.threads)

    train, valid, test = split3(dino_names(), seed=args.seed)
    vocab = dino_vocab(train + valid + test)
    n_chars = {k: sum(len(s) + 1 for s in v) for k, v in (("train", train), ("valid", valid), ("test", test))}
    log(f"names: {len(train)} train / {len(valid)} valid / {len(test)} test; predicted characters "
        f"{n_chars}; vocabulary {len(vocab)}")
    rows = []

    if not args.skip_baselines:
        table = kneser_ney_table(char_sequences(train), char_sequences(valid), range(1, 9))
        for r in table:
            r["test_loss"] = math.log(r["model"].perplexity(char_sequences(test)))
            log(f"KN {r['n']}-gram: valid {r['valid_loss']:.4f}  test {r['test_loss']:.4f}  ({r['seconds']:.1f} s)")
        best = min(table, key=lambda r: r["valid_loss"])
        rows.append([f"Kneser-Ney {best['n']}-gram (best n on valid)", "-", best["valid_loss"], best["test_loss"],
                     f"{sum(r['seconds'] for r in table):.1f} (all n)"])
        ng_samples = best["model"].sample(200, seed=args.seed, num=args.samples, stop_token="<EOS>")
        for variant in ("course", "lines"):
            with Stopwatch() as sw:
                course, _ = train_course_model(train, vocab, 22001, variant=variant, seed=args.seed)
            v, t = score(course, valid), score(course, test)
            log(f"course RNN-50 ({variant}): valid {v:.4f}  test {t:.4f}  ({sw.seconds:.1f} s)")
            rows.append([f"course RNN, 50 units, SGD, 22,001 names ({variant})", course.num_parameters(),
                         v, t, f"{sw.seconds:.1f}"])

    model = LanguageModel(vocab, args.cell, args.hidden, args.layers, embedding_dim=args.embedding or None,
                          dropout=args.dropout, mode="lines", seed=args.seed)
    steps_per_epoch = len(model.batcher("\n".join(train), batch_size=args.batch))
    total = steps_per_epoch * args.epochs
    n_params = model.num_parameters()
    log(f"\n{args.cell.upper()} {args.layers}x{args.hidden}, embedding {args.embedding or 'one-hot'}, dropout "
        f"{args.dropout}, {n_params:,} parameters; Adam lr {args.lr} (weight decay {args.weight_decay}) cosine "
        f"over {total} steps, batch {args.batch}")
    with Stopwatch() as sw:
        history = model.fit("\n".join(train), "\n".join(valid), batch_size=args.batch, seed=args.seed,
                            progress=False, optimizer="adam", lr=args.lr, clip="norm", clip_value=5.0,
                            optimizer_options={"weight_decay": args.weight_decay, "decoupled_weight_decay": True},
                            epochs=args.epochs, eval_every=steps_per_epoch, patience=args.patience,
                            average=args.average or None,
                            schedule={"name": "cosine", "total_steps": total, "min_lr": args.lr / 20})
    for step, val in history.val_loss:
        log(f"  epoch {step // steps_per_epoch:3d}: valid {val:.4f}")
    v, t = score(model, valid), score(model, test)
    log(f"best epoch {history.best_step // steps_per_epoch} (stopped early: {history.stopped_early}); "
        f"valid {v:.4f}  test {t:.4f}  ({sw.seconds:.1f} s)")
    rows.append([f"{args.cell.upper()} {args.layers}x{args.hidden}, emb {args.embedding or 'one-hot'}, "
                 f"dropout {args.dropout}, Adam", n_params, v, t, f"{sw.seconds:.1f}"])

    log("\n" + markdown_table(["model", "parameters", "valid nats/char", "test nats/char", "train seconds"], rows))
    if not args.skip_baselines:
        diff, se = paired_difference(model, best["model"], test)
        log(f"\ntest, {args.cell.upper()} minus {best['n']}-gram: {diff:+.4f} nats/char, standard error {se:.4f} "
            f"(paired over the {len(test)} test names)")
    known = set(train)
    samples = model.sample(args.samples, 40, seed=args.seed + 1, reject_unk=True)
    new = sum(s not in known for s in samples)
    log(f"\n{args.samples} samples (temperature 1, reject_unk), {new} not in the training names (* = copied):")
    log(", ".join(s.capitalize() + ("" if s not in known else "*") for s in samples))
    if not args.skip_baselines:
        ng_names = ["".join(s) for s in ng_samples]
        log(f"\n{args.samples} samples of the {best['n']}-gram, {sum(s not in known for s in ng_names)} not in the "
            "training names:")
        log(", ".join(s.capitalize() + ("" if s not in known else "*") for s in ng_names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
