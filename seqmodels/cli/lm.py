"""Language-model commands: ``train``, ``sample``, ``score``, ``ngram`` and ``demo`` (the main job).

A run directory written by ``train`` holds ``model/`` (the checkpoint), ``history.json``, ``samples.txt`` and
``loss.png`` (when matplotlib is installed). ``sample`` and ``score`` accept the run directory or the
checkpoint directory itself.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from ..core.errors import CheckpointError, ConfigError, DataError
from ..data.readers import read_text
from ..models.base import Model
from ..models.language_model import LanguageModel
from ..models.ngram import NGramLM
from ..text import Vocabulary
from ..training.loop import History, TrainConfig
from .common import resolve_checkpoint as _resolve_checkpoint
from .common import (add_model_arguments, add_training_arguments, cell_options, dtype_of, log, plot_history,
                     positive_float, positive_int, probability, train_config, write_json)

MODEL_SUBDIR = "model"


# ---------------------------------------------------------------- corpus helpers
def split_corpus(text: str, valid_fraction: float) -> tuple[str, str | None]:
    """First (1 - f) of the text for training, the rest for validation, cut at a line break."""
    if valid_fraction <= 0:
        return text, None
    cut = int(len(text) * (1 - valid_fraction))
    nl = text.rfind("\n", 0, cut)
    cut = nl + 1 if nl > len(text) // 2 else cut
    return text[:cut], text[cut:]


def build_vocab(text: str, args) -> Vocabulary:
    vocab = Vocabulary.from_text(text, level=args.level, lines_as_sequences=True, max_size=args.max_vocab,
                                 min_count=args.min_count, lowercase=args.lowercase or None,
                                 punctuation=args.punctuation, order="sorted" if args.level == "char" else "count")
    if len(vocab) <= 3:
        raise DataError(f"{args.corpus}: no tokens found (empty corpus?)")
    return vocab


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory (with model/) or a checkpoint directory -> the checkpoint directory."""
    return _resolve_checkpoint(path, "train")


def load_lm(path) -> LanguageModel:
    model = Model.load(resolve_checkpoint(path))
    if not isinstance(model, LanguageModel):
        raise CheckpointError(f"{path}: holds a {model.kind!r} model, expected a language model")
    return model


# ----------------------------------------------------------------------- train
def memmap_ids(args, vocab: Vocabulary | None = None):
    """--memmap: (vocabulary, train ids, valid ids) from the corpus encoded once to a memory-mapped file."""
    from ..text import memmap
    if args.mode != "stream":
        raise ConfigError(f"--memmap: reads one long token stream; use it with --mode stream, not --mode {args.mode}")
    if vocab is None:
        vocab = memmap.build_vocab(args.corpus, level=args.level, lowercase=args.lowercase or None,
                                   min_count=args.min_count, max_size=args.max_vocab, punctuation=args.punctuation,
                                   order="sorted" if args.level == "char" else "count", progress=not args.no_progress)
        if len(vocab) <= 3:
            raise DataError(f"{args.corpus}: no tokens found (empty corpus?)")
    corpus = memmap.encode_corpus(args.corpus, vocab, out=args.ids, progress=not args.no_progress)
    return (vocab, *memmap.split_ids(corpus.ids, args.valid_fraction, vocab.eos_id))


