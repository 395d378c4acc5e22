"""The course's dinosaur-name model, reproduced with seqmodels' layers (Dinosaur Island, week 1).

The model and the training loop of the programming exercise, written out with the library's pieces::

    x<1> = 0 (the course) or <EOS> (--variant lines),  x<t> = y<t-1> (one-hot)
    a<t> = tanh(W_a [a<t-1>; x<t>] + b_a)          H = 50 units, W_a ~ N(0, 0.01²), b_a = 0
    ŷ<t> = softmax(W_y a<t> + b_y)                 W_y ~ N(0, 0.01²), b_y = 0
    L    = -Σ_t log ŷ<t>[y<t>]                      SUM over the name's characters and its <EOS>
    g    ← min(max(g, -5), 5)                       element-wise clipping of every gradient
    θ    ← θ - 0.01 g                               plain SGD, ONE name per iteration

The names are shuffled once (seeded) and visited in turn (iteration j trains on name j mod N). Two
details of the exercise are kept in the default ``--variant course``: the first input ``x<1>`` is a zero
vector (the one-hot inputs are passed as float vectors), and ``a<0>`` of each name is the last state of
the previous name (carried, no gradient through it). ``--variant lines`` trains the way
``LanguageModel(mode="lines")`` does instead: ``x<1> = <EOS>`` and ``a<0> = 0`` for every name. The
course reports a smoothed loss, initialised at ``-log(1/27) · 7`` (27 characters, 7 characters per
name on average) and updated as ``loss ← 0.999 loss + 0.001 L`` after every iteration. Our vocabulary has
3 specials (<PAD>, <UNK>, <EOS>) + 26 letters = 29 outputs where the course has 26 letters + "\\n" = 27,
so an untrained model's per-character loss is log 29 = 3.367 here and log 27 = 3.296 there.

Run::

    OPENBLAS_NUM_THREADS=1 python benchmarks/dinos_course.py             # 22,000 iterations on all names
    OPENBLAS_NUM_THREADS=1 python benchmarks/dinos_course.py --iterations 2000 --print-every 500

:func:`train_course_model` is reused by ``dinos_best.py`` to score the same model on a held-out split.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from lm_common import Stopwatch, dino_names, dino_vocab, log, set_threads
from seqmodels.core.functional import softmax_cross_entropy
from seqmodels.models.language_model import LanguageModel
from seqmodels.training.clip import clip_by_value
from seqmodels.training.optim import make_optimizer

HIDDEN, LR, CLIP, INIT_STD = 50, 0.01, 5.0, 0.01
COURSE_VOCAB, COURSE_NAME_LEN = 27, 7
VARIANTS = ("course", "lines")


def course_model(vocab, seed: int = 1) -> LanguageModel:
    """RNN (tanh, 50 units, one-hot input), float64, weights N(0, 0.01²) and zero biases as in the course."""
    model = LanguageModel(vocab, "rnn", HIDDEN, 1, mode="lines", dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed)
    for key, p in model.params.items():                # overwrite the library's initialisation in place
        name = key.rsplit(".", 1)[-1]
        p[...] = 0.0 if name.startswith("b_") else INIT_STD * rng.standard_normal(p.shape)
    return model


def _course_input(y: np.ndarray, V: int) -> np.ndarray:
    """(1, T, V) float one-hot inputs: x<1> = 0 (the course's zero vector), x<t> = onehot(y<t-1>)."""
    x = np.zeros((1, y.size, V))
    x[0, np.arange(1, y.size), y[:-1]] = 1.0
    return x


def train_course_model(names: list[str], vocab, iterations: int, *, variant: str = "course", seed: int = 0,
                       print_every: int = 0, samples_every: int = 0, sample_seed: int = 0,
                       callback=None) -> tuple[LanguageModel, list]:
    """The course's loop; returns the model and [(iteration, smoothed loss, seconds since start)].

    ``variant="course"``: zero first input and state carried from name to name (the exercise);
    ``"lines"``: ``<EOS>`` first and a zero state (as ``LanguageModel(mode="lines")``).
    ``callback(j, model, smoothed)`` is called at every print point (iteration 0, print_every, ...).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    model = course_model(vocab, seed=1)
    order = np.random.default_rng(seed).permutation(len(names))
    examples = [vocab.encode(names[i], add_eos=True) for i in order]       # y = name + <EOS>
    eos, V = vocab.eos_id, len(vocab)
    opt = make_optimizer("sgd", model.params, model.grads, lr=LR)
    smoothed = -math.log(1.0 / COURSE_VOCAB) * COURSE_NAME_LEN            # 23.0709, the course's start
    trace, t0, state = [], time.perf_counter(), None
    for j in range(iterations):
        y = examples[j % len(examples)]
        if variant == "course":
            x = _course_input(y, V)                                       # x<1> = 0, x<t> = y<t-1>
            logits, state, cache = model.forward(x, state=state)         # a<0> = last a of previous name
        else:
            x = np.concatenate([[eos], y[:-1]])[None, :]                 # x<1> = <EOS>, x<t> = y<t-1>
            logits, _, cache = model.forward(x)
        loss, dlogits = softmax_cross_entropy(logits, y[None, :], reduction="sum")
        model.zero_grad()
        model.backward(dlogits, cache)
        clip_by_value(model.grads, CLIP)                                  # g ← clip(g, -5, 5)
        opt.step()                                                         # θ ← θ - 0.01 g
        smoothed = 0.999 * smoothed + 0.001 * loss
        if print_every and (j % print_every == 0 or j == iterations - 1):
            trace.append((j, smoothed, time.perf_counter() - t0))
            log(f"Iteration: {j:6d}, Loss: {smoothed:.6f}   ({time.perf_counter() - t0:6.1f} s)")
            if samples_every and j % samples_every == 0:
                for name in model.sample(7, 50, seed=sample_seed + j):
                    log("    " + name.capitalize())
            if callback is not None:
                callback(j, model, smoothed)
    return model, trace


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=22001, help="names seen (default 22001: prints 0..22000)")
    ap.add_argument("--print-every", type=int, default=2000)
    ap.add_argument("--samples-every", type=int, default=6000, help="sample 7 names every N iterations")
    ap.add_argument("--seed", type=int, default=0, help="seed of the shuffle of the names")
    ap.add_argument("--variant", choices=VARIANTS, default="course",
                    help="course: zero x<1>, state carried across names; lines: <EOS> first, zero state")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    set_threads(args.threads)

    names = dino_names()
    vocab = dino_vocab(names)
    log(f"{len(names)} names, {sum(map(len, names)) + len(names)} predicted characters per pass, "
        f"vocabulary {len(vocab)} (course: {COURSE_VOCAB}); RNN {HIDDEN} units, SGD lr {LR}, clip ±{CLIP}, "
        f"variant {args.variant}")
    with Stopwatch() as sw:
        model, trace = train_course_model(names, vocab, args.iterations, variant=args.variant, seed=args.seed,
                                          print_every=args.print_every, samples_every=args.samples_every)
    per_char = model.evaluate(model.batcher("\n".join(names), batch_size=64, shuffle=False))
    log(f"\n{args.iterations} iterations in {sw.seconds:.1f} s ({1e3 * sw.seconds / args.iterations:.2f} ms per name)")
    log(f"loss on all names after training (x<1> = <EOS>, a<0> = 0): {per_char:.4f} nats per character "
        f"(untrained: log {len(vocab)} = "
        f"{math.log(len(vocab)):.4f})")
    log("\n| iteration | smoothed loss |\n| --- | --- |")
    for j, s, _ in trace:
        log(f"| {j} | {s:.3f} |")
    log("\nfinal samples:")
    for name in model.sample(10, 50, seed=123):
        log("    " + name.capitalize())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
