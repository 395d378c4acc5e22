"""Corpora the demo can use without any download, and the one it can download.

- :func:`python_docstrings`: English prose that ships with every Python installation — the docstrings of
  the standard library's modules, classes and functions, read with :mod:`ast` (no module is imported).
- :func:`fetch`: download a public text once into a cache directory and check its SHA-256
  (``tiny-shakespeare``, the char-rnn corpus). Nothing is ever stored inside the repository.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import sysconfig
import tempfile
import urllib.request
from pathlib import Path

from ..core.errors import DataError

KNOWN_CORPORA = {
    "shakespeare": {
        "url": "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "sha256": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        "filename": "tinyshakespeare.txt",
    },
}


def _clean(doc: str) -> str | None:
    """Keep prose paragraphs: drop doctest lines, code-ish and very short paragraphs."""
    paragraphs = []
    for para in re.split(r"\n\s*\n", doc):
        lines = [l.strip() for l in para.strip().splitlines()]
        if not lines or any(l.startswith((">>>", "...", "$", "--", "==", "::")) for l in lines):
            continue
        text = " ".join(lines)
        if len(text) < 60 or not text[0].isalpha() or text.count("(") > 4 or "_" in text[:20]:
            continue
        if not all(ch.isascii() for ch in text):
            continue
        paragraphs.append(text)
    return "\n".join(paragraphs) if paragraphs else None


def python_docstrings(max_chars: int = 400_000, stdlib: str | os.PathLike | None = None) -> str:
    """Prose from the docstrings of Python's standard library, one paragraph per line (deterministic).

    Files are read in sorted order (tests and third-party packages skipped) until ``max_chars``.
    """
    root = Path(stdlib or sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise DataError(f"the standard library was not found at {root}; pass --corpus PATH to a text file")
    seen, parts, total = set(), [], 0
    files = sorted(p for p in root.rglob("*.py")
                   if not any(part in {"test", "tests", "site-packages", "idlelib", "lib2to3", "turtledemo"}
                              or part.startswith("test_") for part in p.relative_to(root).parts))
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                cleaned = _clean(doc) if doc else None
                if cleaned and cleaned not in seen:
                    seen.add(cleaned)
                    parts.append(cleaned)
                    total += len(cleaned) + 1
                    if total >= max_chars:
                        return "\n".join(parts)[:max_chars]
    if not parts:
        raise DataError(f"no docstrings found under {root}; pass --corpus PATH to a text file")
    return "\n".join(parts)


def cache_dir() -> Path:
    """``$SEQMODELS_CACHE``, else ``$XDG_CACHE_HOME/seqmodels``, else ``~/.cache/seqmodels``."""
    env = os.environ.get("SEQMODELS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "seqmodels"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(name: str, *, url: str | None = None, directory: Path | None = None, timeout: float = 30.0) -> Path:
    """Path of corpus ``name`` in the cache, downloading it once (checked against its SHA-256).

    A download that fails or does not match the checksum leaves nothing behind in the cache.
    """
    if name not in KNOWN_CORPORA:
        raise DataError(f"corpus: unknown name {name!r}; known: {sorted(KNOWN_CORPORA)} or a path to a file")
    spec = KNOWN_CORPORA[name]
    directory = Path(directory or cache_dir())
    target = directory / spec["filename"]
    if target.exists() and sha256_of(target) == spec["sha256"]:
        return target
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url or spec["url"], timeout=timeout) as resp:
            while block := resp.read(1 << 20):
                out.write(block)
        digest = sha256_of(Path(tmp))
        if digest != spec["sha256"]:
            raise DataError(f"download of {name} from {url or spec['url']} has SHA-256 {digest}, expected "
                            f"{spec['sha256']}; the file was discarded")
        os.replace(tmp, target)
    except OSError as e:
        raise DataError(f"could not download {name} from {url or spec['url']}: {e}; check the network, or pass "
                        f"--corpus PATH to a local copy") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
