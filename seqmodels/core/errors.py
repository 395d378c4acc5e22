"""The exception hierarchy of seqmodels.

Every error the library raises on purpose derives from :class:`SeqModelsError`, and each subclass also
derives from the built-in exception a caller would naturally catch, so ``except ValueError`` keeps
working. Messages name the argument (or file and line), the value received, what was expected and,
where there is one, the fix.

=====================  =====================  ==================================================
class                  also a                 raised for
=====================  =====================  ==================================================
``ConfigError``        ``ValueError``         a hyperparameter or option out of range / unknown
``ShapeError``         ``ValueError``         an array of the wrong rank or size, bad lengths
``DTypeError``         ``TypeError``          an array or argument of the wrong type
``DataError``          ``ValueError``         a file or corpus that cannot be read as expected
``CheckpointError``    ``ValueError``         a checkpoint that is missing, corrupt or mismatched
``NonFiniteError``     ``FloatingPointError`` NaN/inf in inputs, losses or gradients
=====================  =====================  ==================================================
"""

from __future__ import annotations


class SeqModelsError(Exception):
    """Base class of every error seqmodels raises on purpose."""


class ConfigError(SeqModelsError, ValueError):
    """A hyperparameter or option is out of range or unknown."""


class ShapeError(SeqModelsError, ValueError):
    """An array has the wrong rank or size, or lengths are out of range."""


class DTypeError(SeqModelsError, TypeError):
    """An argument has the wrong type or dtype."""


class DataError(SeqModelsError, ValueError):
    """A file or corpus cannot be read as expected (names the file and line)."""


class CheckpointError(SeqModelsError, ValueError):
    """A checkpoint is missing, truncated, corrupt, or does not match the model."""


class NonFiniteError(SeqModelsError, FloatingPointError):
    """NaN or infinity where finite numbers are required."""


def check_choice(name: str, value, choices) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{name}: expected one of {options}, got {value!r}")


def check_positive_int(name: str, value, *, allow_zero: bool = False) -> int:
    """Return ``value`` as an int, or raise if it is not a (positive / non-negative) integer."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not hasattr(value, "__index__"):
        raise DTypeError(f"{name}: expected an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    low = 0 if allow_zero else 1
    if value < low:
        raise ConfigError(f"{name}: expected an integer >= {low}, got {value}")
    return value


def check_probability(name: str, value, *, inclusive_one: bool = False) -> float:
    """Return ``value`` as a float in [0, 1) (or [0, 1]), else raise :class:`ConfigError`."""
    value = float(value)
    ok = 0.0 <= value <= 1.0 if inclusive_one else 0.0 <= value < 1.0
    if not ok:
        bound = "1]" if inclusive_one else "1)"
        raise ConfigError(f"{name}: expected a value in [0, {bound}, got {value}")
    return value
