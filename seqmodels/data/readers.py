"""Readers for the file formats the models train on: plain text, lines, CoNLL columns, TSV,
piano-roll JSON and parallel (translation) pairs.

Every reader goes through :func:`read_text`, so every one of them rejects a missing file, a directory,
an empty file, a binary file and bytes that are not UTF-8 with a :class:`DataError` naming the path
(and the byte offset or 1-based line). A UTF-8 byte-order mark is dropped and ``\\r\\n`` becomes
``\\n``. "Whitespace" around fields means ASCII space, tab, CR, FF and VT; other Unicode spaces
(U+00A0, U+202F ...) are content and are kept.

>>> import pathlib, tempfile
>>> p = pathlib.Path(tempfile.mkdtemp()) / "ner.conll"
>>> _ = p.write_text("EU\\tB-org\\nrejects\\tO\\n\\nPeter\\tB-per\\n", encoding="utf-8")
>>> read_conll(p)
[Sentence(tokens=['EU', 'rejects'], tags=['B-org', 'O'], line=1), Sentence(tokens=['Peter'], tags=['B-per'], line=4)]
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from ..core.errors import ConfigError, DataError

__all__ = ["Sentence", "read_text", "read_lines", "read_conll", "read_tsv",
           "read_piano_roll_json", "read_parallel"]

_WS = " \t\r\n\f\v"
_BOM = b"\xef\xbb\xbf"


class Sentence(NamedTuple):
    """One CoNLL sentence: ``tokens`` and ``tags`` of equal length; ``line`` is the 1-based line of
    its first token in the file."""

    tokens: list[str]
    tags: list[str]
    line: int


def _show(line: str, limit: int = 80) -> str:
    return repr(line if len(line) <= limit else line[:limit] + "...")


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _read_bytes(path) -> tuple[Path, bytes]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found (working directory {Path.cwd()}); check the path")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file; name a file inside it")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror}); check its permissions") from None
    if not data:
        raise DataError(f"{path}: file is empty (0 bytes), expected text")
    return path, data


def read_text(path) -> str:
    """Read a UTF-8 text file strictly.

    Returns the text without a leading BOM and with ``\\r\\n`` turned into ``\\n``. Raises
    :class:`DataError` for a missing file, a directory, an empty file (or one holding only a BOM), a
    binary file (NUL byte: its byte offset is named) or invalid UTF-8 (the byte offset, line and the
    offending bytes are named).
    """
    path, data = _read_bytes(path)
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError(f"{path}: starts with a UTF-16 byte-order mark {data[:2].hex(' ')}; expected "
                        "UTF-8. Fix: re-save it as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8`)")
    nul = data.find(b"\0")
    if nul >= 0:
        raise DataError(f"{path}: looks binary: NUL byte at byte offset {nul} (line "
                        f"{_line_of(data, nul)}); expected UTF-8 text")
    skip = len(_BOM) if data.startswith(_BOM) else 0
    if skip == len(data):
        raise DataError(f"{path}: holds only a UTF-8 byte-order mark, no text")
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = skip + err.start
        bad = data[offset:offset + max(err.end - err.start, 1)]
        context = data[max(offset - 12, 0):offset + 12]
        raise DataError(
            f"{path}: not valid UTF-8 at byte offset {offset} (line {_line_of(data, offset)})"
            f": bytes {bad.hex(' ')} ({err.reason}) in {context!r}; expected UTF-8 text. Fix: "
            "convert the file, e.g. `iconv -f latin1 -t UTF-8 in > out`") from None
    return text.replace("\r\n", "\n")


def _numbered_lines(path) -> tuple[Path, list[str]]:
    """The lines of ``path`` (index ``i`` is line ``i + 1``), without the final newline's empty tail."""
    lines = read_text(path).split("\n")
    if lines[-1] == "":
        lines.pop()
    return Path(path), lines


def read_lines(path, skip_blank: bool = True) -> list[str]:
    """Lines of a text file, without their newline characters; whitespace-only lines are dropped
    when ``skip_blank``. Lines are not otherwise stripped."""
    _, lines = _numbered_lines(path)
    return [line for line in lines if line.strip(_WS)] if skip_blank else lines


