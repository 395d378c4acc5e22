"""The training loop shared by every model: ``train(model, data, config) -> History``.

Each step: zero the gradients, ``model.train_batch(batch)`` (forward, loss, backward; returns the mean
loss per token and the number of tokens), guard against non-finite values, clip, let the optimiser
update the weights, move the learning-rate schedule, record everything in :class:`History`; every
``eval_every`` steps run ``validate()`` for early stopping, every ``checkpoint_every`` steps call
``checkpoint(step)``. A non-finite loss or gradient never reaches the weights: the step is skipped
(``nonfinite="skip"``) or training stops with :class:`~seqmodels.core.errors.NonFiniteError`
(``nonfinite="stop"``). Ctrl-C ends the loop cleanly (``history.interrupted``) after a last checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import ConfigError, NonFiniteError, check_choice
from .clip import CLIP_MODES, clip
from .optim import OPTIMIZERS, make_optimizer
from .progress import Progress
from .schedule import make_schedule


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of :func:`train` (JSON round trip through ``to_dict``/``from_dict``).

    Attributes:
        optimizer: ``"sgd"``, ``"adagrad"``, ``"rmsprop"`` or ``"adam"``; ``optimizer_options`` its extras.
        lr: learning rate (or the base rate of ``schedule``).
        schedule: None or a schedule dict, e.g. ``{"name": "cosine", "total_steps": 1000}`` (lr is filled in).
        clip: ``"norm"`` (global norm), ``"value"`` (the notes' element-wise clipping) or None, at ``clip_value``.
        steps: number of optimiser steps; when None, ``epochs`` passes over the data.
        eval_every / checkpoint_every / log_every: in steps; 0 turns it off.
        patience: stop after this many evaluations without improvement (None: never); the best weights are
            restored at the end when ``restore_best``.
        nonfinite: ``"skip"`` the step or ``"stop"`` training when the loss or a gradient is NaN/inf.
        average: None, or the decay (e.g. 0.999) of an exponential moving average of the weights
            (:meth:`~seqmodels.training.optim.Optimizer.enable_average`): validation scores the averaged
            weights, and the model ends with them.
    """

    optimizer: str = "adam"
    lr: float = 2e-3
    optimizer_options: dict = field(default_factory=dict)
    schedule: dict | None = None
    clip: str | None = "norm"
    clip_value: float = 5.0
    steps: int | None = None
    epochs: int = 1
    eval_every: int = 0
    checkpoint_every: int = 0
    log_every: int = 1
    patience: int | None = None
    restore_best: bool = True
    nonfinite: str = "skip"
    average: float | None = None

    def __post_init__(self):
        check_choice("optimizer", self.optimizer, tuple(OPTIMIZERS))
        check_choice("clip", self.clip, CLIP_MODES)
        check_choice("nonfinite", self.nonfinite, ("skip", "stop"))
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr: expected a finite number > 0, got {self.lr!r}")
        if self.clip is not None and not self.clip_value > 0:
            raise ConfigError(f"clip_value: expected a number > 0, got {self.clip_value!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ConfigError(f"steps: expected an integer >= 1 or None, got {self.steps!r}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"epochs: expected an integer >= 1, got {self.epochs!r}")
        for name in ("eval_every", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name}: expected an integer >= 0, got {value!r}")
        if self.average is not None and not (isinstance(self.average, (int, float)) and 0 < self.average < 1):
            raise ConfigError(f"average: expected None or a decay in (0, 1), e.g. 0.999, got {self.average!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise ConfigError(f"patience: expected an integer >= 1 or None, got {self.patience!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def make_optimizer(self, params, grads):
        """The optimiser these settings describe, over ``params`` / ``grads``."""
        return make_optimizer(self.optimizer, params, grads, lr=self.lr, average=self.average,
                              **self.optimizer_options)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"train config: unknown field(s) {unknown}; expected some of {sorted(known)}")
        return cls(**d)


@dataclass
class History:
    """Per-step and per-evaluation records of a training run (JSON-able through ``to_dict``)."""

    step: int = 0
    tokens: int = 0
    seconds: float = 0.0
    loss: list = field(default_factory=list)              # (step, mean loss per token)
    lr: list = field(default_factory=list)                # (step, lr)
    grad_norm: list = field(default_factory=list)         # (step, norm before clip, norm after clip, n clipped)
    nonfinite: list = field(default_factory=list)         # (step, loss, grad norm)
    val_loss: list = field(default_factory=list)          # (step, mean loss per token)
    best_val: float | None = None
    best_step: int | None = None
    stopped_early: bool = False
    interrupted: bool = False

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["loss"] = [[s, _json_float(v)] for s, v in self.loss]
        d["nonfinite"] = [[s, _json_float(l), _json_float(g)] for s, l, g in self.nonfinite]
        d["grad_norm"] = [[s, _json_float(a), _json_float(b), n] for s, a, b, n in self.grad_norm]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def smoothed_loss(self, beta: float = 0.98) -> np.ndarray:
        """Exponentially smoothed training loss (bias-corrected), one value per recorded step."""
        out, avg = [], 0.0
        for i, (_, v) in enumerate(self.loss, 1):
            if v is None or not math.isfinite(v):
                out.append(out[-1] if out else float("nan"))
                continue
            avg = beta * avg + (1 - beta) * v
            out.append(avg / (1 - beta ** i))
        return np.array(out)


def _json_float(v):
    return v if v is None or math.isfinite(v) else str(v)


def train(model, data, config: TrainConfig, *, validate: Callable[[], float] | None = None,
          checkpoint: Callable[[int], None] | None = None, on_step: Callable[[int, dict], None] | None = None,
          optimizer=None, history: History | None = None, progress: bool | Progress = True,
          desc: str = "train") -> History:
    """Train ``model`` on ``data`` and return the :class:`History`.

    Args:
        model: has ``params``, ``grads``, ``zero_grad()`` and ``train_batch(batch) -> (mean_loss, tokens)``
            (which must leave the gradients of the mean loss in ``grads``); optionally ``reset_state()``,
            called at the start of every pass over the data (carried TBPTT state).
        data: a re-iterable of batches; a resumable batcher (``state``/``load_state``) continues where it was.
        config: :class:`TrainConfig`.
        validate: returns the validation loss (mean per token); used for early stopping.
        checkpoint: ``checkpoint(step)`` saves everything needed to resume (called every ``checkpoint_every``
            steps, on Ctrl-C and at the end).
        on_step: ``on_step(step, record)`` after each step, with the record's loss, norms and lr.
        optimizer: an existing optimiser (to resume its state); made from ``config`` otherwise.
        history: the history of the run being resumed (``history.step`` steps already done).
    """
    history = history if history is not None else History()
    history.interrupted = history.stopped_early = False      # a resumed run starts afresh on these
    opt = optimizer or config.make_optimizer(model.params, model.grads)
    opt.resume_weights()                                     # a finished run left the averaged weights in
    schedule = None
    if config.schedule:
        sched = dict(config.schedule)
        sched.setdefault("lr", config.lr)
        schedule = make_schedule(sched.pop("name"), **sched)
    per_epoch = len(data) if hasattr(data, "__len__") else None
    total = config.steps if config.steps is not None else (per_epoch or 0) * config.epochs
    if total <= 0:
        raise ConfigError("data: no batches to train on (empty data and no 'steps')")
    bar = progress if isinstance(progress, Progress) else Progress(total, desc, enabled=bool(progress),
                                                                   initial=history.step)
    best_params = None
    bad_evals = 0
    t0 = time.perf_counter() - history.seconds
    try:
        while history.step < total:
            if getattr(data, "position", 0) in (0, per_epoch) and hasattr(model, "reset_state"):
                model.reset_state()
            got_batch = False
            for batch in data:
                got_batch = True
                step = history.step
                if schedule is not None:
                    opt.lr = schedule(step)
                model.zero_grad()
                loss, n_tokens = model.train_batch(batch)
                stats = clip(model.grads, config.clip, config.clip_value if config.clip else None)
                history.step = step + 1
                history.tokens += int(n_tokens)
                if not (math.isfinite(loss) and stats.finite):
                    history.nonfinite.append((history.step, float(loss), float(stats.norm_before)))
                    message = (f"non-finite {'loss' if not math.isfinite(loss) else 'gradient'} at step "
                               f"{history.step}: loss={loss}, gradient norm={stats.norm_before}")
                    if config.nonfinite == "stop":
                        raise NonFiniteError(message + "; the weights were not updated")
                    bar.write(message + "; step skipped")
                    if hasattr(model, "reset_state"):
                        model.reset_state()
                else:
                    opt.step()
                if config.log_every and history.step % config.log_every == 0:
                    history.loss.append((history.step, float(loss)))
                    history.lr.append((history.step, float(opt.lr)))
                    history.grad_norm.append((history.step, float(stats.norm_before),
                                              float(stats.norm_after), int(stats.n_clipped)))
                bar.update(1, tokens=int(n_tokens), loss=float(loss))
                if on_step is not None:
                    on_step(history.step, {"loss": float(loss), "norm_before": stats.norm_before,
                                           "norm_after": stats.norm_after, "n_clipped": stats.n_clipped,
                                           "lr": float(opt.lr)})
                stop = False
                if validate is not None and config.eval_every and history.step % config.eval_every == 0:
                    with opt.averaged():
                        stop, best_params, bad_evals = _evaluate(model, validate, config, history, bar,
                                                                 best_params, bad_evals)
                history.seconds = time.perf_counter() - t0
                if checkpoint is not None and config.checkpoint_every and \
                        history.step % config.checkpoint_every == 0:
                    checkpoint(history.step)
                if stop:
                    history.stopped_early = True
                    break
                if history.step >= total:
                    break
            if history.stopped_early or not got_batch:
                break
        if validate is not None and not history.stopped_early and (
                not config.eval_every or history.step % config.eval_every):
            with opt.averaged():
                _, best_params, bad_evals = _evaluate(model, validate, config, history, bar, best_params,
                                                      bad_evals)
    except KeyboardInterrupt:
        history.interrupted = True
        bar.write(f"interrupted at step {history.step}")
    finally:
        history.seconds = time.perf_counter() - t0
        bar.close()
    opt.apply_average()                                      # no-op without weight averaging
    if config.restore_best and best_params is not None and history.best_step != history.step \
            and config.patience is not None:
        for k, v in best_params.items():
            model.params[k] = v
    if checkpoint is not None:
        checkpoint(history.step)
    return history


def _evaluate(model, validate, config, history, bar, best_params, bad_evals):
    if hasattr(model, "eval"):
        model.eval()
    val = float(validate())
    if hasattr(model, "train"):
        model.train()
    history.val_loss.append((history.step, val))
    improved = history.best_val is None or val < history.best_val
    if improved:
        history.best_val, history.best_step = val, history.step
        bad_evals = 0
        if config.patience is not None:
            best_params = {k: v.copy() for k, v in model.params.items()}
    else:
        bad_evals += 1
    ppl = f" (perplexity {math.exp(min(val, 700)):.2f})" if hasattr(model, "perplexity") else ""
    bar.write(f"step {history.step}: validation loss {val:.4f}{ppl}" + ("  *best*" if improved else ""))
    stop = config.patience is not None and bad_evals >= config.patience
    return stop, best_params, bad_evals


def config_from(**kw: Any) -> TrainConfig:
    """``TrainConfig(**kw)`` ignoring None values (convenient for command-line options)."""
    return TrainConfig(**{k: v for k, v in kw.items() if v is not None})
