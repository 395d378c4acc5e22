"""Options and helpers shared by the command-line commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..core.errors import CheckpointError, ConfigError
from ..training.loop import TrainConfig


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a value in [0, 1), got {text}")
    return value


def add_model_arguments(p: argparse.ArgumentParser, *, cell="lstm", hidden=128, layers=1) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--cell", choices=("lstm", "gru", "rnn"), default=cell, help=f"recurrent cell (default {cell})")
    g.add_argument("--hidden", type=positive_int, default=hidden, help=f"hidden units per layer (default {hidden})")
    g.add_argument("--layers", type=positive_int, default=layers, help=f"stacked recurrent layers (default {layers})")
    g.add_argument("--dropout", type=probability, default=0.0, help="dropout between layers (default 0)")
    g.add_argument("--peephole", action="store_true", help="LSTM: gates also see c<t-1>")
    g.add_argument("--gru-variant", choices=("full", "simplified"), default="full", help="GRU: full or simplified")
    g.add_argument("--reset-after", action="store_true", help="GRU: PyTorch/cuDNN's reset-after form")
    g.add_argument("--activation", choices=("tanh", "relu"), default="tanh", help="RNN: activation")
    g.add_argument("--init", choices=("default", "identity", "uniform", "xavier"), default="default",
                   help="recurrent weight initialisation (identity + relu = IRNN)")


def cell_options(args) -> dict:
    """The layer options that apply to the chosen ``--cell``."""
    if args.cell == "lstm":
        return {"peephole": True} if args.peephole else {}
    if args.cell == "gru":
        opts = {}
        if args.gru_variant != "full":
            opts["variant"] = args.gru_variant
        if args.reset_after:
            opts["reset_after"] = True
        return opts
    opts = {}
    if args.activation != "tanh":
        opts["activation"] = args.activation
    if args.init != "default":
        opts["init"] = args.init
    return opts


def add_training_arguments(p: argparse.ArgumentParser, *, steps=None, epochs=1, lr=2e-3, batch=32,
                           optimizer="adam", clip="norm", clip_value=5.0) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=positive_int, default=steps, help="optimiser steps (default: --epochs passes)")
    g.add_argument("--epochs", type=positive_int, default=epochs, help=f"passes over the data (default {epochs})")
    g.add_argument("--batch-size", type=positive_int, default=batch, help=f"sequences per batch (default {batch})")
    g.add_argument("--optimizer", choices=("sgd", "adagrad", "rmsprop", "adam"), default=optimizer)
    g.add_argument("--lr", type=positive_float, default=lr, help=f"learning rate (default {lr})")
    g.add_argument("--momentum", type=float, default=None, help="SGD/RMSProp momentum")
    g.add_argument("--schedule", choices=("constant", "cosine", "exponential"), default="constant",
                   help="learning-rate schedule (cosine decays to 0 over the run)")
    g.add_argument("--clip", choices=("norm", "value", "none"), default=clip,
                   help="gradient clipping: global norm, element-wise value (the notes' ±5), or none")
    g.add_argument("--clip-value", type=positive_float, default=clip_value, help=f"clipping threshold ({clip_value})")
    g.add_argument("--average", type=probability, default=None, metavar="DECAY",
                   help="keep an exponential moving average of the weights (e.g. 0.999): validation "
                        "scores it and the saved model ends with it")
    g.add_argument("--eval-every", type=nonneg_int, default=0, help="validate every N steps (0: at the end)")
    g.add_argument("--checkpoint-every", type=nonneg_int, default=0, help="save every N steps (0: at the end)")
    g.add_argument("--patience", type=positive_int, default=None, help="early stopping after N bad validations")
    g.add_argument("--nonfinite", choices=("skip", "stop"), default="skip",
                   help="on a NaN/inf loss or gradient: skip the step or stop")
    g.add_argument("--seed", type=int, default=0, help="seed for initialisation, shuffling and dropout")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--float64", action="store_true", help="train in float64 (default float32)")


def train_config(args, total_steps: int | None = None) -> TrainConfig:
    opts = {}
    if args.momentum is not None:
        if args.optimizer not in ("sgd", "rmsprop"):
            raise ConfigError(f"--momentum applies to sgd and rmsprop, not {args.optimizer}")
        opts["momentum"] = args.momentum
    schedule = None
    if args.schedule == "cosine":
        if total_steps is None:
            raise ConfigError("--schedule cosine needs a known number of steps (--steps or sized data)")
        schedule = {"name": "cosine", "total_steps": total_steps}
    elif args.schedule == "exponential":
        schedule = {"name": "exponential", "gamma": 0.5, "decay_steps": max((total_steps or 1000) // 4, 1)}
    return TrainConfig(optimizer=args.optimizer, lr=args.lr, optimizer_options=opts, schedule=schedule,
                       clip=None if args.clip == "none" else args.clip, clip_value=args.clip_value,
                       steps=args.steps, epochs=args.epochs, eval_every=args.eval_every,
                       checkpoint_every=args.checkpoint_every, patience=args.patience, nonfinite=args.nonfinite,
                       average=args.average or None)


def dtype_of(args):
    import numpy as np
    return np.float64 if getattr(args, "float64", False) else np.float32


def check_output_dir(path: str | os.PathLike, *, resume: bool = False) -> Path:
    """An --out directory: refuse to write over something that is not a seqmodels run."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    return out


MODEL_SUBDIR = "model"


def resolve_checkpoint(path, command: str = "train") -> Path:
    """A run directory (holding model/) or a checkpoint directory -> the checkpoint directory."""
    p = Path(path)
    if (p / MODEL_SUBDIR / "checkpoint.json").exists() or (p / f".{MODEL_SUBDIR}.old").exists():
        return p / MODEL_SUBDIR
    if (p / "checkpoint.json").exists():
        return p
    what = "no such directory" if not p.exists() else f"no checkpoint.json here or in {p / MODEL_SUBDIR}"
    raise CheckpointError(f"{p}: {what}; expected a run directory written by 'seqmodels {command}'")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def plot_history(history, path: Path, title: str = "training") -> Path | None:
    """Loss curves (train, smoothed train, validation) as a PNG when matplotlib is installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import numpy as np
    fig, ax = plt.subplots(figsize=(7, 4))
    if history.loss:
        steps = np.array([s for s, _ in history.loss])
        ax.plot(steps, [v for _, v in history.loss], color="0.8", lw=0.8, label="train (per step)")
        ax.plot(steps, history.smoothed_loss(), color="C0", label="train (smoothed)")
    if history.val_loss:
        ax.plot([s for s, _ in history.val_loss], [v for _, v in history.val_loss], "o-", color="C3",
                label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
