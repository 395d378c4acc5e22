"""A progress bar on stderr for long work: step, loss, tokens/s and ETA.

On a terminal it redraws one line (``\\r``); elsewhere (a log file, CI) it prints a plain line every
``interval`` seconds, so logs stay readable. NumPy only; no tqdm needed.
"""

from __future__ import annotations

import sys
import time


def _fmt_time(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _fmt_rate(rate: float) -> str:
    if rate >= 1e6:
        return f"{rate / 1e6:.2f}M"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f}k"
    return f"{rate:.0f}"


class Progress:
    """``Progress(total, desc)``; ``update(n, tokens=..., loss=...)``; ``close()``.

    >>> import io
    >>> buf = io.StringIO()
    >>> p = Progress(2, "train", stream=buf, interval=0.0)
    >>> p.update(1, tokens=100, loss=2.5); p.close()
    >>> "train" in buf.getvalue() and "loss 2.500" in buf.getvalue()
    True
    """

    def __init__(self, total: int | None, desc: str = "", *, stream=None, enabled: bool = True,
                 interval: float = 2.0, width: int = 24, initial: int = 0):
        self.total, self.desc = total, desc
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.interval, self.width = interval, width
        self.n = self._n0 = initial
        self.tokens = 0
        self.metrics: dict[str, float] = {}
        self.start = self._last = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn = False

    def update(self, n: int = 1, *, tokens: int = 0, **metrics: float) -> None:
        self.n += n
        self.tokens += tokens
        self.metrics.update(metrics)
        now = time.perf_counter()
        if self.enabled and (now - self._last >= (0.1 if self.tty else self.interval)
                             or (self.total is not None and self.n >= self.total)):
            self._last = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        now = time.perf_counter() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        parts = [self.desc] if self.desc else []
        if self.total:
            frac = min(self.n / self.total, 1.0)
            filled = int(round(frac * self.width))
            parts.append(f"{self.n}/{self.total} [{'#' * filled}{'.' * (self.width - filled)}]")
        else:
            parts.append(f"{self.n}")
        for key, value in self.metrics.items():
            parts.append(f"{key} {value:.3f}")
        if self.tokens:
            parts.append(f"{_fmt_rate(self.tokens / elapsed)} tok/s")
        done = self.n - self._n0
        if self.total and done > 0:
            rate = elapsed / done
            parts.append(f"ETA {_fmt_time(rate * (self.total - self.n))}")
        parts.append(f"elapsed {_fmt_time(elapsed)}")
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        text = self.line(now)
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._drawn = True

    def write(self, message: str) -> None:
        """Print a message above the bar (e.g. a validation result or a sample)."""
        if not self.enabled:
            return
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[K")
        self.stream.write(message + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
