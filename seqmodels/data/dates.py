"""A generated translation task: dates written the many ways people write them -> ISO ``YYYY-MM-DD``.

The notes' machine-translation example in miniature (Tx ≠ Ty, a fixed output format). Each pair is
``(human, iso)``, e.g. ``("tuesday, march 5, 1985", "1985-03-05")``. Dates are drawn uniformly between
``start`` and ``end``; the style, the case and the small variations (ordinal suffixes, zero padding,
abbreviations, weekday names) are drawn from a seeded ``np.random.Generator``, so the same seed gives
the same data set. Every style fixes its convention, so each string has exactly one meaning:

==================  ============================  ================================================
style               example (1985-03-05)          convention
==================  ============================  ================================================
``d_month_y``       ``5 March 1985``               day month year (full or abbreviated month)
``month_d_y``       ``March 5, 1985``              month day, year (comma optional)
``ordinal_of``      ``the 5th of March, 1985``     ordinal day "of" month
``weekday_month``   ``Tuesday, March 5, 1985``     weekday (full or abbreviated) + month day year
``weekday_d``       ``Tue 5 Mar 1985``             weekday + day month year
``dmy_dots``        ``05.03.1985`` / ``5.3.1985``  day.month.year (European dots)
``mdy_slashes``     ``03/05/1985`` / ``3/5/1985``  month/day/year (US slashes)
``dmy_dashes``      ``05-03-1985``                 day-month-year with dashes
``ymd_slashes``     ``1985/03/05``                 year/month/day
``month_y_d``       ``March 1985, 5th``            month year, ordinal day
``compact``         ``5mar1985``                   day month-abbreviation year, no spaces
==================  ============================  ================================================

>>> pairs = generate_dates(3, seed=0)
>>> len(pairs), all(len(iso) == 10 and iso[4] == iso[7] == "-" for _, iso in pairs)
(3, True)
>>> format_date(datetime.date(1985, 3, 5), "month_d_y", np.random.default_rng(0)).lower().startswith("mar")
True
"""

from __future__ import annotations

import datetime

import numpy as np

from ..core.errors import ConfigError, DTypeError, check_positive_int
from ..core.init import as_generator

__all__ = ["MONTHS", "WEEKDAYS", "STYLES", "ordinal", "format_date", "generate_dates"]

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")  # date.weekday()


def ordinal(day: int) -> str:
    """``1 -> "1st"``, ``2 -> "2nd"``, ``3 -> "3rd"``, ``11 -> "11th"``, ``22 -> "22nd"``."""
    if 10 <= day % 100 <= 20:
        return f"{day}th"
    return f"{day}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th')}"


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _month(d: datetime.date, rng) -> str:
    full = MONTHS[d.month - 1]
    return _pick(rng, (full, full[:3], full[:3] + "."))


def _weekday(d: datetime.date, rng) -> str:
    full = WEEKDAYS[d.weekday()]
    return _pick(rng, (full, full[:3]))


def _day(d: datetime.date, rng) -> str:
    return _pick(rng, (str(d.day), ordinal(d.day)))


def _num(v: int, rng) -> str:
    return _pick(rng, (str(v), f"{v:02d}"))


def _style_d_month_y(d, rng):
    return f"{_day(d, rng)} {_month(d, rng)} {d.year}"


def _style_month_d_y(d, rng):
    return f"{_month(d, rng)} {_day(d, rng)}{_pick(rng, (',', ''))} {d.year}"


def _style_ordinal_of(d, rng):
    return f"{_pick(rng, ('the ', ''))}{ordinal(d.day)} of {_month(d, rng)}{_pick(rng, (',', ''))} {d.year}"


def _style_weekday_month(d, rng):
    return f"{_weekday(d, rng)}, {_month(d, rng)} {_day(d, rng)}, {d.year}"


def _style_weekday_d(d, rng):
    return f"{_weekday(d, rng)}{_pick(rng, (',', ''))} {_day(d, rng)} {_month(d, rng)} {d.year}"


def _style_dmy_dots(d, rng):
    return f"{_num(d.day, rng)}.{_num(d.month, rng)}.{d.year}"


