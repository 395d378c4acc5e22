"""``seqmodels tag train|eval|predict``: named-entity (or any sequence) tagging from CoNLL files.

A run directory written by ``train`` holds ``model/`` (the checkpoint, resumable), ``history.json``,
``loss.png`` (with matplotlib) and, with ``--dev``, ``dev_scores.json``. ``eval`` and ``predict`` accept
the run directory or the checkpoint directory. ``predict`` reads plain text, one sentence per line (FILE
or ``-`` for stdin), and prints, by ``--format``:

* ``entities`` (default): one line per entity, ``line<TAB>start-end<TAB>type<TAB>text`` (tokens
  ``start`` to ``end - 1``, counted from 0);
* ``inline``: each sentence with its entities bracketed, ``[New York|location] is big``;
* ``conll``: ``token<TAB>tag<TAB>probability`` per token, a blank line after each sentence.

The helpers here (run directories, input lines, the training driver) are shared with ``classify``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..core.errors import CheckpointError, ConfigError, DataError
from ..data.readers import read_conll, read_text
from ..models.base import Model
from ..models.metrics import entities, format_entity_report
from ..models.tagger import Tagger
from ..text import word_tokenize
from ..training.loop import TrainConfig
from ..training.progress import Progress
from .common import resolve_checkpoint as _resolve_checkpoint
from .common import (add_model_arguments, add_training_arguments, cell_options, dtype_of, log, plot_history,
                     positive_int, probability, train_config, write_json)

MODEL_SUBDIR = "model"


# ------------------------------------------------------------------ shared with classify
def resolve_checkpoint(path) -> Path:
    """A run directory (holding model/) or a checkpoint directory -> the checkpoint directory."""
    return _resolve_checkpoint(path, "tag train' or 'seqmodels classify train")

def load_model(path, cls, *, return_checkpoint: bool = False):
    """Load the model in a run/checkpoint directory, insisting on its class."""
    model, ck = Model.load(resolve_checkpoint(path), return_checkpoint=True)
    if not isinstance(model, cls):
        raise CheckpointError(f"{path}: holds a {model.kind!r} model, expected a {cls.kind}")
    return (model, ck) if return_checkpoint else model


def input_lines(source: str) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines of FILE, or of stdin for ``-``."""
    if source == "-":
        text = sys.stdin.read()
        name = "<stdin>"
    else:
        text, name = read_text(source), source
    lines = [(no, line.strip()) for no, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not lines:
        raise DataError(f"{name}: no text to process (every line is blank)")
    return lines


def in_file(path, call):
    """Run ``call()``, prefixing a DataError's message with ``path`` (for errors that name a line)."""
    try:
        return call()
    except DataError as err:
        raise DataError(f"{path}: {err}") from None


def prepare_run(args, cls, build):
    """(model, resume checkpoint or None, out dir) for a train command; refuses to overwrite a trained run."""
    if args.resume:
        model, ck = load_model(args.resume, cls, return_checkpoint=True)
        for key, value in ck.meta.get("data_config", {}).items():
            setattr(args, key, value)
        return model, ck, Path(args.resume)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    if (out / MODEL_SUBDIR / "checkpoint.json").exists() and not args.force:
        raise ConfigError(f"--out {out}: already holds a trained model; use --resume {out} to continue it or "
                          "--force to replace it")
    return build(), None, out


def run_training(model, fit, args, ck, out: Path, n_train: int, describe: str, on_dev=None):
    """Train with a progress bar, checkpoints in ``out/model``, history.json and loss.png; returns history."""
    if ck is not None:
        config = TrainConfig.from_dict(ck.meta["train_config"])
        if args.steps and args.steps != config.steps:
            config = TrainConfig.from_dict({**config.to_dict(), "steps": args.steps})
    else:
        per_epoch = -(-n_train // args.batch_size)
        config = train_config(args, total_steps=args.steps or per_epoch * args.epochs)
        if args.dev and config.eval_every == 0:
            config = TrainConfig.from_dict({**config.to_dict(), "eval_every": per_epoch})
    total = config.steps or -(-n_train // args.batch_size) * config.epochs
    log(f"seqmodels {describe}: {model.num_parameters():,} parameters, vocabulary {len(model.vocab):,} words, "
        f"{n_train:,} training examples, {total:,} steps")
    out.mkdir(parents=True, exist_ok=True)
    bar = Progress(total, "train", enabled=not args.no_progress, initial=ck.meta["step"] if ck else 0)
    write = bar.write if bar.enabled else log

    def on_eval(step, loss):                        # the loop itself reports the dev loss
        write(f"step {step}: {on_dev()}")

    data_config = {"batch_size": args.batch_size, "seed": args.seed}
    fit(batch_size=args.batch_size, seed=args.seed, config=config, checkpoint_dir=out / MODEL_SUBDIR,
        progress=bar, resume=ck, on_eval=on_eval if on_dev is not None else None,
        checkpoint_meta={"data_config": data_config})
    history = model.history
    write_json(out / "history.json", history.to_dict())
    png = plot_history(history, out / "loss.png", title=describe)
    log(f"done: {history.step} steps in {history.seconds:.1f}s; saved to {out / MODEL_SUBDIR}"
        + (f", loss curve {png}" if png else ""))
    if history.interrupted:
        log(f"interrupted: checkpoint saved at step {history.step}; continue with --resume {out}")
    return history


def add_run_arguments(p, what: str) -> None:
    p.add_argument("--train", required=True, help=f"training data ({what})")
    p.add_argument("--dev", help=f"validation data ({what}), scored every epoch")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", help="new run directory (model/, history.json, loss.png)")
    g.add_argument("--resume", help="continue the run in this directory where it stopped")
    p.add_argument("--force", action="store_true", help="replace a model already in --out")


def add_encoder_arguments(p) -> None:
    add_model_arguments(p, hidden=100, layers=1)
    g = p.add_argument_group("words")
    g.add_argument("--unidirectional", action="store_true", help="read left to right only (default: both ways)")
    g.add_argument("--embedding-dim", type=positive_int, default=100, help="word vector size (default 100)")
    g.add_argument("--min-count", type=positive_int, default=1, help="rarer training words become <UNK>")
    g.add_argument("--max-vocab", type=positive_int, default=None, help="keep the K most frequent words")
    g.add_argument("--word-dropout", type=probability, default=0.0,
                   help="replace training words by <UNK> with this probability (default 0)")


def encoder_options(args) -> dict:
    return dict(cell=args.cell, hidden_size=args.hidden, num_layers=args.layers,
                bidirectional=not args.unidirectional, embedding_dim=args.embedding_dim, dropout=args.dropout,
                word_dropout=args.word_dropout, dtype=dtype_of(args), seed=args.seed, **cell_options(args))


# ------------------------------------------------------------------ tag commands
def _read(path, args):
    return read_conll(path, token_col=args.token_col, tag_col=args.tag_col)


def cmd_train(args) -> int:
    train = _read(args.train, args)
    dev = _read(args.dev, args) if args.dev else None

    def build():
        return Tagger.from_data(train, min_count=args.min_count, max_vocab=args.max_vocab,
                                lowercase=args.lowercase, output=args.output, **encoder_options(args))

    model, ck, out = prepare_run(args, Tagger, build)
    in_file(args.train, lambda: model.encode_pairs(_pairs(train)))
    if dev is not None:
        in_file(args.dev, lambda: model.encode_pairs(_pairs(dev)))

    def on_dev():
        s = model.evaluate(dev)
        return f"dev entity F1 {100 * s['f1']:.2f}" if "f1" in s else f"dev accuracy {100 * s['token_accuracy']:.2f}%"

    describe = (f"tag train: {'bi' if model.bidirectional else 'uni'}directional {model.cell} "
                f"{model.num_layers}x{model.hidden_size}, {len(model.tags)} tags ({model.output})")
    history = run_training(model, lambda **kw: model.fit(train, dev, **kw), args, ck, out, len(train), describe,
                           on_dev if dev is not None else None)
    if dev is not None:
        scores = model.evaluate(dev)
        write_json(out / "dev_scores.json", scores)
        print(_report(scores))
    return 130 if history.interrupted else 0


def _pairs(sentences):
    return [(s.tokens, s.tags, f"sentence {i + 1} (line {s.line})") for i, s in enumerate(sentences)]


def _report(scores: dict) -> str:
    if "f1" not in scores:
        return f"token accuracy {100 * scores['token_accuracy']:.2f}% ({scores['tokens']} tokens)"
    text = format_entity_report(scores)
    if "word_f1" in scores:
        text += (f"\nwords in names: precision {100 * scores['word_precision']:.2f}%; recall "
                 f"{100 * scores['word_recall']:.2f}%; F1 {100 * scores['word_f1']:.2f}")
    return text


def cmd_eval(args) -> int:
    model = load_model(args.model, Tagger)
    sentences = _read(args.file, args)
    scores = in_file(args.file, lambda: model.evaluate(sentences))
    print(json.dumps(scores, indent=2) if args.json else _report(scores))
    return 0


def cmd_predict(args) -> int:
    model = load_model(args.model, Tagger)
    lines = input_lines(args.file)
    split = (lambda s: word_tokenize(s, lowercase=False)) if args.split_punctuation else str.split
    tokens = [split(line) for _, line in lines]
    tags = model.predict(tokens)
    fmt = args.format
    if fmt != "conll" and not (model.bio or model.output == "sigmoid"):
        log(f"tags {model.tags[:4]}... are not BIO entity tags; printing --format conll")
        fmt = "conll"
    probs = model.predict_proba(tokens) if fmt == "conll" else None
    out = sys.stdout
    for k, ((no, _), toks, tg) in enumerate(zip(lines, tokens, tags)):
        if fmt == "conll":
            for t, (tok, tag) in enumerate(zip(toks, tg)):
                p = probs[k][t]
                conf = p.max() if model.output == "softmax" else (p if tag != "O" else 1 - p)
                out.write(f"{tok}\t{tag}\t{conf:.3f}\n")
            out.write("\n")
            continue
        found = entities(tg)
        if fmt == "entities":
            for e in found:
                out.write(f"{no}\t{e.start}-{e.end}\t{e.type}\t{' '.join(toks[e.start:e.end])}\n")
        else:
            words = list(toks)
            for e in reversed(found):
                words[e.start:e.end] = [f"[{' '.join(toks[e.start:e.end])}|{e.type}]"]
            out.write(" ".join(words) + "\n")
    return 0


def _add_conll_columns(p) -> None:
    p.add_argument("--token-col", type=int, default=0, help="column of the token (default 0)")
    p.add_argument("--tag-col", type=int, default=-1, help="column of the tag (default -1, the last)")


def register(sub) -> None:
    top = sub.add_parser("tag", help="sequence tagging (named entities): train, eval, predict",
                         description="A (bi)RNN tagger: one tag per word, trained on CoNLL column files "
                                     "(token<TAB>tag, blank line between sentences).")
    cmds = top.add_subparsers(dest="tag_command", metavar="{train,eval,predict}")
    cmds.required = True

    p = cmds.add_parser("train", help="train a tagger on a CoNLL file")
    add_run_arguments(p, "CoNLL columns")
    _add_conll_columns(p)
    add_encoder_arguments(p)
    p.add_argument("--lowercase", action="store_true", help="fold the case of words (default: keep it)")
    p.add_argument("--output", choices=("softmax", "sigmoid"), default="softmax",
                   help="softmax over the tags, or the binary 'part of a name?' sigmoid")
    add_training_arguments(p, epochs=10, lr=2e-3)
    p.set_defaults(func=cmd_train)

    p = cmds.add_parser("eval", help="entity precision/recall/F1 (conlleval) and token accuracy on a CoNLL file")
    p.add_argument("model", help="run or checkpoint directory")
    p.add_argument("file", help="CoNLL file with gold tags")
    _add_conll_columns(p)
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.set_defaults(func=cmd_eval)

    p = cmds.add_parser("predict", help="tag plain text (one sentence per line) and print the entities")
    p.add_argument("model", help="run or checkpoint directory")
    p.add_argument("file", nargs="?", default="-", help="text file, or - for stdin (default)")
    p.add_argument("--format", choices=("entities", "inline", "conll"), default="entities",
                   help="entities: line, span, type, text; inline: [text|type]; conll: token, tag, probability")
    p.add_argument("--split-punctuation", action="store_true",
                   help="split punctuation off words (default: split on whitespace only, like CoNLL tokens)")
    p.set_defaults(func=cmd_predict)
