"""The generated dates data set: every human string means exactly the ISO date paired with it.

The strings are read back by a parser written here from the style conventions (using the standard
``calendar`` names, not the generator's tables), which also checks weekday names and ordinal suffixes.
"""

import calendar
import datetime
import re
from collections import Counter

import pytest

from seqmodels import ConfigError
from seqmodels.data.dates import STYLES, format_date, generate_dates, ordinal

MONTH = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTH.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
WEEKDAY = {name.lower(): i for i, name in enumerate(calendar.day_name)}
WEEKDAY.update({name.lower(): i for i, name in enumerate(calendar.day_abbr)})

M = r"([a-z]+)\.?"
D = r"(\d{1,2})(st|nd|rd|th)?"
Y = r"(\d{4})"
WORD_FORMS = [  # (pattern, order of the groups as (day, suffix, month, year) names)
    (rf"^(?:the )?{D} of {M} {Y}$", ("d", "s", "m", "y")),
    (rf"^{D} {M} {Y}$", ("d", "s", "m", "y")),
    (rf"^{M} {D} {Y}$", ("m", "d", "s", "y")),
    (rf"^{M} {Y} {D}$", ("m", "y", "d", "s")),
]
NUMERIC_FORMS = [
    (r"^(\d{4})/(\d{2})/(\d{2})$", "ymd"),
    (r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$", "dmy"),
    (r"^(\d{1,2})/(\d{1,2})/(\d{4})$", "mdy"),
    (r"^(\d{2})-(\d{2})-(\d{4})$", "dmy"),
]


def suffix(day: int) -> str:
    if day in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def parse(text: str) -> datetime.date:
    t = text.lower()
    for pattern, order in NUMERIC_FORMS:
        m = re.match(pattern, t)
        if m:
            v = dict(zip(order, map(int, m.groups())))
            return datetime.date(v["y"], v["m"], v["d"])
    m = re.match(r"^(\d{1,2})([a-z]{3})(\d{4})$", t)           # compact: 5mar1985
    if m:
        return datetime.date(int(m.group(3)), MONTH[m.group(2)], int(m.group(1)))
    t = re.sub(r"\s+", " ", t.replace(",", " ")).strip()
    weekday = None
    m = re.match(r"^([a-z]+) (.*)$", t)
    if m and m.group(1) in WEEKDAY:
        weekday, t = WEEKDAY[m.group(1)], m.group(2)
    for pattern, order in WORD_FORMS:
        m = re.match(pattern, t)
        if m:
            v = dict(zip(order, m.groups()))
            date = datetime.date(int(v["y"]), MONTH[v["m"]], int(v["d"]))
            if v["s"] is not None and v["s"] != suffix(date.day):
                raise AssertionError(f"{text!r}: wrong ordinal suffix")
            if weekday is not None and date.weekday() != weekday:
                raise AssertionError(f"{text!r}: weekday does not match the date")
            return date
    raise AssertionError(f"no convention reads {text!r}")


def test_every_string_means_its_iso_date():
    pairs = generate_dates(3000, seed=7)
    for human, iso in pairs:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", iso)
        date = datetime.date.fromisoformat(iso)                # a valid calendar date
        assert datetime.date(1900, 1, 1) <= date <= datetime.date(2099, 12, 31)
        assert parse(human) == date, human


@pytest.mark.parametrize("style", STYLES)
def test_each_style_with_each_case(style):
    import numpy as np
    rng = np.random.default_rng(0)
    for day in (datetime.date(2000, 2, 29), datetime.date(1911, 11, 11), datetime.date(2023, 12, 22),
                datetime.date(1903, 1, 3)):
        for case in ("as_is", "lower", "upper"):
            text = format_date(day, style, rng, case=case)
            assert parse(text) == day, (style, text)
            if case == "lower":
                assert text == text.lower()
            elif case == "upper":
                assert text == text.upper()


def test_all_styles_and_cases_occur_and_strings_vary():
    pairs = generate_dates(2000, seed=1)
    texts = [h for h, _ in pairs]
    assert len(set(texts)) > 1990
    assert any(t.isupper() for t in texts) and any(t.islower() for t in texts)
    shapes = Counter(re.sub(r"[a-z]", "a", re.sub(r"\d", "9", t.lower())) for t in texts)
    assert len(shapes) > 40                                    # many surface forms, not a handful


def test_seeded_and_reproducible():
    assert generate_dates(50, seed=3) == generate_dates(50, seed=3)
    assert generate_dates(50, seed=3) != generate_dates(50, seed=4)


def test_exclude_gives_held_out_strings_and_range_is_respected():
    train = generate_dates(500, seed=0, start="2000-01-01", end="2000-03-31")
    seen = {h for h, _ in train}
    test = generate_dates(300, seed=1, start="2000-01-01", end="2000-03-31", exclude=seen)
    assert not seen & {h for h, _ in test}
    assert all("2000-01-01" <= iso <= "2000-03-31" for _, iso in train + test)


def test_style_subset():
    pairs = generate_dates(100, seed=0, styles=["ymd_slashes"])
    assert all(re.fullmatch(r"\d{4}/\d{2}/\d{2}", h) and h.replace("/", "-") == iso for h, iso in pairs)


def test_ordinal():
    got = [ordinal(d) for d in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31, 101, 111, 112)]
    assert got == ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st",
                   "101st", "111th", "112th"]


def test_bad_arguments():
    with pytest.raises(ConfigError, match="style"):
        generate_dates(5, styles=["klingon"])
    with pytest.raises(ConfigError, match="on or after start"):
        generate_dates(5, start="2000-01-02", end="2000-01-01")
    with pytest.raises(ConfigError, match="expected a date"):
        generate_dates(5, start="yesterday")
    with pytest.raises(ConfigError, match="could not draw"):
        only = generate_dates(1, seed=0, start="2000-01-01", end="2000-01-01", styles=["ymd_slashes"])
        generate_dates(1, seed=0, start="2000-01-01", end="2000-01-01", styles=["ymd_slashes"],
                       exclude={only[0][0]})
    assert generate_dates(0) == []
