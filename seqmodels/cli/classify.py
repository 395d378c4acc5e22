"""``seqmodels classify train|eval|predict``: text classification (sentiment) from TSV files.

Training and evaluation files hold ``text<TAB>label`` lines (a header row is detected, or set with
``--header``). ``predict`` reads plain text, one text per line (FILE or ``-`` for stdin), and prints
``label<TAB>probability`` per non-blank line (``--with-text`` appends the text). The run directory is
the tagger's (``model/``, ``history.json``, ``loss.png``, ``dev_scores.json``).
"""

from __future__ import annotations

import json
import sys

from ..core.errors import DataError
from ..data.readers import read_text, read_tsv
from ..models.classifier import Classifier
from ..models.metrics import format_classification_report
from .common import add_training_arguments, write_json
from .tag import (add_encoder_arguments, add_run_arguments, encoder_options, input_lines, load_model, prepare_run,
                  run_training)

_HEADER = {"auto": "auto", "yes": True, "no": False}


def read_labelled(path, args):
    """(texts, labels, line numbers) of a TSV file."""
    texts, labels = read_tsv(path, text_col=args.text_col, label_col=args.label_col, header=_HEADER[args.header])
    rows = [no for no, raw in enumerate(read_text(path).split("\n"), 1) if raw.strip(" \t\r\n\f\v")]
    return texts, labels, rows[len(rows) - len(texts):]          # a skipped header is the first row


def check_examples(model: Classifier, path, texts, labels, lines) -> None:
    """A DataError naming the file and line of the first unknown label or text without words."""
    known = set(model.classes)
    for text, label, no in zip(texts, labels, lines):
        if label not in known:
            raise DataError(f"{path}, line {no}: label {label!r} was never seen in training; the classifier "
                            f"knows {model.classes}")
        if not model.vocab.tokenize(text):
            raise DataError(f"{path}, line {no}: no words in {text!r:.60}")


def cmd_train(args) -> int:
    texts, labels, lines = read_labelled(args.train, args)
    dev = read_labelled(args.dev, args) if args.dev else None

    def build():
        return Classifier.from_data(texts, labels, min_count=args.min_count, max_vocab=args.max_vocab,
                                    lowercase=not args.keep_case, punctuation=args.punctuation,
                                    pooling=args.pooling, **encoder_options(args))

    model, ck, out = prepare_run(args, Classifier, build)
    check_examples(model, args.train, texts, labels, lines)
    if dev is not None:
        check_examples(model, args.dev, *dev)

    def on_dev():
        return f"dev accuracy {100 * model.score(dev[0], dev[1]):.2f}%"

    describe = (f"classify train: {'bi' if model.bidirectional else 'uni'}directional {model.cell} "
                f"{model.num_layers}x{model.hidden_size}, {model.pooling} pooling, {len(model.classes)} classes")
    valid = (dev[0], dev[1]) if dev is not None else None
    history = run_training(model, lambda **kw: model.fit(texts, labels, valid, **kw), args, ck, out, len(texts),
                           describe, on_dev if dev is not None else None)
    if dev is not None:
        scores = model.evaluate(dev[0], dev[1])
        write_json(out / "dev_scores.json", scores)
        print(format_classification_report(scores))
    return 130 if history.interrupted else 0


def cmd_eval(args) -> int:
    model = load_model(args.model, Classifier)
    texts, labels, lines = read_labelled(args.file, args)
    labels = _as_class_type(model, labels)
    check_examples(model, args.file, texts, labels, lines)
    scores = model.evaluate(texts, labels)
    print(json.dumps(scores, indent=2) if args.json else format_classification_report(scores))
    return 0


def cmd_predict(args) -> int:
    model = load_model(args.model, Classifier)
    lines = input_lines(args.file)
    for no, text in lines:
        if not model.vocab.tokenize(text):
            raise DataError(f"{args.file}, line {no}: no words in {text!r:.60}")
    texts = [text for _, text in lines]
    probs = model.predict_proba(texts)
    for text, p in zip(texts, probs):
        k = int(p.argmax())
        sys.stdout.write(f"{model.classes[k]}\t{p[k]:.4f}" + (f"\t{text}" if args.with_text else "") + "\n")
    return 0


def _as_class_type(model, labels):
    """TSV labels are strings; a model trained through the library on int labels gets ints back."""
    if all(isinstance(c, int) for c in model.classes):
        try:
            return [int(lab) for lab in labels]
        except ValueError:
            return labels
    return labels


def _add_tsv_columns(p) -> None:
    p.add_argument("--text-col", type=int, default=0, help="column of the text (default 0)")
    p.add_argument("--label-col", type=int, default=1, help="column of the label (default 1)")
    p.add_argument("--header", choices=("auto", "yes", "no"), default="auto", help="first row is a header?")


def register(sub) -> None:
    top = sub.add_parser("classify", help="text classification (sentiment): train, eval, predict",
                         description="A (bi)RNN classifier: one label per text, trained on TSV files "
                                     "(text<TAB>label).")
    cmds = top.add_subparsers(dest="classify_command", metavar="{train,eval,predict}")
    cmds.required = True

    p = cmds.add_parser("train", help="train a classifier on a TSV file")
    add_run_arguments(p, "TSV: text<TAB>label")
    _add_tsv_columns(p)
    add_encoder_arguments(p)
    p.add_argument("--pooling", choices=("last", "mean", "max"), default="last",
                   help="summary of the sequence: final states, mean or max over the words (default last)")
    p.add_argument("--keep-case", action="store_true", help="do not lower-case the text")
    p.add_argument("--punctuation", choices=("tokens", "strip", "keep"), default="tokens",
                   help="punctuation marks as tokens (default), removed, or attached to words")
    add_training_arguments(p, epochs=3, lr=2e-3)
    p.set_defaults(func=cmd_train)

    p = cmds.add_parser("eval", help="accuracy, per-class precision/recall/F1 and confusion matrix on a TSV file")
    p.add_argument("model", help="run or checkpoint directory")
    p.add_argument("file", help="TSV file: text<TAB>label")
    _add_tsv_columns(p)
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.set_defaults(func=cmd_eval)

    p = cmds.add_parser("predict", help="classify plain text, one text per line: label and probability")
    p.add_argument("model", help="run or checkpoint directory")
    p.add_argument("file", nargs="?", default="-", help="text file, or - for stdin (default)")
    p.add_argument("--with-text", action="store_true", help="append the text to each output line")
    p.set_defaults(func=cmd_predict)
