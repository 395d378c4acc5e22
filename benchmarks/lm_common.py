"""Shared pieces of the language-model quality benchmarks (dinosaur names, tiny Shakespeare).

* data: the dinosaur names (lower-cased, one per line) and tiny Shakespeare cut at 90% of its
  characters (nanoGPT's split);
* the n-gram baseline: interpolated Kneser-Ney for several orders n, scored per predicted token;
* a PyTorch twin of :class:`~seqmodels.models.language_model.LanguageModel` (``nn.Embedding`` or one-hot
  input, ``nn.LSTM``/``nn.GRU``/``nn.RNN``, ``nn.Linear``) that starts from the same weights
  (copied with :func:`seqmodels.interop.to_torch`) and trains on the same windows;
* small helpers: threads, a stopwatch, Markdown tables.

Every loss is in nats per predicted token; a token is a character, and the line break (``<EOS>``) counts
as one. Use from the benchmark scripts, not as a library.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from seqmodels.core import blas  # noqa: E402
from seqmodels.models.language_model import LanguageModel  # noqa: E402
from seqmodels.models.ngram import NGramLM  # noqa: E402
from seqmodels.text import Vocabulary  # noqa: E402

DATA = Path(os.environ.get("SEQMODELS_DATA", ROOT.parent / "shared" / "data"))
DINOS = DATA / "dinos" / "dinos.txt"
SHAKESPEARE = DATA / "tinyshakespeare" / "input.txt"


def set_threads(n: int = 1) -> None:
    """NumPy's BLAS (and PyTorch, when imported) on ``n`` threads."""
    blas.set_num_threads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def require(path: Path) -> Path:
    if not path.is_file():
        raise SystemExit(f"{path}: data file not found (set SEQMODELS_DATA to the shared data folder)")
    return path


# ------------------------------------------------------------------------------------------ data
def dino_names() -> list[str]:
    """The dinosaur names, lower-cased, one per line, in file order."""
    text = require(DINOS).read_text(encoding="utf-8").lower()
    return [line.strip() for line in text.split("\n") if line.strip()]


def dino_vocab(names) -> Vocabulary:
    """Character vocabulary of the names: <PAD>, <UNK>, <EOS> + the 26 letters (29 entries)."""
    return Vocabulary.from_text("\n".join(names), level="char", lines_as_sequences=True, order="sorted")


def shakespeare_split(train_fraction: float = 0.9) -> tuple[str, str]:
    """tiny Shakespeare: the first 90% of the characters for training, the last 10% for validation."""
    text = require(SHAKESPEARE).read_text(encoding="utf-8")
    cut = int(len(text) * train_fraction)
    return text[:cut], text[cut:]


# -------------------------------------------------------------------------------------- n-grams
def char_sequences(lines) -> list[list[str]]:
    """Each line as a list of characters followed by ``"<EOS>"``."""
    return [list(line) + ["<EOS>"] for line in lines]


def kneser_ney_table(train_seqs, valid_seqs, orders) -> list[dict]:
    """Fit an interpolated Kneser-Ney n-gram (discount 'auto') per order; validation nats/token each."""
    rows = []
    for n in orders:
        t0 = time.perf_counter()
        lm = NGramLM(n, smoothing="kneser_ney", discount="auto").fit(train_seqs)
        ppl = lm.perplexity(valid_seqs)
        rows.append({"n": n, "valid_loss": math.log(ppl), "perplexity": ppl,
                     "seconds": time.perf_counter() - t0, "model": lm})
    return rows


