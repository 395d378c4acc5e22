"""Looking inside a model on given inputs: gate values, states at every step, per-token surprisal.

Gates (post-activation, as the cells store them in the forward cache ``cache.buf.G``)::

    GRU:   Γu = σ(W_u [c<t-1>, x<t>] + b_u)   Γr = σ(W_r [c<t-1>, x<t>] + b_r)   c~ = tanh(...)
    LSTM:  Γu, Γf, Γo = σ(W_· [a<t-1>, x<t>] + b_·)                             c~ = tanh(...)

For each gate :func:`gate_activity` gives its value per row, step and unit (B, T, H), its mean and
its *saturation*: the fraction of values below 0.1 or above 0.9 (``low``/``high`` separately), where
the gate is practically shut or open and its gradient ``σ' = Γ(1 - Γ) < 0.09`` is small; for the
tanh candidate ``c~`` saturation is the fraction with ``|c~| > 0.9``. Statistics use valid
(unpadded) positions only. An LSTM whose Γf stays near 1 across a gap carries ``c`` unchanged — the
notes' reason why it does not forget.

:func:`surprisal` gives each token's probability ``p`` under a language model and its surprisal
``-log2 p`` in bits; :func:`format_surprisal` renders it for a terminal.

>>> import numpy as np, seqmodels as sm
>>> lstm = sm.LSTM(3, 4, seed=0)
>>> act = gate_activity(lstm, np.ones((2, 5, 3), np.float32))["layer"]
>>> sorted(act.gates), act.gates["f"].shape, sorted(act.states)
(['c', 'f', 'o', 'u'], (2, 5, 4), ['a', 'c'])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..core.errors import DTypeError, ShapeError
from ..layers.base import Layer
from ..layers.bidirectional import Bidirectional
from ..layers.recurrent import Recurrent
from ..layers.stack import Stack
from .gradients import cell_kind, format_rows, to_batch_first

LOW, HIGH = 0.1, 0.9
GATE_LABELS = {"u": "Γu (update)", "f": "Γf (forget)", "o": "Γo (output)", "r": "Γr (relevance)",
               "c": "c~ (candidate)"}

__all__ = ["GateSummary", "LayerActivity", "gate_activity", "gate_table", "TokenSurprisal", "surprisal",
           "format_surprisal", "GATE_LABELS"]


class GateSummary(NamedTuple):
    """mean value; ``low``/``high``: fractions below 0.1 / above 0.9 (for c~: below -0.9 / above 0.9)."""

    mean: float
    low: float
    high: float

    @property
    def saturation(self) -> float:
        return self.low + self.high


@dataclass
class LayerActivity:
    """Gates and states of one recurrent layer at every step (batch-first, NaN past each length).

    ``gates``: gate name (``u``, ``f``, ``o``, ``r``, ``c`` for the candidate) -> (B, T, H); empty for a
    plain RNN. ``states``: ``a`` (and ``c`` for an LSTM) -> (B, T, H), the state after step t.
    """

    name: str
    cell: str
    lengths: np.ndarray
    gates: dict
    states: dict

    def summary(self, low: float = LOW, high: float = HIGH) -> dict:
        """Gate name -> :class:`GateSummary` over every valid row, step and unit."""
        out = {}
        for g, v in self.gates.items():
            vals = v[~np.isnan(v)]
            if vals.size == 0:
                out[g] = GateSummary(float("nan"), float("nan"), float("nan"))
                continue
            lo = -high if g == "c" else low
            out[g] = GateSummary(float(vals.mean()), float(np.mean(vals < lo)), float(np.mean(vals > high)))
        return out

    def per_step(self, gate: str) -> np.ndarray:
        """(B, T) mean of ``gate`` over the units (a gate name or a state name ``a``/``c``)."""
        src = self.gates.get(gate)
        if src is None:
            src = self.states.get(gate)
        if src is None:
            known = sorted(self.gates) + sorted(self.states)
            raise KeyError(f"layer {self.name!r} ({self.cell}) has no gate or state {gate!r}; known: {known}")
        return src.mean(axis=2)


def _layer_activity(layer: Recurrent, cache, name: str) -> LayerActivity:
    cell = layer.cell
    buf = cache.buf
    gates = {}
    if cell.gates != ("a",):                                  # a plain RNN stores pre-activations only
        for g in cell.gates:
            gates[g] = to_batch_first(buf.G[:, :, cell.block(g)], cache)
    states = {s: to_batch_first(getattr(buf, s)[1:], cache) for s in cell.state_names}
    lengths = np.empty_like(cache.lengths)
    lengths[cache.order] = cache.lengths
    return LayerActivity(name, cell_kind(layer), lengths, gates, states)


def _collect(layer, cache, name: str, out: dict) -> None:
    if isinstance(layer, Recurrent):
        act = _layer_activity(layer, cache, name or "layer")
        out[act.name] = act
    elif isinstance(layer, Bidirectional):
        pre = f"{name}." if name else ""
        _collect(layer.fwd, cache[0], pre + "forward", out)
        _collect(layer.bwd, cache[1], pre + "backward", out)
    elif isinstance(layer, Stack):
        pre = f"{name}." if name else ""
        for i, (sub, c) in enumerate(zip(layer.layers, cache[0])):
            _collect(sub, c, f"{pre}layers.{i}", out)


def lm_inputs(lm, text) -> tuple[np.ndarray, list[str]]:
    """The (1, T) input ids a language model reads for ``text`` (<EOS> first), and the tokens it predicts."""
    tokens = lm.vocab.tokenize(text) if isinstance(text, str) else list(text)
    ids = lm.vocab.encode(tokens, add_eos=True)
    x = np.concatenate([[lm.vocab.eos_id], ids[:-1]]).astype(np.int64)[None, :]
    return x, tokens + ["<EOS>"]


def gate_activity(model_or_layer, x, lengths=None, state=None) -> dict:
    """Gates and states of every recurrent layer on inputs ``x``: name -> :class:`LayerActivity`.

    ``model_or_layer``: a recurrent layer, :class:`Bidirectional`, :class:`Stack` (inputs (B, T, D) or
    one-hot ids), or a language model (``x``: (B, T) input ids, or a text — read as the model reads it
    when scoring, starting from <EOS>). Runs in inference mode (no dropout); gradients are untouched.
    """
    obj = model_or_layer
    is_lm = all(hasattr(obj, a) for a in ("rnn", "head", "embedding", "vocab"))
    if not is_lm and not isinstance(obj, Layer):
        raise DTypeError(f"model_or_layer: expected a recurrent layer, Stack, Bidirectional or LanguageModel, "
                         f"got {type(obj).__name__}")
    was = obj.training
    obj.eval()
    out: dict = {}
    try:
        if is_lm:
            if isinstance(x, str) or isinstance(x, list):
                x, _ = lm_inputs(obj, x)
            x = np.asarray(x)
            if x.ndim != 2:
                raise ShapeError(f"x: a language model reads (B, T) token ids, got shape {x.shape}")
            h = x if obj.embedding is None else obj.embedding.forward(x, lengths)[0]
            _, _, cache = obj.rnn.forward(h, lengths)
            _collect(obj.rnn, cache, "rnn", out)
        else:
            _, _, cache = obj.forward(x, lengths=lengths, state=state)
            _collect(obj, cache, "", out)
    finally:
        obj.train(was)
    return out


def gate_table(activity: dict, low: float = LOW, high: float = HIGH) -> str:
    """Plain-text table: per layer and gate the mean and the saturated fractions."""
    rows = []
    for act in activity.values():
        for g, s in act.summary(low, high).items():
            rows.append([act.name, act.cell, GATE_LABELS.get(g, g), f"{s.mean:.3f}", f"{s.low:.3f}",
                         f"{s.high:.3f}", f"{s.saturation:.3f}"])
        if not act.gates:
            rows.append([act.name, act.cell, "(no gates)", "-", "-", "-", "-"])
    head = ["layer", "cell", "gate", "mean", f"< {low:g}", f"> {high:g}", "saturated"]
    return format_rows(head, rows)


# ------------------------------------------------------------------------------ surprisal
class TokenSurprisal(NamedTuple):
    """One predicted token: its text, probability p under the model and surprisal ``-log2 p`` (bits)."""

    token: str
    prob: float
    bits: float


def surprisal(model, text) -> list[TokenSurprisal]:
    """Per-token probability and surprisal of ``text`` under a language model (via ``log_prob``).

    The last entry is the end of the text (``<EOS>``). Total surprisal = ``-log2 P(text)``.
    """
    lp = model.log_prob(text)
    return [TokenSurprisal(tok, float(math.exp(v)), float(-v / math.log(2))) for tok, v in zip(lp.tokens, lp.per_token)]


#: surprisal levels in bits: below the first plain, then yellow, then bold red
LEVELS = (3.0, 6.0)
_COLOURS = ("", "\033[33m", "\033[1;31m")
_RESET = "\033[0m"


def _shown(token: str, table: bool = False) -> str:
    if token == "<EOS>":
        return "⏎"
    token = token.replace("\n", "⏎").replace("\t", "⇥")
    return token.replace(" ", "␣") if table else token


def format_surprisal(model, text, color: bool = False, levels: tuple[float, float] = LEVELS) -> str:
    """The text with its surprising tokens highlighted, a summary line and a per-token table.

    Tokens with surprisal ``>= levels[1]`` bits (p <= 1/64 by default) are "surprising": bold red with
    ``color=True``, else wrapped in ``[...]``; tokens ``>= levels[0]`` bits (p <= 1/8) are yellow.

    >>> from seqmodels.text import Vocabulary
    >>> from seqmodels.models.language_model import LanguageModel
    >>> lm = LanguageModel(Vocabulary.from_text("the cat sat", level="char"), hidden_size=8, seed=0)
    >>> print(format_surprisal(lm, "at").splitlines()[2])
    3 tokens  -log2 P = 10.1 bits  3.35 bits/token  perplexity 10.2
    """
    items = surprisal(model, text)
    word = getattr(getattr(model, "vocab", None), "level", "char") == "word"
    pieces = []
    for it in items:
        level = sum(it.bits >= v for v in levels)
        tok = _shown(it.token)
        if color and level:
            tok = f"{_COLOURS[level]}{tok}{_RESET}"
        elif not color and level == 2:
            tok = f"[{tok}]"
        pieces.append(tok)
    line = (" " if word else "").join(pieces)
    total = sum(it.bits for it in items)
    n = max(len(items), 1)
    key = (f"yellow >= {levels[0]:g} bits, red >= {levels[1]:g} bits" if color
           else f"[x]: surprisal >= {levels[1]:g} bits")
    out = [line, f"({key})",
           f"{len(items)} tokens  -log2 P = {total:.1f} bits  {total / n:.2f} bits/token  "
           f"perplexity {2 ** (total / n):.1f}"]
    rows = [[_shown(it.token, table=True), f"{it.prob:.4f}", f"{it.bits:.2f}", "*" if it.bits >= levels[1] else ""]
            for it in items]
    out.append(format_rows(["token", "p", "bits", ""], rows))
    return "\n".join(out)
