"""Shared pieces of the benchmarks: configurations, the two training steps, timing, GEMM bound, memory.

The step timed for both frameworks is one language-model training step on a (B, T) window of token
ids, the state carried over from the previous window (truncated BPTT)::

    embedding (V -> H)  ->  L recurrent layers (H)  ->  linear (H -> V)  ->  mean cross-entropy
    -> backward -> clip the global gradient norm to 5 -> Adam step (lr 1e-3)

seqmodels runs :class:`seqmodels.LanguageModel` (``train_batch`` + ``clip`` + ``Adam``), PyTorch the
same layers from ``torch.nn`` (``nn.LSTM``/``nn.GRU``/``nn.RNN`` with ``num_layers=L``). Everything is
float32. Use from the benchmark scripts (``python benchmarks/bench_train.py``), not as a library.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import seqmodels as sm  # noqa: E402  (before NumPy: it sets OpenBLAS's idle-thread timeout, see seqmodels/__init__)
import numpy as np  # noqa: E402
from seqmodels.core import blas  # noqa: E402
from seqmodels.models.language_model import LanguageModel  # noqa: E402
from seqmodels.text import Vocabulary  # noqa: E402
from seqmodels.training.clip import clip  # noqa: E402
from seqmodels.training.optim import make_optimizer  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CLIP_NORM = 5.0
LR = 1e-3


@dataclass(frozen=True)
class Config:
    """One benchmark size: vocabulary V, hidden (= embedding) size H, layers L, batch B, window T."""

    name: str
    V: int
    H: int
    L: int
    B: int
    T: int


CONFIGS = {c.name: c for c in (
    Config("char128-1", 65, 128, 1, 32, 64),
    Config("char128-2", 65, 128, 2, 32, 64),
    Config("char512-1", 65, 512, 1, 32, 100),
    Config("char512-2", 65, 512, 2, 32, 100),
    Config("ptb-small", 10000, 200, 2, 20, 35),
)}

#: cell name -> (seqmodels cell, its options, PyTorch module name)
CELLS = {
    "lstm": ("lstm", {}, "LSTM"),
    "gru": ("gru", {"reset_after": True}, "GRU"),            # PyTorch's GRU is the reset-after form
    "rnn": ("rnn", {"activation": "tanh"}, "RNN"),
    # the notes' variants, which PyTorch cannot run: compared with "lstm" / "gru" above
    "lstm-peephole": ("lstm", {"peephole": True}, None),
    "gru-notes": ("gru", {"reset_after": False}, None),
}
#: the variant row -> the row it is compared with
VARIANT_OF = {"lstm-peephole": "lstm", "gru-notes": "gru"}


def set_threads(n: int, torch_too: bool = True, own: bool = True) -> None:
    """seqmodels on ``n`` threads of its own with NumPy's BLAS on one (``accel.set_threads``, what the
    command line's ``--threads`` does), or with ``own`` False NumPy's BLAS on ``n`` threads and seqmodels
    following it; PyTorch (unless ``torch_too`` is False) on ``n`` threads."""
    from seqmodels.core import accel
    if own:
        accel.set_threads(n)
    else:
        accel.set_threads(None)
        blas.set_num_threads(n)
    if torch_too:
        try:
            import torch
            torch.set_num_threads(n)
        except ImportError:
            pass


def make_vocab(V: int) -> Vocabulary:
    """A vocabulary of exactly V entries (3 specials + V - 3 tokens); char level when that fits."""
    if V - 3 <= 90:
        return Vocabulary([chr(33 + i) for i in range(V - 3)], level="char")
    return Vocabulary([f"w{i}" for i in range(V - 3)], level="word")


def make_batches(cfg: Config, n: int = 4, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` stream windows (x, y): (B, T) int64 ids, y = x shifted by one step."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        ids = rng.integers(3, cfg.V, size=(cfg.B, cfg.T + 1))
        out.append((ids[:, :-1].copy(), ids[:, 1:].copy()))
    return out


class SeqmodelsStep:
    """seqmodels' training step (the library's own train_batch, clip and Adam)."""

    framework = "seqmodels"

    def __init__(self, cell: str, cfg: Config, seed: int = 0):
        kind, options, _ = CELLS[cell]
        self.model = LanguageModel(make_vocab(cfg.V), kind, cfg.H, cfg.L, embedding_dim=cfg.H,
                                   seed=seed, **options)
        self.opt = make_optimizer("adam", self.model.params, self.model.grads, lr=LR)
        self.batches = make_batches(cfg)
        self.i = 0

    def __call__(self) -> float:
        x, y = self.batches[self.i % len(self.batches)]
        self.i += 1
        self.model.zero_grad()
        loss, _ = self.model.train_batch((x, y))
        clip(self.model.grads, "norm", CLIP_NORM)
        self.opt.step()
        return loss


class TorchStep:
    """The same step in PyTorch (nn.Embedding, nn.LSTM/GRU/RNN, nn.Linear, cross_entropy, Adam)."""

    framework = "torch"

    def __init__(self, cell: str, cfg: Config, seed: int = 0):
        import torch
        from torch import nn

        _, _, module = CELLS[cell]
        if module is None:
            raise ValueError(f"PyTorch has no {cell!r} layer")
        torch.manual_seed(seed)
        self.torch = torch
        self.emb = nn.Embedding(cfg.V, cfg.H)
        self.rnn = getattr(nn, module)(cfg.H, cfg.H, cfg.L, batch_first=True)
        self.head = nn.Linear(cfg.H, cfg.V)
        self.params = [*self.emb.parameters(), *self.rnn.parameters(), *self.head.parameters()]
        self.opt = torch.optim.Adam(self.params, lr=LR)
        self.batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in make_batches(cfg)]
        self.state = None
        self.V = cfg.V
        self.i = 0

    def _detach(self, s):
        return tuple(v.detach() for v in s) if isinstance(s, tuple) else s.detach()

    def __call__(self) -> float:
        torch = self.torch
        x, y = self.batches[self.i % len(self.batches)]
        self.i += 1
        self.opt.zero_grad(set_to_none=False)
        h, state = self.rnn(self.emb(x), self.state)
        logits = self.head(h)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, self.V), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, CLIP_NORM)
        self.opt.step()
        self.state = self._detach(state)
        return loss.item()


def make_step(framework: str, cell: str, cfg: Config, seed: int = 0):
    return (SeqmodelsStep if framework == "seqmodels" else TorchStep)(cell, cfg, seed)


def alternate(runners: dict, repeats: int, seconds: float = 0.3, warmup: int = 2,
              pause: float = 0.2, lead: int = 1) -> tuple[int, dict]:
    """Time the runners in turns, repeat by repeat, each repeat ``steps`` calls long.

    ``steps`` is the same for every runner: enough calls that the slower one's repeat lasts about
    ``seconds`` (at least 2), from the last warm-up call's time. A repeat measures training as it runs,
    step after step: the first call after a pause is slower for both frameworks (the CPUs come back
    from idle, the caches hold the other framework's data), a cost a training run pays once, not per
    step, so each repeat starts with ``lead`` untimed calls. A pause between runners lets OpenBLAS's
    spinning worker threads go to sleep before the other framework starts.
    Returns (steps, name -> list of seconds per timed call, one entry per repeat).
    """
    slowest = 0.0
    for fn in runners.values():
        for _ in range(max(warmup, 1)):             # at least one: the last warm-up call sizes the repeats
            t0 = time.perf_counter()
            fn()
            last = time.perf_counter() - t0
        slowest = max(slowest, last)
    steps = max(2, math.ceil(seconds / slowest))
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            time.sleep(pause)
            for _ in range(lead):
                fn()
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - t0) / steps)
    return steps, times


def median(xs) -> float:
    return float(statistics.median(xs))


def train_flops(cell: str, cfg: Config) -> float:
    """FLOPs of the GEMMs of one training step (forward ×3: forward, input and weight gradients).

    Per layer and step the gates cost ``2 B · G H · (H + D)`` (D = H here), the output layer
    ``2 B · V H``; the backward pass does twice the forward's GEMM work. The notes' GRU adds nothing
    (same products, split differently); the embedding and element-wise work are not counted.
    """
    kind, _, _ = CELLS[cell]
    G = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    steps = cfg.B * cfg.T
    recurrent = cfg.L * 2.0 * steps * G * cfg.H * (2 * cfg.H)
    head = 2.0 * steps * cfg.V * cfg.H
    return 3.0 * (recurrent + head)


_GEMM_CODE = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from seqmodels.core import blas
threads, sizes = int(sys.argv[2]), json.loads(sys.argv[3])
blas.set_num_threads(threads)
best = 0.0
for m, k, n in sizes:
    a = np.random.default_rng(0).random((m, k), dtype=np.float32)
    b = np.random.default_rng(1).random((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    for _ in range(3):
        np.matmul(a, b, out=c)
    for _ in range(15):
        t = time.perf_counter(); np.matmul(a, b, out=c); dt = time.perf_counter() - t
        best = max(best, 2.0 * m * k * n / dt)
print(json.dumps({"gflops": best / 1e9, **blas.blas_info()}))
"""

GEMM_SIZES = [(2048, 2048, 2048), (3200, 512, 2048), (1024, 1024, 1024)]


def gemm_rate(threads: int, coretype: str | None = None, sizes=GEMM_SIZES) -> dict:
    """Best float32 GEMM rate of NumPy's BLAS (GFLOP/s) in a fresh process, optionally with
    ``OPENBLAS_CORETYPE=coretype`` (must be set before NumPy loads, hence the subprocess)."""
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    out = subprocess.run([sys.executable, "-c", _GEMM_CODE, str(ROOT), str(threads), json.dumps(sizes)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


_RSS_CODE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
framework, cell, name, steps, threads = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
from benchmarks.common import CONFIGS, make_step, set_threads, current_rss, peak_rss_now
if framework == "torch":
    import torch  # imported before the baseline is read, like numpy for seqmodels
set_threads(threads, torch_too=framework == "torch")
base = current_rss()
step = make_step(framework, cell, CONFIGS[name])
for _ in range(steps):
    step()
print(json.dumps({"peak_mb": peak_rss_now(), "base_mb": base}))
"""


def peak_rss_now() -> float:
    """Peak resident set size of this process so far, MiB (VmHWM: unlike ``ru_maxrss``, not inherited
    from the parent across fork + exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss() -> float:
    """Resident set size of this process now, in MiB (Linux; 0.0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return 0.0


def peak_rss(framework: str, cell: str, cfg: Config, steps: int = 5, threads: int = 2) -> dict:
    """Peak RSS (MiB) of ``steps`` training steps in a fresh process, and the RSS after imports."""
    out = subprocess.run([sys.executable, "-c", _RSS_CODE, str(ROOT), framework, cell, cfg.name, str(steps),
                          str(threads)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine_info() -> dict:
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch_version,
            "seqmodels": sm.__version__, "cpu": _cpu_name(), "cores": os.cpu_count(), "blas": blas.blas_info(),
            "loadavg": load, "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_json(name: str, payload: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    path.write_text(json.dumps(payload, indent=1))
    return path


def asdict_config(cfg: Config) -> dict:
    return asdict(cfg)
