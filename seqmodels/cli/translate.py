"""``seqmodels translate train|eval|predict``: the encoder–decoder on sentence pairs (Tx ≠ Ty).

Data: a TSV file of ``source<TAB>target`` lines (``--train FILE``; the manythings/Tatoeba files work as
they are), or ``--dates N``: N generated dates written many human ways -> ISO ``YYYY-MM-DD``
(:mod:`seqmodels.data.dates`). Without ``--valid``, a seeded ``--valid-fraction`` of the pairs is held
out (by distinct source sentence, so no validation source is seen in training).

A run directory written by ``train`` holds ``model/`` (the checkpoint, resumable with ``--resume``),
``history.json``, ``loss.png`` (with matplotlib) and ``valid_scores.json``. ``eval`` and ``predict``
accept the run directory or the checkpoint directory; ``eval`` prints JSON (BLEU and exact match in
[0, 1], loss in nats per target token), ``predict`` one translation per input line (FILE or ``-``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..core.errors import CheckpointError, ConfigError, DataError
from ..data.dates import generate_dates
from ..data.readers import read_parallel, read_text
from ..models.base import Model
from ..models.seq2seq import PENALTIES, Seq2Seq
from ..training.loop import TrainConfig
from ..training.progress import Progress
from .common import resolve_checkpoint as _resolve_checkpoint
from .common import (add_model_arguments, add_training_arguments, cell_options, dtype_of, log, plot_history,
                     positive_int, probability, train_config, write_json)

MODEL_SUBDIR = "model"
DATA_KEYS = ("train", "dates", "valid", "valid_fraction", "max_words", "batch_size", "seed")


def resolve_checkpoint(path) -> Path:
    """A run directory (holding model/) or a checkpoint directory -> the checkpoint directory."""
    return _resolve_checkpoint(path, "translate train")

def load_translator(path, *, return_checkpoint: bool = False):
    model, ck = Model.load(resolve_checkpoint(path), return_checkpoint=True)
    if not isinstance(model, Seq2Seq):
        raise CheckpointError(f"{path}: holds a {model.kind!r} model, expected a seq2seq translator")
    return (model, ck) if return_checkpoint else model


def split_pairs(src, tgt, fraction: float, seed: int):
    """Hold out a seeded ``fraction`` of the distinct source sentences (with all their targets)."""
    uniq = sorted(set(src))
    rng = np.random.default_rng(seed)
    held = set(uniq[i] for i in rng.permutation(len(uniq))[:int(round(fraction * len(uniq)))])
    train = [(s, t) for s, t in zip(src, tgt) if s not in held]
    valid = [(s, t) for s, t in zip(src, tgt) if s in held]
    return train, valid


def _unzip(pairs):
    return [s for s, _ in pairs], [t for _, t in pairs]


def load_pairs(args):
    """(train pairs, valid pairs) from --train/--dates, --valid or --valid-fraction, --max-words."""
    if args.dates:
        train = generate_dates(args.dates, seed=args.seed)
        valid = generate_dates(max(args.dates // 20, 100), seed=args.seed + 1, exclude={s for s, _ in train})
        return train, valid
    src, tgt = read_parallel(args.train)
    pairs = list(zip(src, tgt))
    if args.max_words:
        pairs = [(s, t) for s, t in pairs if len(s.split()) <= args.max_words and len(t.split()) <= args.max_words]
        if not pairs:
            raise DataError(f"{args.train}: no pair has at most {args.max_words} words on both sides")
    if args.valid:
        return pairs, list(zip(*read_parallel(args.valid)))
    if args.valid_fraction > 0:
        train, valid = split_pairs(*_unzip(pairs), args.valid_fraction, args.seed)
        return train, (valid or None)
    return pairs, None


def cmd_train(args) -> int:
    ck = None
    if args.resume:
        model, ck = load_translator(args.resume, return_checkpoint=True)
        for key, value in ck.meta.get("data_config", {}).items():
            setattr(args, key, value)
        out = Path(args.resume)
    else:
        if args.train is None and args.dates is None:
            raise ConfigError("give the training data: --train FILE (source<TAB>target) or --dates N")
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out}: exists and is not a directory")
        if (out / MODEL_SUBDIR / "checkpoint.json").exists() and not args.force:
            raise ConfigError(f"--out {out}: already holds a trained model; use --resume {out} to continue it "
                              "or --force to replace it")
    train, valid = load_pairs(args)
    if ck is None:
        level = args.level or ("char" if args.dates else "word")
        sv, tv = Seq2Seq.build_vocabularies(*_unzip(train), level=level, max_size=args.max_vocab,
                                            min_count=args.min_count)
        model = Seq2Seq(sv, tv, args.cell, args.hidden, args.layers, bidirectional_encoder=args.bidirectional,
                        bridge=args.bridge, embedding_dim=args.embedding_dim, dropout=args.dropout,
                        dtype=dtype_of(args), seed=args.seed, **cell_options(args))
        per_epoch = -(-len(train) // args.batch_size)
        config = train_config(args, total_steps=args.steps or per_epoch * args.epochs)
        if valid and config.eval_every == 0:
            config = TrainConfig.from_dict({**config.to_dict(), "eval_every": per_epoch})
    else:
        config = TrainConfig.from_dict(ck.meta["train_config"])
        if args.steps and args.steps != config.steps:
            config = TrainConfig.from_dict({**config.to_dict(), "steps": args.steps, "epochs": 1})
    total = config.steps or -(-len(train) // args.batch_size) * config.epochs
    log(f"seqmodels translate train: {'bi' if model.bidirectional_encoder else 'uni'}directional {model.cell} "
        f"{model.num_layers}x{model.hidden_size}, {model.num_parameters():,} parameters, vocabularies "
        f"{len(model.src_vocab):,} -> {len(model.tgt_vocab):,} {model.src_vocab.level}s, {len(train):,} training "
        f"pairs, {len(valid or []):,} validation pairs, {total:,} steps")
    out.mkdir(parents=True, exist_ok=True)
    bar = Progress(total, "train", enabled=not args.no_progress, initial=ck.meta["step"] if ck else 0)
    data_config = {k: getattr(args, k) for k in DATA_KEYS}
    vs, vt = _unzip(valid) if valid else (None, None)
    history = model.fit(*_unzip(train), vs, vt, batch_size=args.batch_size, seed=args.seed, config=config,
                        checkpoint_dir=out / MODEL_SUBDIR, progress=bar, resume=ck,
                        checkpoint_meta={"data_config": data_config})
    write_json(out / "history.json", history.to_dict())
    png = plot_history(history, out / "loss.png", title="translate train")
    log(f"done: {history.step} steps in {history.seconds:.1f}s; saved to {out / MODEL_SUBDIR}"
        + (f", loss curve {png}" if png else ""))
    if valid:
        scores = _evaluate(model, valid, args)
        write_json(out / "valid_scores.json", scores)
        print(json.dumps({"valid": scores}))
    return 130 if history.interrupted else 0


def _evaluate(model, pairs, args) -> dict:
    """Scores with every reference of a repeated source (multi-reference BLEU and exact match)."""
    groups: dict[str, list[str]] = {}
    for s, t in pairs:
        groups.setdefault(s, []).append(t)
    sources = list(groups)
    return model.evaluate(sources, [groups[s][0] for s in sources], references=[groups[s] for s in sources],
                          beam=args.beam, alpha=args.alpha, length_penalty=args.length_penalty,
                          max_len=args.max_len)


def cmd_eval(args) -> int:
    model = load_translator(args.model)
    if (args.file is None) == (args.dates is None):
        raise ConfigError("give exactly one of FILE (source<TAB>target) or --dates N")
    if args.dates:
        pairs = generate_dates(args.dates, seed=args.seed)
    else:
        pairs = list(zip(*read_parallel(args.file)))
    scores = _evaluate(model, pairs, args)
    print(json.dumps(scores))
    log(f"BLEU {100 * scores['bleu']:.2f}, exact match {100 * scores['exact_match']:.2f}% on {scores['n']} "
        f"distinct sources, loss {scores['loss']:.4f} nats/token")
    return 0


def cmd_predict(args) -> int:
    model = load_translator(args.model)
    if args.file == "-":
        text, name = sys.stdin.read(), "<stdin>"
    else:
        text, name = read_text(args.file), args.file
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    blank = next((no for no, line in enumerate(lines, 1) if not line.strip()), None)
    if blank is not None:
        raise DataError(f"{name}, line {blank}: empty source sentence; expected one sentence per line")
    if not lines:
        raise DataError(f"{name}: no sentences to translate")
    for line in model.translate([line.strip() for line in lines], beam=args.beam, alpha=args.alpha,
                                length_penalty=args.length_penalty, max_len=args.max_len):
        print(line)
    return 0


def _add_decoding(p) -> None:
    g = p.add_argument_group("decoding")
    g.add_argument("--beam", type=positive_int, default=1, help="beam width (1: greedy, the default)")
    g.add_argument("--alpha", type=float, default=0.0, help="length normalisation exponent (default 0: none)")
    g.add_argument("--length-penalty", choices=PENALTIES, default="gnmt",
                   help="lp = ((5+|Y|)/6)^alpha (gnmt) or |Y|^alpha (simple)")
    g.add_argument("--max-len", type=positive_int, default=None,
                   help="most output tokens (default: 2 x source length + 10)")


def register(subparsers) -> None:
    p = subparsers.add_parser("translate", help="encoder-decoder translation: train, eval, predict",
                              description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True

    t = sub.add_parser("train", help="train a translator on TSV pairs or generated dates")
    data = t.add_argument_group("data")
    src = data.add_mutually_exclusive_group()
    src.add_argument("--train", metavar="FILE", help="training pairs, source<TAB>target per line")
    src.add_argument("--dates", type=positive_int, metavar="N", help="generate N human-date -> ISO pairs")
    data.add_argument("--valid", metavar="FILE", help="validation pairs (default: --valid-fraction of --train)")
    data.add_argument("--valid-fraction", type=probability, default=0.05,
                      help="held-out fraction of the distinct sources when there is no --valid (default 0.05)")
    data.add_argument("--max-words", type=positive_int, default=None,
                      help="keep pairs with at most N space-separated words on each side")
    data.add_argument("--level", choices=("char", "word"), default=None,
                      help="tokens of both sides (default: char for --dates, word for files)")
    data.add_argument("--min-count", type=positive_int, default=1, help="rarer training tokens become <UNK>")
    data.add_argument("--max-vocab", type=positive_int, default=None, help="keep the K most frequent tokens")
    runs = t.add_mutually_exclusive_group(required=True)
    runs.add_argument("--out", help="new run directory (model/, history.json, loss.png)")
    runs.add_argument("--resume", help="continue the run in this directory where it stopped")
    t.add_argument("--force", action="store_true", help="replace a model already in --out")
    add_model_arguments(t, hidden=128, layers=1)
    g = t.add_argument_group("encoder-decoder")
    g.add_argument("--embedding-dim", type=positive_int, default=64, help="token vector size (default 64)")
    g.add_argument("--bidirectional", action="store_true", help="bidirectional encoder")
    g.add_argument("--bridge", choices=("dense", "sum"), default="dense",
                   help="bidirectional encoder: how its two final states start the decoder (default dense)")
    add_training_arguments(t, epochs=10, lr=3e-3, batch=64)
    _add_decoding(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="BLEU, exact match and loss on TSV pairs (or generated dates)")
    e.add_argument("model", help="run directory or checkpoint directory")
    e.add_argument("file", nargs="?", help="pairs, source<TAB>target per line")
    e.add_argument("--dates", type=positive_int, metavar="N", help="score on N freshly generated dates instead")
    e.add_argument("--seed", type=int, default=12345, help="seed of --dates (default 12345)")
    _add_decoding(e)
    e.set_defaults(func=cmd_eval)

    pr = sub.add_parser("predict", help="translate one sentence per line")
    pr.add_argument("model", help="run directory or checkpoint directory")
    pr.add_argument("file", nargs="?", default="-", help="input text, one sentence per line (default - : stdin)")
    _add_decoding(pr)
    pr.set_defaults(func=cmd_predict)
