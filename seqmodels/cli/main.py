"""``seqmodels`` command line: a thin layer over the library.

Every command module in :data:`COMMAND_MODULES` exposes ``register(subparsers)``, which adds its
sub-command(s) with ``set_defaults(func=...)``; ``func(args) -> int`` does the work. Results go to stdout,
logs and progress bars to stderr. A user error never shows a traceback: one line on stderr and the exit
code below (``--debug`` shows the traceback).

====  ==========================================================
code  meaning
====  ==========================================================
0     success
1     an unexpected internal error (a bug: please report it with ``--debug``)
2     bad command-line usage (argparse)
3     bad configuration or hyperparameter (``ConfigError``)
4     unreadable or malformed data file (``DataError``, missing files)
5     missing, corrupt or mismatched checkpoint (``CheckpointError``)
6     wrong array shape or type (``ShapeError``, ``DTypeError``)
7     NaN or inf in a loss or gradient (``NonFiniteError``)
130   interrupted with Ctrl-C (a checkpoint was saved where training was running)
143   stopped by SIGTERM (``kill``, a scheduler's time limit): handled like Ctrl-C, checkpoint included
====  ==========================================================
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import traceback

from .._version import __version__
from ..core.errors import (CheckpointError, ConfigError, DataError, DTypeError, NonFiniteError, SeqModelsError,
                           ShapeError)

COMMAND_MODULES = ("lm", "tag", "classify", "translate", "music", "diagnose")

EXIT_CODES = (
    (ConfigError, 3), (DataError, 4), (CheckpointError, 5), (ShapeError, 6), (DTypeError, 6),
    (NonFiniteError, 7),
)


def exit_code(error: BaseException) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    if isinstance(error, (FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError)):
        return 4
    return 1


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (``seqmodels CMD: error: MESSAGE (see seqmodels CMD --help)``), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="seqmodels",
        description="Recurrent sequence models (RNN, GRU, LSTM) in NumPy: language models, taggers, "
                    "classifiers, translators, music generators.")
    parser.add_argument("--version", action="version", version=f"seqmodels {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads (default: all cores on an idle machine, 1 when other processes keep "
                             "the cores busy — spinning BLAS workers then stall every time step)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f".{name}", __package__)
        except ModuleNotFoundError as e:
            if e.name == f"{__package__}.{name}":
                continue                                  # that command is not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _set_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("seqmodels: interrupted", file=sys.stderr)
        return 130
    except (SeqModelsError, FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        if args.debug:
            traceback.print_exc()
        print(f"seqmodels {args.command}: error: {e}", file=sys.stderr)
        return exit_code(e)
    except Exception:                                     # a bug: say so, and how to report it
        if args.debug:
            raise
        kind, value, _ = sys.exc_info()
        print(f"seqmodels {args.command}: internal error: {kind.__name__}: {value} "
              "(run again with --debug for the traceback and please report it)", file=sys.stderr)
        return 1


def _set_threads(requested: int | None) -> None:
    """Apply --threads (default: every core this process may use on an idle machine, one when other
    processes keep it busy). With the compiled kernels, seqmodels runs on threads of its own and the BLAS
    on one (``accel.set_threads``); without them, the BLAS gets the threads."""
    import os
    try:
        from ..core import accel, blas
        if requested is None:
            if "OPENBLAS_NUM_THREADS" in os.environ:
                return                                        # the user chose the BLAS's threads
            busy = os.getloadavg()[0] >= 1.0
            requested = 1 if busy else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
                else (os.cpu_count() or 1)
        n = max(int(requested), 1)
        if accel.is_enabled():
            accel.set_threads(n)
        else:
            blas.set_num_threads(n)
    except (OSError, RuntimeError, AttributeError, ImportError):
        pass                                              # no controllable BLAS: leave it as it is


def entry() -> None:
    """Console-script entry point. SIGTERM stops a command the way Ctrl-C does (training saves its
    checkpoint first) and exits with 143 = 128 + SIGTERM."""
    terminated = []

    def on_sigterm(signum, frame):
        terminated.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    code = main()
    sys.exit(128 + terminated[0] if terminated else code)


if __name__ == "__main__":
    entry()