def _check_col(name: str, col) -> int:
    if isinstance(col, bool) or not isinstance(col, int):
        raise ConfigError(f"{name}: expected an int column index (negative counts from the end), "
                          f"got {col!r}")
    return col


def _columns_needed(*cols: int) -> int:
    return max(c + 1 if c >= 0 else -c for c in cols)


def read_conll(path, token_col: int = 0, tag_col: int = -1) -> list[Sentence]:
    """Read CoNLL-style columns: one token per line, a blank line between sentences.

    A line containing a tab is split on tabs (fields may then contain spaces; trailing tabs are
    ignored); otherwise it is split on runs of spaces. Whitespace-only lines (WNUT-17's train file
    uses a lone tab) end a sentence; ``-DOCSTART-`` lines are ignored; a missing final blank line
    is fine. Every token line must have at least two columns, enough for
    ``token_col``/``tag_col``, and the same number of columns as the first token line.

    Returns:
        The sentences in file order (never empty ones).
    """
    need = max(_columns_needed(_check_col("token_col", token_col), _check_col("tag_col", tag_col)), 2)
    path, lines = _numbered_lines(path)
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    first = columns = columns_line = 0

    def flush():
        if tokens:
            sentences.append(Sentence(list(tokens), list(tags), first))
            tokens.clear()
            tags.clear()

    for no, raw in enumerate(lines, start=1):
        line = raw.strip(_WS)
        if not line or line.startswith("-DOCSTART-"):
            flush()
            continue
        body = raw.rstrip(_WS)
        if "\t" in body:  # leading tabs mark empty columns; trailing ones are dropped
            fields = [f.strip(_WS) for f in body.split("\t")]
        else:
            fields = [f for f in line.split(" ") if f]
        if len(fields) < need:
            raise DataError(f"{path}, line {no}: expected at least {need} columns (token_col="
                            f"{token_col}, tag_col={tag_col}), got {len(fields)}: {_show(raw)}. Fix: "
                            "write one token per line as `token<TAB>tag`, sentences separated by a "
                            "blank line")
        if not columns:
            columns, columns_line = len(fields), no
        elif len(fields) != columns:
            raise DataError(f"{path}, line {no}: {len(fields)} columns, but line {columns_line} has "
                            f"{columns}: {_show(raw)}; every token line needs the same columns")
        token, tag = fields[token_col], fields[tag_col]
        if not token or not tag:
            which = "token" if not token else "tag"
            raise DataError(f"{path}, line {no}: empty {which} column: {_show(raw)}")
        if not tokens:
            first = no
        tokens.append(token)
        tags.append(tag)
    flush()
    return sentences


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _looks_like_header(labels: list[str]) -> bool:
    """The first row is a header when its label never appears again and either every other label
    is a number while it is not, or every other label appears at least twice."""
    if len(labels) < 2 or labels[0] in set(labels[1:]):
        return False
    rest = Counter(labels[1:])
    if not _is_number(labels[0]) and all(_is_number(lab) for lab in rest):
        return True
    return min(rest.values()) >= 2


def read_tsv(path, text_col: int = 0, label_col: int = 1,
             header: bool | str = "auto") -> tuple[list[str], list[str]]:
    """Read ``text<TAB>label`` lines (e.g. SST-2) into parallel lists.

    Text and label are stripped of surrounding whitespace (SST-2 puts a space before the tab);
    blank lines are skipped; every non-blank line must have the same number of tab-separated columns.

    Args:
        path: the file.
        text_col, label_col: column indices (negative count from the end).
        header: ``True`` (skip the first row), ``False``, or ``"auto"``: skip the first row when
            its label is unlike the others (see ``_looks_like_header``).

    Returns:
        ``(texts, labels)``, both lists of str (convert labels yourself, e.g. ``int``).
    """
    need = _columns_needed(_check_col("text_col", text_col), _check_col("label_col", label_col))
    if header not in (True, False, "auto"):
        raise ConfigError(f"header: expected True, False or 'auto', got {header!r}")
    path, lines = _numbered_lines(path)
    rows: list[tuple[int, str, str]] = []
    columns = columns_line = 0
    for no, raw in enumerate(lines, start=1):
        if not raw.strip(_WS):
            continue
        fields = raw.split("\t")
        if len(fields) < need:
            raise DataError(f"{path}, line {no}: expected at least {need} tab-separated columns "
                            f"(text_col={text_col}, label_col={label_col}), got {len(fields)}: "
                            f"{_show(raw)}. Fix: separate the text and the label with a TAB")
        if not columns:
            columns, columns_line = len(fields), no
        elif len(fields) != columns:
            raise DataError(f"{path}, line {no}: {len(fields)} tab-separated columns, but line "
                            f"{columns_line} has {columns}: {_show(raw)}; does the text contain a TAB?")
        rows.append((no, fields[text_col].strip(_WS), fields[label_col].strip(_WS)))
    if header is True or (header == "auto" and _looks_like_header([r[2] for r in rows])):
        rows = rows[1:]
    for no, text, label in rows:
        if not text or not label:
            raise DataError(f"{path}, line {no}: empty {'text' if not text else 'label'} column: "
                            f"{_show(lines[no - 1])}")
    return [r[1] for r in rows], [r[2] for r in rows]


