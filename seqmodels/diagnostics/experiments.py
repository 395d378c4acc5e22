"""The notes' claims as experiments: long-range agreement, and exploding gradients tamed by clipping.

**Agreement** ("The cat, which already ate ..., was full" / "The cats, ..., were full"). A sequence
opens with a singular or plural subject, then ``G`` distractor tokens (with probability
``attractor_rate`` a distractor is a noun of random number, which must *not* decide the verb), then a
verb slot; from the state after the verb slot the model predicts ``was`` or ``were``::

    x = [cat | cats,  d_1, ..., d_G,  <verb>]     y = was | were        chance = 50 %

Each cell (tanh RNN, IRNN = ReLU with identity init, simplified GRU, full GRU, LSTM — and the
variants in :data:`VARIANTS`, which change one initial value) is trained at a matched parameter count
(:func:`matched_hidden_sizes`) with Adam and global-norm clipping, and scored on fresh sequences.
The gradient of the verb logit difference ``L = w·s<T>`` (``w`` the read-out direction, unit norm)
w.r.t. each earlier state measures how far back the signal reaches, before and after training.

**Exploding gradients.** A tanh RNN with a large recurrent initialisation is trained with plain SGD
with no clipping, element-wise clipping at ±5 (the notes' remedy) and global-norm clipping at 5; the
training loop records the gradient norm before and after clipping and every non-finite step.

>>> x, y = agreement_batch(np.random.default_rng(0), 4, gap=3)
>>> x.shape, y.tolist() == [int(s == PLURAL) for s in x[:, 0]], bool(np.all(x[:, -1] == VERB))
((4, 5), True, True)
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..core import accel
from ..core.errors import ConfigError, check_choice, check_positive_int, check_probability
from ..core.functional import softmax_cross_entropy
from ..core.init import as_generator
from ..core.params import ParamDict
from ..layers import GRU, LSTM, RNN, Dense
from ..training.loop import History, TrainConfig, train
from .gates import gate_activity
from .gradients import gradient_through_time

SINGULAR, PLURAL, VERB = 0, 1, 2                 # token ids; then attractor nouns, then distractors
ATTRACTORS = (3, 4)                              # "dog" (singular), "dogs" (plural)
N_DISTRACTORS = 10
VOCAB = ["cat", "cats", "<verb>", "dog", "dogs"] + [f"w{i}" for i in range(N_DISTRACTORS)]
VERBS = ("was", "were")
CELLS = ("rnn", "irnn", "sgru", "gru", "lstm")
#: variants that change one initial value: the classic uniform init, gates that start near "remember"
VARIANTS = {"rnn-uniform": "rnn", "gru-remember": "gru", "lstm-remember": "lstm"}
ALL_CELLS = CELLS + tuple(VARIANTS)
CELL_LABELS = {"rnn": "tanh RNN", "irnn": "IRNN (ReLU, identity)", "sgru": "simplified GRU", "gru": "GRU",
               "lstm": "LSTM", "rnn-uniform": "tanh RNN, uniform init", "gru-remember": "GRU, b_u = -3",
               "lstm-remember": "LSTM, b_f = 3"}
GAPS = (5, 10, 20, 50, 100)
GATES_PER_CELL = {"rnn": 1, "irnn": 1, "sgru": 2, "gru": 3, "lstm": 4}

__all__ = ["agreement_batch", "make_cell", "matched_hidden_sizes", "count_parameters", "AgreementModel",
           "AgreementResult", "AgreementReport", "train_agreement", "agreement_table", "run_agreement",
           "ExplodingRun", "run_exploding", "CELLS", "VARIANTS", "ALL_CELLS", "GAPS", "VOCAB", "CELL_LABELS"]


def agreement_batch(rng, batch_size: int, gap: int, attractor_rate: float = 0.2):
    """``(x, y)``: ids (B, gap + 2) and verb classes (B,) (0 = singular "was", 1 = plural "were")."""
    batch_size = check_positive_int("batch_size", batch_size)
    gap = check_positive_int("gap", gap, allow_zero=True)
    attractor_rate = check_probability("attractor_rate", attractor_rate, inclusive_one=True)
    rng = as_generator(rng)
    y = rng.integers(0, 2, size=batch_size)
    x = np.empty((batch_size, gap + 2), dtype=np.int64)
    x[:, 0] = np.where(y == 1, PLURAL, SINGULAR)
    middle = rng.integers(len(VOCAB) - N_DISTRACTORS, len(VOCAB), size=(batch_size, gap))
    noun = rng.random((batch_size, gap)) < attractor_rate
    middle[noun] = rng.choice(ATTRACTORS, size=int(noun.sum()))
    x[:, 1:-1] = middle
    x[:, -1] = VERB
    return x, y


def make_cell(cell: str, input_size: int, hidden: int, *, dtype=np.float32, seed=0, init_scale: float = 1.0):
    """The recurrent layer of an experiment cell name.

    ``rnn`` (tanh, orthogonal W_aa: the library default), ``irnn`` (ReLU, W_aa = I), ``sgru``, ``gru``,
    ``lstm`` (forget bias 1: the default); variants: ``rnn-uniform`` (PyTorch's U(±1/√H) init),
    ``gru-remember`` (b_u = -3, so 1 - Γu ≈ 0.95 at first), ``lstm-remember`` (b_f = 3, Γf ≈ 0.95).
    """
    check_choice("cell", cell, ALL_CELLS)
    if cell in ("rnn", "rnn-uniform"):
        init = "uniform" if cell == "rnn-uniform" else "default"
        return RNN(input_size, hidden, "tanh", init=init, init_scale=init_scale, dtype=dtype, seed=seed)
    if cell == "irnn":
        return RNN(input_size, hidden, "relu", init="identity", dtype=dtype, seed=seed)
    if cell in ("sgru", "gru", "gru-remember"):
        layer = GRU(input_size, hidden, "simplified" if cell == "sgru" else "full", dtype=dtype, seed=seed)
        if cell == "gru-remember":
            layer.params["b_u"][...] = -3.0
        return layer
    return LSTM(input_size, hidden, forget_bias=3.0 if cell == "lstm-remember" else 1.0, dtype=dtype, seed=seed)


def count_parameters(cell: str, input_size: int, hidden: int, classes: int = 2) -> int:
    """Recurrent layer ``G·(H(H + D) + H)`` plus the read-out ``classes·(H + 1)``."""
    return GATES_PER_CELL[VARIANTS.get(cell, cell)] * (hidden * (hidden + input_size) + hidden) + classes * (hidden + 1)


def matched_hidden_sizes(target: int, cells=CELLS, input_size: int = len(VOCAB)) -> dict:
    """For each cell the hidden size whose parameter count is closest to ``target``."""
    out = {}
    for cell in cells:
        check_choice("cell", cell, ALL_CELLS)
        best = min(range(1, 4096), key=lambda h: abs(count_parameters(cell, input_size, h) - target))
        out[cell] = best
    return out


class AgreementModel:
    """One-hot ids -> recurrent layer -> Dense(H, 2) on the state after the last token (many-to-one)."""

    def __init__(self, cell: str, hidden: int, *, vocab_size: int = len(VOCAB), dtype=np.float32, seed=0,
                 init_scale: float = 1.0):
        rng = as_generator(seed)
        self.cell = cell
        self.layer = make_cell(cell, vocab_size, hidden, dtype=dtype, seed=rng, init_scale=init_scale)
        self.head = Dense(hidden, 2, dtype=dtype, seed=rng)
        self.params = ParamDict.merged({"rnn": self.layer.params, "head": self.head.params})
        self.grads = ParamDict.merged({"rnn": self.layer.grads, "head": self.head.grads})
        self.last_accuracy = float("nan")
        self.training = True

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self) -> None:
        accel.zero(self.grads.values())

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def logits(self, x) -> np.ndarray:
        out, _, _ = self.layer.forward(x)
        return self.head.forward(out[:, -1])[0]

    def train_batch(self, batch) -> tuple[float, int]:
        x, y = batch
        out, _, cache = self.layer.forward(x)
        logits, _, c_head = self.head.forward(out[:, -1])
        loss, dlogits = softmax_cross_entropy(logits, y, reduction="mean")
        self.last_accuracy = float(np.mean(np.argmax(logits, axis=1) == y))
        dh, _ = self.head.backward(dlogits, c_head)
        dout = np.zeros_like(out)
        dout[:, -1] = dh
        self.layer.backward(dout, cache)
        return float(loss), int(y.size)

    def accuracy(self, x, y, chunk: int = 500) -> float:
        hits = sum(int(np.sum(np.argmax(self.logits(x[i:i + chunk]), axis=1) == y[i:i + chunk]))
                   for i in range(0, len(y), chunk))
        return hits / max(len(y), 1)

    def readout_dout(self, x) -> np.ndarray:
        """dout (B, T, H) of ``L = (1/B) Σ_b w·a<T>``, w = (W_y[1] - W_y[0]) / ‖·‖: the verb-logit direction."""
        W = self.head.params["W_y"].astype(np.float64)
        w = W[1] - W[0]
        w /= max(np.linalg.norm(w), 1e-30)
        B, T = x.shape
        dout = np.zeros((B, T, self.layer.hidden_size))
        dout[:, -1] = w / B
        return dout


class _Stream:
    """Fresh agreement batches until ``steps`` are done or ``stop`` is set (re-iterable, for ``train``)."""

    def __init__(self, rng, batch_size, gap, attractor_rate, steps):
        self.rng, self.batch_size, self.gap, self.rate, self.steps = rng, batch_size, gap, attractor_rate, steps
        self.stop = False

    def __len__(self):
        return self.steps

    def __iter__(self):
        while not self.stop:
            yield agreement_batch(self.rng, self.batch_size, self.gap, self.rate)


@dataclass
class AgreementResult:
    """One (cell, gap) run. ``curve_*``: mean ‖∂L/∂s<T-k>‖ for k = 0.. (None unless the curve gap)."""

    cell: str
    gap: int
    hidden: int
    params: int
    accuracy: float
    steps: int
    seconds: float
    final_loss: float
    curve_init: list | None = None
    curve_trained: list | None = None
    jacobian_init: float | None = None
    jacobian_trained: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _curve(model: AgreementModel, x) -> tuple[list, float]:
    g = gradient_through_time(model.layer, x, dout=model.readout_dout(x), norm="spectral")["layer"]
    return [float(v) for v in g.curve("state")], float(np.nanmean(g.jacobian))


def train_agreement(cell: str, gap: int, hidden: int, *, steps: int = 1500, batch_size: int = 32, lr: float = 5e-3,
                    attractor_rate: float = 0.2, seed: int = 0, target: float = 0.99, test_size: int = 1000,
                    curves: bool = False, dtype=np.float32) -> tuple[AgreementResult, AgreementModel]:
    """Train one cell on one gap; stop early once the running training accuracy reaches ``target``."""
    rng = np.random.default_rng([seed, gap, CELLS.index(VARIANTS.get(cell, cell))])  # variant = its base's seed
    model = AgreementModel(cell, hidden, dtype=dtype, seed=rng)
    probe = agreement_batch(np.random.default_rng([seed, gap, 99]), 16, gap, attractor_rate)[0]
    c0 = _curve(model, probe) if curves else (None, None)
    data = _Stream(rng, batch_size, gap, attractor_rate, steps)
    running = []

    def on_step(step, record):
        running.append(model.last_accuracy)
        if len(running) >= 25 and np.mean(running[-25:]) >= target:
            data.stop = True

    config = TrainConfig(optimizer="adam", lr=lr, clip="norm", clip_value=1.0, steps=steps, log_every=1)
    t0 = time.perf_counter()
    hist = train(model, data, config, on_step=on_step, progress=False)
    seconds = time.perf_counter() - t0
    xt, yt = agreement_batch(np.random.default_rng([seed, gap, 7]), test_size, gap, attractor_rate)
    acc = model.accuracy(xt, yt)
    c1 = _curve(model, probe) if curves else (None, None)
    last = [v for _, v in hist.loss[-25:] if math.isfinite(v)]
    res = AgreementResult(cell, gap, hidden, model.num_parameters(), acc, hist.step, seconds,
                          float(np.mean(last)) if last else float("nan"), c0[0], c1[0], c0[1], c1[1])
    return res, model


@dataclass
class AgreementReport:
    """All runs of :func:`run_agreement`, plus the gate activity of the gated cells at ``curve_gap``."""

    results: list = field(default_factory=list)
    curve_gap: int | None = None
    gates: dict = field(default_factory=dict)     # cell -> (LayerActivity, x) on two probe sequences
    settings: dict = field(default_factory=dict)

    def accuracy(self, cell: str, gap: int) -> float:
        for r in self.results:
            if r.cell == cell and r.gap == gap:
                return r.accuracy
        raise KeyError(f"no run for cell {cell!r} at gap {gap}")


def run_agreement(cells=CELLS, gaps=GAPS, *, target_params: int = 2400, steps: int = 1500, batch_size: int = 32,
                  lr: float = 5e-3, attractor_rate: float = 0.2, seed: int = 0, curve_gap: int | None = 50,
                  log=None) -> AgreementReport:
    """Train every cell at every gap at matched parameter counts; accuracy on 1000 fresh sequences.

    ``curve_gap``: the gap at which gradient-through-time curves (before/after training) and gate
    activity are recorded (the largest gap not above it is used when it is not among ``gaps``).
    """
    gaps = sorted(check_positive_int("gap", g) for g in gaps)
    if not gaps or not cells:
        raise ConfigError("cells and gaps: expected at least one of each")
    sizes = matched_hidden_sizes(target_params, cells)
    if curve_gap is not None:
        below = [g for g in gaps if g <= curve_gap]
        curve_gap = below[-1] if below else gaps[0]
    report = AgreementReport(curve_gap=curve_gap, settings=dict(
        target_params=target_params, steps=steps, batch_size=batch_size, lr=lr, attractor_rate=attractor_rate,
        seed=seed, hidden=sizes, optimizer="adam", clip="norm 1.0"))
    for cell in cells:
        for gap in gaps:
            res, model = train_agreement(cell, gap, sizes[cell], steps=steps, batch_size=batch_size, lr=lr,
                                         attractor_rate=attractor_rate, seed=seed, curves=gap == curve_gap)
            report.results.append(res)
            if gap == curve_gap and cell in ("gru", "sgru", "lstm"):
                fillers = [len(VOCAB) - N_DISTRACTORS + i % N_DISTRACTORS for i in range(gap)]
                x = np.array([[SINGULAR] + fillers + [VERB], [PLURAL] + fillers + [VERB]])   # cat / cats
                report.gates[cell] = (gate_activity(model.layer, x)["layer"], x)
            if log is not None:
                log(f"{CELL_LABELS[cell]:>22}  gap {gap:>3}  H={res.hidden:<3} params={res.params:<5} "
                    f"acc={res.accuracy:.3f}  steps={res.steps:<5} {res.seconds:5.1f}s")
    return report


def agreement_table(report: AgreementReport) -> str:
    """Accuracy per cell (rows) and gap (columns), with hidden size and parameter count."""
    from .gradients import format_rows
    gaps = sorted({r.gap for r in report.results})
    cells = list(dict.fromkeys(r.cell for r in report.results))
    rows = []
    for cell in cells:
        rs = {r.gap: r for r in report.results if r.cell == cell}
        first = next(iter(rs.values()))
        rows.append([CELL_LABELS[cell], str(first.hidden), str(first.params)]
                    + [f"{rs[g].accuracy:.3f}" if g in rs else "-" for g in gaps])
    return format_rows(["cell", "H", "params"] + [f"G={g}" for g in gaps], rows)


# --------------------------------------------------------------------------- exploding gradients
CLIP_SETTINGS = {"none": (None, 5.0), "value ±5": ("value", 5.0), "norm 5": ("norm", 5.0)}


@dataclass
class ExplodingRun:
    """One clipping setting: the training history (loss, grad norms, non-finite steps) and final accuracy."""

    name: str
    history: History
    accuracy: float

    def summary(self) -> dict:
        norms = np.array([b for _, b, _, _ in self.history.grad_norm], dtype=np.float64)
        finite = norms[np.isfinite(norms)]
        losses = np.array([v for _, v in self.history.loss], dtype=np.float64)
        tail = losses[-50:][np.isfinite(losses[-50:])]
        return {"setting": self.name, "steps": self.history.step, "nonfinite": len(self.history.nonfinite),
                "max_norm": float(finite.max()) if finite.size else float("nan"),
                "median_norm": float(np.median(finite)) if finite.size else float("nan"),
                "clipped_steps": int(sum(1 for _, b, a, n in self.history.grad_norm if n > 0)),
                "final_loss": float(tail.mean()) if tail.size else float("nan"), "accuracy": self.accuracy}


def run_exploding(*, hidden: int = 32, init_scale: float = 2.5, gap: int = 50, steps: int = 300, lr: float = 0.3,
                  batch_size: int = 32, seed: int = 0, settings=tuple(CLIP_SETTINGS), log=None) -> list:
    """Train the same tanh RNN (recurrent weights ``init_scale``·orthogonal, same seed) with SGD under
    each clipping setting; return one :class:`ExplodingRun` per setting (non-finite steps are skipped
    and recorded, never applied)."""
    runs = []
    for name in settings:
        if name not in CLIP_SETTINGS:
            raise ConfigError(f"settings: expected names among {list(CLIP_SETTINGS)}, got {name!r}")
        mode, value = CLIP_SETTINGS[name]
        model = AgreementModel("rnn", hidden, seed=seed, init_scale=init_scale)
        data = _Stream(np.random.default_rng([seed, 1]), batch_size, gap, 0.2, steps)
        config = TrainConfig(optimizer="sgd", lr=lr, clip=mode, clip_value=value, steps=steps, log_every=1,
                             nonfinite="skip")
        with np.errstate(all="ignore"):
            hist = train(model, data, config, progress=False)
            xt, yt = agreement_batch(np.random.default_rng([seed, 2]), 1000, gap)
            acc = model.accuracy(xt, yt)
        runs.append(ExplodingRun(name, hist, acc))
        if log is not None:
            s = runs[-1].summary()
            log(f"{name:>9}: max ‖g‖ {s['max_norm']:.3g}  median {s['median_norm']:.3g}  "
                f"clipped steps {s['clipped_steps']}  non-finite {s['nonfinite']}  "
                f"final loss {s['final_loss']:.3f}  acc {s['accuracy']:.3f}")
    return runs