def cmd_train(args) -> int:
    out = Path(args.out or args.resume)
    resume_ck = None
    if args.resume:
        model, resume_ck = Model.load(resolve_checkpoint(args.resume), return_checkpoint=True)
        if not isinstance(model, LanguageModel):
            raise CheckpointError(f"{args.resume}: holds a {model.kind!r} model, expected a language model")
        data_cfg = resume_ck.meta.get("data_config", {})
        for key in ("valid_fraction", "seq_len", "batch_size", "seed", "memmap", "ids"):
            if key in data_cfg:
                setattr(args, key, data_cfg[key])
        config = TrainConfig.from_dict(resume_ck.meta["train_config"])
        if args.steps and args.steps != config.steps:
            config = TrainConfig.from_dict({**config.to_dict(), "steps": args.steps})
        text = None if args.memmap else read_text(args.corpus)
        if args.memmap:
            _, train_part, valid_part = memmap_ids(args, model.vocab)
    else:
        if (out / MODEL_SUBDIR / "checkpoint.json").exists() and not args.force:
            raise ConfigError(f"--out {out}: already holds a trained model; use --resume {out} to continue it "
                              "or --force to replace it")
        text = None if args.memmap else read_text(args.corpus)
        if args.memmap:
            vocab, train_part, valid_part = memmap_ids(args)
        else:
            vocab = build_vocab(split_corpus(text, args.valid_fraction)[0], args)
        model = LanguageModel(vocab, args.cell, args.hidden, args.layers, embedding_dim=args.embedding,
                              dropout=args.dropout, mode=args.mode, dtype=dtype_of(args), seed=args.seed,
                              **cell_options(args))
        config = None
    if not args.memmap:
        train_part, valid_part = split_corpus(text, args.valid_fraction)
        valid_part = valid_part if valid_part and valid_part.strip() else None
    data = model.batcher(train_part, batch_size=args.batch_size, seq_len=args.seq_len, seed=args.seed)
    valid = None
    if valid_part is not None:
        try:
            valid = model.batcher(valid_part, batch_size=min(args.batch_size, 16), seq_len=args.seq_len,
                                  shuffle=False)
        except DataError as e:
            log(f"validation text too short, validation off ({e})")
    if config is None:
        total = args.steps or len(data) * args.epochs
        config = train_config(args, total_steps=total)
        if config.eval_every == 0 and valid is not None:
            config = TrainConfig.from_dict({**config.to_dict(), "eval_every": max(total // 10, 1)})
    log(f"seqmodels train: {model.cell} {model.num_layers}x{model.hidden_size}, vocabulary {len(model.vocab)} "
        f"({model.vocab.level}), {model.num_parameters():,} parameters, {len(data)} batches per epoch, "
        f"{config.steps or len(data) * config.epochs} steps")
    out.mkdir(parents=True, exist_ok=True)
    meta_extra = {"data_config": {"valid_fraction": args.valid_fraction, "seq_len": args.seq_len,
                                  "batch_size": args.batch_size, "seed": args.seed, "corpus": str(args.corpus),
                                  "memmap": bool(args.memmap), "ids": args.ids}}
    history = _fit(model, data, valid, config, out, args, resume_ck, meta_extra)
    _finish(model, history, out, args)
    return 130 if history.interrupted else 0


def _fit(model, data, valid, config, out, args, resume_ck, meta_extra) -> History:
    from ..training.progress import Progress
    total = config.steps or len(data) * config.epochs
    bar = Progress(total, "train", enabled=not args.no_progress, initial=resume_ck.meta["step"] if resume_ck else 0)
    write = bar.write if bar.enabled else log

    def on_step(step, record):
        if args.sample_every and step % args.sample_every == 0:
            text = model.sample(1, 120, temperature=0.8, seed=step)[0]
            write(f"--- sample at step {step} ---\n{text}\n---")

    return model.fit(data, valid, config=config, checkpoint_dir=out / MODEL_SUBDIR, resume=resume_ck,
                     progress=bar, on_step=on_step, checkpoint_meta=meta_extra)


def _finish(model, history, out: Path, args) -> None:
    write_json(out / "history.json", history.to_dict())
    samples = model.sample(3, 200, temperature=0.8, seed=args.seed)
    (out / "samples.txt").write_text("\n\n".join(samples) + "\n")
    png = plot_history(history, out / "loss.png", title=f"{model.cell} language model")
    last = history.loss[-1][1] if history.loss else float("nan")
    msg = f"done: {history.step} steps in {history.seconds:.1f}s, train loss {last:.3f}"
    if history.val_loss:
        at, v = history.val_loss[-1]
        msg += f", validation loss {v:.3f} nats/token at step {at} (perplexity {math.exp(v):.2f})"
    log(msg + f"; saved to {out / MODEL_SUBDIR}" + (f", loss curve {png}" if png else ""))
    if history.interrupted:
        log(f"interrupted: checkpoint saved at step {history.step}; continue with --resume {out}")


# ---------------------------------------------------------------------- sample
def cmd_sample(args) -> int:
    model = load_lm(args.model)
    if args.prime and model.vocab.level == "char":
        missing = sorted({ch for ch in (args.prime.lower() if model.vocab.lowercase else args.prime)
                          if ch not in model.vocab and ch != "\n"})
        if missing:
            raise DataError(f"--prime: characters not in the model's vocabulary: {''.join(missing)!r}")
    texts = model.sample(args.num, args.length, prime=args.prime or "", temperature=args.temperature,
                         top_k=args.top_k, greedy=args.greedy, reject_unk=not args.allow_unk, seed=args.seed,
                         stop_at_eos=None if not args.no_stop else False)
    joiner = " " if model.vocab.level == "word" else ""             # words are separated by spaces
    for i, t in enumerate(texts):
        sys.stdout.write((args.prime + joiner if args.prime else "") + t + "\n")
        if args.num > 1 and i < len(texts) - 1 and model.mode == "stream":
            sys.stdout.write("\n")
    return 0


# ----------------------------------------------------------------------- score
def cmd_score(args) -> int:
    model = load_lm(args.model)
    for sentence in args.sentences:
        if args.surprisal:
            try:
                from ..diagnostics import format_surprisal
            except ImportError as e:
                raise ConfigError("--surprisal needs seqmodels.diagnostics") from e
            print(format_surprisal(model, sentence, color=sys.stdout.isatty()))
            continue
        r = model.log_prob(sentence)
        n = max(len(r.tokens), 1)
        print(f"{sentence!r}: log P = {r.total:.4f} nats ({r.total / math.log(10):.4f} log10), "
              f"perplexity {math.exp(-r.total / n):.3f} over {len(r.tokens)} tokens")
        if not args.quiet:
            print(f"  {'token':>12}  {'log P':>9}  {'P':>8}")
            for tok, lp in zip(r.tokens, r.per_token):
                print(f"  {tok!r:>12}  {lp:9.4f}  {math.exp(lp):8.5f}")
    return 0


# ----------------------------------------------------------------------- ngram
def cmd_ngram(args) -> int:
    text = read_text(args.corpus)
    train_text, valid_text = split_corpus(text, args.valid_fraction)
    vocab = build_vocab(train_text, args)

    def seqs(t):
        return [vocab.tokenize(line) + ["<EOS>"] for line in t.split("\n") if line.strip() or args.level == "char"]

    t0 = time.perf_counter()
    lm = NGramLM(args.n, smoothing=args.smoothing, k=args.k).fit(seqs(train_text))
    log(f"fitted {args.n}-gram ({args.smoothing}) on {len(train_text):,} characters in {time.perf_counter() - t0:.2f}s")
    if valid_text:
        ppl = lm.perplexity(seqs(valid_text))
        print(f"validation perplexity {ppl:.3f} ({math.log(ppl):.4f} nats/token)")
    for s in lm.sample(args.length, seed=args.seed, num=args.num, stop_token="<EOS>"):
        print(("" if vocab.level == "char" else " ").join(s))
    if args.out:
        write_json(Path(args.out), {"n": args.n, "smoothing": args.smoothing, "model": lm.to_dict()})
    return 0


# ------------------------------------------------------------------------ demo
def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(args)


def _add_corpus_options(p) -> None:
    g = p.add_argument_group("corpus")
    g.add_argument("--level", choices=("char", "word"), default="char", help="tokens: characters or words")
    g.add_argument("--mode", choices=("stream", "lines"), default="stream",
                   help="stream: one long text with truncated BPTT; lines: one sequence per line (names)")
    g.add_argument("--valid-fraction", type=probability, default=0.1, help="last part held out (default 0.1)")
    g.add_argument("--max-vocab", type=positive_int, default=None, help="word level: keep the top-K words")
    g.add_argument("--min-count", type=positive_int, default=1, help="word level: drop rarer words (<UNK>)")
    g.add_argument("--lowercase", action="store_true", help="fold case")
    g.add_argument("--punctuation", choices=("tokens", "strip", "keep"), default="tokens",
                   help="word level: punctuation as tokens, removed, or attached to words")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a language model on a text file",
                       description="Train a character- or word-level RNN language model on CORPUS.")
    p.add_argument("corpus", help="a UTF-8 text file")
    p.add_argument("--out", help="run directory (model/, history.json, samples.txt, loss.png)")
    p.add_argument("--resume", help="continue the run in this directory exactly where it stopped")
    p.add_argument("--force", action="store_true", help="replace a model already in --out")
    p.add_argument("--memmap", action="store_true", help="corpora larger than memory: encode the token ids once "
                   "to a memory-mapped file (reused by later runs) and read windows from it (stream mode)")
    p.add_argument("--ids", default=None, help="--memmap: the id file (default CORPUS.<vocabulary hash>.ids)")
    _add_corpus_options(p)
    add_model_arguments(p, hidden=256, layers=2)
    p.add_argument("--embedding", type=positive_int, default=None, help="embedding size (default: one-hot input)")
    p.add_argument("--seq-len", type=positive_int, default=100, help="time steps per window (stream mode)")
    p.add_argument("--sample-every", type=int, default=0, help="print a sample every N steps")
    add_training_arguments(p)
    p.set_defaults(func=_check_train_args)

    p = sub.add_parser("sample", help="sample text from a trained language model")
    p.add_argument("model", help="run or checkpoint directory")
    p.add_argument("--prime", default="", help="text to start from (printed before each sample)")
    p.add_argument("--temperature", type=positive_float, default=1.0)
    p.add_argument("--length", type=positive_int, default=200, help="maximum tokens per sample")
    p.add_argument("--num", type=positive_int, default=1, help="number of samples")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--top-k", type=positive_int, default=None)
    p.add_argument("--greedy", action="store_true", help="argmax instead of sampling")
    p.add_argument("--allow-unk", action="store_true", help="allow <UNK> in samples")
    p.add_argument("--no-stop", action="store_true", help="do not stop at <EOS>")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("score", help="log-probability and perplexity of sentences")
    p.add_argument("model", help="run or checkpoint directory")
    p.add_argument("sentences", nargs="+")
    p.add_argument("--quiet", action="store_true", help="no per-token table")
    p.add_argument("--surprisal", action="store_true", help="highlight surprising tokens")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("ngram", help="the counting (n-gram) baseline: fit, validation perplexity, samples")
    p.add_argument("corpus")
    p.add_argument("--n", type=positive_int, default=5)
    p.add_argument("--smoothing", choices=("kneser_ney", "add_k", "mle"), default="kneser_ney")
    p.add_argument("--k", type=positive_float, default=1.0, help="add-k: k")
    p.add_argument("--length", type=positive_int, default=200)
    p.add_argument("--num", type=positive_int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="save the counts as JSON")
    _add_corpus_options(p)
    p.set_defaults(func=cmd_ngram)

    p = sub.add_parser("demo", help="the main job: train a character LSTM in ~2 minutes and show what it learned")
    p.add_argument("--corpus", default="python-docs",
                   help="'python-docs' (docstrings of Python's standard library, no download), 'shakespeare' "
                        "(downloaded once, SHA-256 checked) or a path to a text file")
    p.add_argument("--seconds", type=positive_float, default=100.0, help="training time budget (default 100)")
    p.add_argument("--hidden", type=positive_int, default=192)
    p.add_argument("--out", default=None, help="also save the run here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)


def _check_train_args(args) -> int:
    if not args.out and not args.resume:
        raise ConfigError("train: give --out DIR for a new run, or --resume DIR to continue one")
    return cmd_train(args)