def read_piano_roll_json(path) -> dict[str, list[list[list[int]]]]:
    """Read piano rolls stored as JSON: ``{split: [sequence, ...]}``, a sequence being a list of time
    steps and a step the list of sounding MIDI note numbers (``[]`` is a rest).

    Every note must be an ``int`` in ``0..127``; a :class:`DataError` names the split, sequence and
    step of the first one that is not.

    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "roll.json"
    >>> _ = p.write_text('{"train": [[[60, 64], [], [62]]]}')
    >>> read_piano_roll_json(p)["train"][0]
    [[60, 64], [], [62]]
    """
    path = Path(path)
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: "
                        f"{err.msg}") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to be a piano roll") from None
    if not isinstance(data, dict) or not data:
        raise DataError(f"{path}: expected a JSON object mapping split names (e.g. 'train', 'valid', "
                        f"'test') to lists of sequences, got {type(data).__name__} {_show(str(data))}")
    for split, seqs in data.items():
        where = f"{path}: split {split!r}"
        if not isinstance(seqs, list):
            raise DataError(f"{where}: expected a list of sequences, got {type(seqs).__name__}")
        for i, seq in enumerate(seqs):
            if not isinstance(seq, list):
                raise DataError(f"{where}, sequence {i}: expected a list of time steps, got "
                                f"{type(seq).__name__}")
            for t, step in enumerate(seq):
                if not isinstance(step, list):
                    raise DataError(f"{where}, sequence {i}, step {t}: expected a list of MIDI note "
                                    f"numbers, got {step!r}")
                if all(type(n) is int for n in step) and (not step or 0 <= min(step)
                                                          and max(step) <= 127):
                    continue
                bad = next(n for n in step if type(n) is not int or not 0 <= n <= 127)
                raise DataError(f"{where}, sequence {i}, step {t}: note {bad!r} is not a MIDI note "
                                f"number; expected an int in 0..127 (step = {step!r})")
    return data


def read_parallel(path, sep: str = "\t", *, src_col: int = 0,
                  tgt_col: int = 1) -> tuple[list[str], list[str]]:
    """Read sentence pairs, one per line (``English<TAB>French`` in the manythings/Tatoeba files).

    Fields are stripped of surrounding ASCII whitespace; blank lines are skipped; extra columns
    (later manythings releases add an attribution column) are ignored.

    Returns:
        ``(src, tgt)``: parallel lists of str.
    """
    if not isinstance(sep, str) or not sep:
        raise ConfigError(f"sep: expected a non-empty str, got {sep!r}")
    need = _columns_needed(_check_col("src_col", src_col), _check_col("tgt_col", tgt_col))
    path, lines = _numbered_lines(path)
    src: list[str] = []
    tgt: list[str] = []
    for no, raw in enumerate(lines, start=1):
        if not raw.strip(_WS):
            continue
        fields = raw.split(sep)
        if len(fields) < need:
            raise DataError(f"{path}, line {no}: expected at least {need} fields separated by "
                            f"{sep!r}, got {len(fields)}: {_show(raw)}. Fix: write `source{sep}target`")
        s, t = fields[src_col].strip(_WS), fields[tgt_col].strip(_WS)
        if not s or not t:
            raise DataError(f"{path}, line {no}: empty {'source' if not s else 'target'} sentence: "
                            f"{_show(raw)}")
        src.append(s)
        tgt.append(t)
    return src, tgt
