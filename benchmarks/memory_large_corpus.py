"""Peak memory stays flat from a 10 MB to a 1 GB corpus: ids encoded once to a memory-mapped file.

For each size a synthetic corpus is generated in 4 MB blocks into a temporary directory (free disk space
is checked first and the files are deleted afterwards). Then, in a fresh subprocess per size (so each
peak is its own), seqmodels

1. builds the character vocabulary by streaming the file (``seqmodels.text.memmap.build_vocab``),
2. encodes it to a uint16 id file with a JSON sidecar (``encode_corpus``; the MB/s is the throughput),
3. opens it again (reused: no second encoding),
4. trains a character LSTM for ``--steps`` steps on windows read from the ``np.memmap``,

and reports the peak resident set size after each phase (``VmHWM`` from /proc/self/status, falling back
to ``ru_maxrss``). ``--naive-up-to`` also runs the in-memory path (``read_text`` + ``stream_ids``) for the
smaller sizes, for contrast.

    OPENBLAS_NUM_THREADS=1 python benchmarks/memory_large_corpus.py --sizes 10 100 1000

Writes ``benchmarks/results/memory_large_corpus.json``. Not a test: run it by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BLOCK = 4 << 20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (10^6 bytes)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024                      # bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


def generate(path: Path, megabytes: float, seed: int = 0) -> int:
    """Write ``megabytes`` MB of English-like lines (with some non-ASCII words) in 4 MB blocks."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    freq = np.linspace(2.0, 0.1, letters.size)
    words = ["".join(rng.choice(letters, rng.integers(1, 11), p=freq / freq.sum())) for _ in range(20_000)]
    words += ["café", "naïve", "über", "—", "“quoted”", "Ægir", "smörgåsbord"]       # some non-ASCII
    lexicon = np.array(words, dtype=object)
    blocks = []
    for _ in range(min(8, int(megabytes * 1e6) // BLOCK + 1)):           # up to 8 distinct blocks, rotated
        picks = lexicon[rng.integers(0, lexicon.size, BLOCK // 5)]
        ends = np.cumsum(rng.integers(3, 25, BLOCK // 5 // 3))
        lines = [" ".join(picks[a:b]).capitalize() + "." for a, b in zip(ends[:-1], ends[1:]) if b <= picks.size]
        blocks.append(("\n".join(lines) + "\n").encode("utf-8"))
    target, written = int(megabytes * 1e6), 0
    with open(path, "wb") as f:
        while written < target:
            block = blocks[int(rng.integers(len(blocks)))]
            cut = block.index(b"\n", int(rng.integers(len(block) // 2))) + 1
            piece = (block[cut:] + block[:cut])[:target - written]
            f.write(piece)
            written += len(piece)
        if not piece.endswith(b"\n"):
            f.write(b"\n")
            written += 1
    return written


def child(args) -> None:
    """One size, in its own process: vocabulary, encoding, reuse, training; peak RSS after each."""
    from seqmodels.models.language_model import LanguageModel
    from seqmodels.text import memmap

    path = Path(args.child)
    out = {"bytes": path.stat().st_size, "rss_start_mb": peak_rss_mb()}
    t0 = time.perf_counter()
    if args.naive:
        from seqmodels.data.readers import read_text
        from seqmodels.text import Vocabulary
        text = read_text(path)
        vocab = Vocabulary.from_text(text, level="char", lines_as_sequences=True, order="sorted")
        out["vocab_s"] = time.perf_counter() - t0
        out["rss_after_vocab_mb"] = peak_rss_mb()
        model = LanguageModel(vocab, "lstm", args.hidden, seed=0)
        t0 = time.perf_counter()
        ids = model.stream_ids(text)
        out["encode_s"] = time.perf_counter() - t0
        del text
    else:
        vocab = memmap.build_vocab(path, order="sorted", progress=True)
        out["vocab_s"] = time.perf_counter() - t0
        out["rss_after_vocab_mb"] = peak_rss_mb()
        corpus = memmap.encode_corpus(path, vocab, out=Path(args.ids), progress=True)
        out["encode_s"] = corpus.seconds
        t0 = time.perf_counter()
        again = memmap.encode_corpus(path, vocab, out=Path(args.ids), progress=True)
        out["reopen_s"], out["reused"] = time.perf_counter() - t0, again.reused
        ids = again.ids
        model = LanguageModel(vocab, "lstm", args.hidden, seed=0)
    out["tokens"] = int(ids.shape[0])
    out["encode_mb_per_s"] = out["bytes"] / 1e6 / out["encode_s"]
    out["vocab_mb_per_s"] = out["bytes"] / 1e6 / out["vocab_s"]
    out["rss_after_encode_mb"] = peak_rss_mb()
    t0 = time.perf_counter()
    history = model.fit(ids, batch_size=32, seq_len=64, steps=args.steps, lr=2e-3, progress=False)
    out["train_s"] = time.perf_counter() - t0
    out["train_loss_first_last"] = [history.loss[0][1], history.loss[-1][1]]
    out["rss_after_train_mb"] = peak_rss_mb()
    print(json.dumps(out))


def run_size(megabytes: float, workdir: Path, steps: int, hidden: int, naive: bool) -> dict:
    corpus, ids = workdir / f"corpus_{megabytes:g}MB.txt", workdir / f"corpus_{megabytes:g}MB.ids"
    t0 = time.perf_counter()
    size = generate(corpus, megabytes)
    print(f"generated {size / 1e6:,.0f} MB in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    results = {}
    try:
        for mode in (["memmap", "in-memory"] if naive else ["memmap"]):
            cmd = [sys.executable, __file__, "--child", str(corpus), "--ids", str(ids), "--steps", str(steps),
                   "--hidden", str(hidden)] + (["--naive"] if mode == "in-memory" else [])
            done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
            r = results[mode]
            print(f"{megabytes:>7g} MB {mode:>9}: peak RSS {r['rss_after_train_mb']:7.1f} MB "
                  f"(vocab {r['rss_after_vocab_mb']:.1f}, encode {r['rss_after_encode_mb']:.1f}); "
                  f"vocab {r['vocab_mb_per_s']:.0f} MB/s, encode {r['encode_mb_per_s']:.0f} MB/s, "
                  f"{steps} steps in {r['train_s']:.1f} s", file=sys.stderr, flush=True)
    finally:
        corpus.unlink(missing_ok=True)
        for p in workdir.glob(ids.name + "*"):
            p.unlink()
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=float, nargs="+", default=[10, 100, 1000], help="corpus sizes in MB")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--naive-up-to", type=float, default=100, help="also run the in-memory path up to this size")
    p.add_argument("--dir", default=None, help="where to generate the corpora (default: the temp directory)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "memory_large_corpus.json"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--ids", help=argparse.SUPPRESS)
    p.add_argument("--naive", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    base = Path(args.dir or tempfile.gettempdir())
    workdir = Path(tempfile.mkdtemp(prefix="seqmodels_memory_", dir=base))
    report = {"machine": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                          "load_average": os.getloadavg(), "platform": platform.platform()},
              "command": " ".join([Path(sys.executable).name, *sys.argv]), "steps": args.steps,
              "hidden": args.hidden, "sizes": {}}
    try:
        for mb in args.sizes:
            need = mb * 1e6 * 3.2                                           # text + uint16 ids + margin
            free = shutil.disk_usage(workdir).free
            if free < need:
                print(f"skipping {mb:g} MB: {free / 1e9:.1f} GB free, {need / 1e9:.1f} GB needed", file=sys.stderr)
                report["sizes"][f"{mb:g}"] = {"skipped": f"{free / 1e9:.1f} GB free"}
                continue
            report["sizes"][f"{mb:g}"] = run_size(mb, workdir, args.steps, args.hidden, mb <= args.naive_up_to)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