def _style_mdy_slashes(d, rng):
    return f"{_num(d.month, rng)}/{_num(d.day, rng)}/{d.year}"


def _style_dmy_dashes(d, rng):
    return f"{d.day:02d}-{d.month:02d}-{d.year}"


def _style_ymd_slashes(d, rng):
    return f"{d.year}/{d.month:02d}/{d.day:02d}"


def _style_month_y_d(d, rng):
    return f"{_month(d, rng)} {d.year}, {ordinal(d.day)}"


def _style_compact(d, rng):
    return f"{d.day}{MONTHS[d.month - 1][:3]}{d.year}"


_STYLE_FUNCS = {
    "d_month_y": _style_d_month_y, "month_d_y": _style_month_d_y, "ordinal_of": _style_ordinal_of,
    "weekday_month": _style_weekday_month, "weekday_d": _style_weekday_d, "dmy_dots": _style_dmy_dots,
    "mdy_slashes": _style_mdy_slashes, "dmy_dashes": _style_dmy_dashes, "ymd_slashes": _style_ymd_slashes,
    "month_y_d": _style_month_y_d, "compact": _style_compact,
}
#: The style names, in the order of the table above.
STYLES = tuple(_STYLE_FUNCS)
CASES = ("as_is", "lower", "upper")


def format_date(date: datetime.date, style: str, rng=None, case: str | None = None) -> str:
    """Write ``date`` in ``style`` (one of :data:`STYLES`); variations and case drawn from ``rng``.

    ``case``: ``"as_is"`` (capitalised names), ``"lower"``, ``"upper"``, or None to draw it
    (as_is 50%, lower 35%, upper 15%).
    """
    if not isinstance(date, datetime.date):
        raise DTypeError(f"date: expected a datetime.date, got {type(date).__name__}")
    if style not in _STYLE_FUNCS:
        raise ConfigError(f"style: expected one of {', '.join(STYLES)}, got {style!r}")
    rng = as_generator(rng)
    text = _STYLE_FUNCS[style](date, rng)
    if case is None:
        case = CASES[int(rng.choice(3, p=(0.5, 0.35, 0.15)))]
    elif case not in CASES:
        raise ConfigError(f"case: expected one of {', '.join(CASES)}, got {case!r}")
    return text.lower() if case == "lower" else text.upper() if case == "upper" else text


def _as_date(value, name: str) -> datetime.date:
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{name}: expected a date (datetime.date or 'YYYY-MM-DD'), got {value!r}") from None


def generate_dates(n: int, seed=0, *, start="1900-01-01", end="2099-12-31", styles=None,
                   exclude=None) -> list[tuple[str, str]]:
    """``n`` pairs ``(human, iso)``: uniform dates in [start, end], uniform styles, seeded.

    Args:
        n: number of pairs.
        seed: int or ``np.random.Generator``; the same seed gives the same pairs.
        start, end: the date range (inclusive), as ``datetime.date`` or ISO strings.
        styles: a subset of :data:`STYLES` (default: all).
        exclude: a set of human strings never to produce (e.g. the training inputs, for a held-out
            test set); a drawn string in it is drawn again.
    """
    n = check_positive_int("n", n, allow_zero=True)
    lo, hi = _as_date(start, "start"), _as_date(end, "end")
    if hi < lo:
        raise ConfigError(f"end: expected a date on or after start {lo}, got {hi}")
    styles = STYLES if styles is None else tuple(styles)
    for s in styles:
        if s not in _STYLE_FUNCS:
            raise ConfigError(f"styles: unknown style {s!r}; expected some of {', '.join(STYLES)}")
    if not styles:
        raise ConfigError("styles: expected at least one style")
    rng = as_generator(seed)
    exclude = set() if exclude is None else exclude
    span = (hi - lo).days + 1
    out: list[tuple[str, str]] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise ConfigError(f"exclude: could not draw {n} dates outside the {len(exclude)} excluded strings; "
                              "widen the date range or exclude less")
        d = lo + datetime.timedelta(days=int(rng.integers(span)))
        text = format_date(d, _pick(rng, styles), rng)
        if text in exclude:
            continue
        out.append((text, d.isoformat()))
    return out