# ---------------------------------------------------------------------------------- PyTorch twin
class TorchTwin:
    """The same network as ``model`` in PyTorch, with the same weights, trained step for step alike.

    Our recurrent layers keep one bias per gate; PyTorch keeps ``bias_ih`` and ``bias_hh``. The summed
    bias goes into ``bias_ih`` and ``bias_hh`` stays zero and frozen (``requires_grad=False``; for the GRU
    only its r and z rows, the n rows being our ``b_ca``): with a
    trainable ``bias_hh`` Adam would move the effective bias by two steps instead of one, and the gradient
    norm would count the bias gradient twice, so the two runs would be different algorithms.
    Training step: mean cross-entropy, ``clip_grad_norm_`` (or ``clip_grad_value_``), ``torch.optim.Adam``.
    """

    def __init__(self, model: LanguageModel, lr: float, clip: str | None = "norm", clip_value: float = 5.0,
                 optimizer: str = "adam"):
        import torch
        from torch import nn

        from seqmodels.interop import to_torch

        self.torch, self.V = torch, len(model.vocab)
        dtype = torch.float64 if model.dtype == np.float64 else torch.float32
        self.rnn = to_torch(model.rnn).to(dtype)
        H = model.hidden_size
        for name, p in self.rnn.named_parameters():
            if name.startswith("bias_hh"):
                if model.cell == "gru":      # its n rows are our b_ca: train them, keep the r and z rows at 0
                    p.register_hook(lambda g, H=H: torch.cat([torch.zeros_like(g[:2 * H]), g[2 * H:]]))
                else:
                    p.requires_grad_(False)
        self.emb = None
        if model.embedding is not None:
            self.emb = nn.Embedding(self.V, model.embedding_dim).to(dtype)
            with torch.no_grad():
                self.emb.weight.copy_(torch.from_numpy(np.array(model.params["embedding.W_e"])))
        self.head = nn.Linear(model.hidden_size, self.V).to(dtype)
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(np.array(model.params["head.W_y"])))
            self.head.bias.copy_(torch.from_numpy(np.array(model.params["head.b_y"])))
        self.dtype = dtype
        self.params = [p for m in (self.emb, self.rnn, self.head) if m is not None
                       for p in m.parameters() if p.requires_grad]
        if optimizer == "adam":
            self.opt = torch.optim.Adam(self.params, lr=lr)
        elif optimizer == "sgd":
            self.opt = torch.optim.SGD(self.params, lr=lr)
        else:
            raise ValueError(f"optimizer: expected 'adam' or 'sgd', got {optimizer!r}")
        self.clip, self.clip_value = clip, clip_value
        self.state = None

    def reset_state(self) -> None:
        self.state = None

    def _logits(self, x, state):
        torch = self.torch
        x = torch.from_numpy(np.asarray(x, np.int64))
        inp = self.emb(x) if self.emb is not None else torch.nn.functional.one_hot(x, self.V).to(self.dtype)
        h, state = self.rnn(inp, state)
        return self.head(h), state

    @staticmethod
    def _detach(state):
        return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()

    def train_window(self, x, y) -> float:
        """One step on a stream window (state carried from the previous window, gradients cut)."""
        torch = self.torch
        self.opt.zero_grad(set_to_none=False)
        logits, state = self._logits(x, self.state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, self.V),
                                                 torch.from_numpy(np.asarray(y, np.int64)).reshape(-1))
        loss.backward()
        if self.clip == "norm":
            torch.nn.utils.clip_grad_norm_(self.params, self.clip_value)
        elif self.clip == "value":
            torch.nn.utils.clip_grad_value_(self.params, self.clip_value)
        self.opt.step()
        self.state = self._detach(state)
        return loss.item()

    def evaluate(self, batcher) -> float:
        """Mean nats per token over every window of a stream batcher, state carried (as ``evaluate``)."""
        torch = self.torch
        total, count, state = 0.0, 0, None
        with torch.no_grad():
            for k in range(len(batcher)):
                x, y = batcher.window(k, epoch=0)
                logits, state = self._logits(x, state)
                loss = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, self.V), torch.from_numpy(np.asarray(y, np.int64)).reshape(-1),
                    reduction="sum")
                total += float(loss)
                count += y.size
        return total / max(count, 1)


# ---------------------------------------------------------------------------------------- output
class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds`` (wall) and ``sw.cpu`` (this process's CPU time).

    On a shared machine the wall time depends on the other jobs; the CPU time much less.
    """

    def __enter__(self):
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        self.seconds = self.cpu = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.c0
        return False

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; floats with 4 decimals."""
    def cell(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def log(msg: str) -> None:
    print(msg, flush=True)
