"""Vocabulary: token <-> id mapping with ``<PAD>`` = 0, ``<UNK>`` = 1, ``<EOS>`` = 2 always first.

A vocabulary remembers how its text is tokenized (``level``, ``lowercase``, ``punctuation``), so
``vocab.encode(text)`` and ``vocab.tokenize(text)`` reproduce what :meth:`Vocabulary.from_text` saw.
Character-level encoding of a ``str`` is vectorised (code points through a lookup table), so encoding a
whole corpus runs at well over 50 MB/s; token lists go through a dict.

>>> v = Vocabulary.from_text("hello world")
>>> len(v), v.tokens[:5]
(11, ['<PAD>', '<UNK>', '<EOS>', 'l', 'o'])
>>> ids = v.encode("hello", add_eos=True)
>>> ids.tolist(), v.decode(ids)
([5, 6, 3, 3, 4, 2], 'hello')
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..core.errors import ConfigError, DataError, DTypeError, ShapeError, check_choice
from .tokenize import PUNCTUATION_MODES, _check_text, char_tokenize, word_tokenize

__all__ = ["Vocabulary", "SPECIAL_TOKENS", "PAD", "UNK", "EOS"]

PAD, UNK, EOS = "<PAD>", "<UNK>", "<EOS>"
#: Special tokens, in id order (ids 0, 1, 2).
SPECIAL_TOKENS = (PAD, UNK, EOS)
LEVELS = ("char", "word")
ORDERS = ("count", "first", "sorted")
FORMAT, FORMAT_VERSION = "seqmodels.Vocabulary", 1
_CHUNK = 1 << 22  # characters encoded per vectorised step (bounds temporary memory)


class Vocabulary:
    """Token <-> id mapping (see the module docstring).

    Args:
        tokens: the regular tokens in id order (ids 3, 4, ...); the specials are added in front.
        level: ``"char"`` (tokens are single characters, decode joins with ``""``) or ``"word"``
            (decode joins with ``" "``).
        lowercase: lower-case text before tokenizing; ``None`` means False for char, True for word.
        punctuation: word tokenizer mode, see :func:`~seqmodels.text.tokenize.word_tokenize`.
    """

    def __init__(self, tokens: Iterable[str] = (), *, level: str = "char",
                 lowercase: bool | None = None, punctuation: str = "tokens"):
        check_choice("level", level, LEVELS)
        check_choice("punctuation", punctuation, PUNCTUATION_MODES)
        self.level = level
        self.lowercase = bool(level == "word" if lowercase is None else lowercase)
        self.punctuation = punctuation
        self._tokens = list(SPECIAL_TOKENS) + _check_tokens(list(tokens), level, offset=3)
        self._index = {tok: i for i, tok in enumerate(self._tokens)}
        self._table = self._codepoints = None  # char-level lookup tables, built on first use

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]], *, level: str = "char",
              max_size: int | None = None, min_count: int = 1, order: str = "count",
              lowercase: bool | None = None, punctuation: str = "tokens") -> "Vocabulary":
        """Count tokens over already-tokenized ``sequences`` and keep the frequent ones.

        ``max_size`` keeps the top-K regular tokens by count (specials not counted), ties broken by
        first appearance; ``min_count`` drops rarer tokens. ``order`` sets the id order of the kept
        tokens: ``"count"`` (most frequent first), ``"first"`` (first appearance) or ``"sorted"``
        (code point order, like nanoGPT's ``sorted(set(text))``). Special-token strings met in the
        sequences are not counted. ``lowercase``/``punctuation`` are stored for :meth:`tokenize`.

        >>> Vocabulary.build([["b", "a"], ["a"]], max_size=1).tokens
        ['<PAD>', '<UNK>', '<EOS>', 'a']
        """
        if isinstance(sequences, (str, bytes)):
            raise DTypeError("sequences: expected an iterable of token sequences, got a single "
                             f"{type(sequences).__name__}; use Vocabulary.from_text(text) instead")
        check_choice("level", level, LEVELS)
        check_choice("order", order, ORDERS)
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                     or max_size < 1):
            raise ConfigError(f"max_size: expected None or an integer >= 1 (regular tokens, specials "
                              f"not counted), got {max_size!r}; pass None for no limit")
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ConfigError(f"min_count: expected an integer >= 1, got {min_count!r}")
        counts: Counter = Counter()
        for seq in sequences:
            counts.update(seq)
        for special in SPECIAL_TOKENS:
            counts.pop(special, None)
        first = {tok: i for i, tok in enumerate(counts)}  # Counter keeps first-appearance order
        kept = [t for t, c in sorted(counts.items(), key=lambda kv: -kv[1]) if c >= min_count]
        kept = kept[:max_size]
        if order == "first":
            kept.sort(key=first.__getitem__)
        elif order == "sorted":
            kept.sort()
        return cls(kept, level=level, lowercase=lowercase, punctuation=punctuation)

    @classmethod
    def from_text(cls, text: str, level: str = "char", lines_as_sequences: bool = False,
                  max_size: int | None = None, min_count: int = 1, lowercase: bool | None = None,
                  punctuation: str = "tokens", order: str = "count") -> "Vocabulary":
        """Tokenize ``text`` with the given settings and :meth:`build` from it.

        With ``lines_as_sequences`` each line is its own sequence and ``"\\n"`` is not a token
        (use ``<EOS>`` to end lines, as for the dinosaur names).

        >>> Vocabulary.from_text("Ab\\nba", lowercase=True, lines_as_sequences=True).tokens[3:]
        ['a', 'b']
        """
        proto = cls(level=level, lowercase=lowercase, punctuation=punctuation)
        parts = _check_text(text).split("\n") if lines_as_sequences else [text]
        return cls.build((proto.tokenize(p) for p in parts), level=level, max_size=max_size,
                         min_count=min_count, order=order, lowercase=proto.lowercase,
                         punctuation=punctuation)

    # ----------------------------------------------------------------------------- lookups
    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token) -> bool:
        return token in self._index

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.to_dict() == other.to_dict()

    __hash__ = None  # mutable-free but compared by value; not meant as a dict key

    def __repr__(self) -> str:
        return (f"Vocabulary(size={len(self)}, level={self.level!r}, lowercase={self.lowercase}, "
                f"punctuation={self.punctuation!r})")

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order, specials first (a copy)."""
        return list(self._tokens)

    pad_id = property(lambda self: 0, doc="Id of ``<PAD>`` (0).")
    unk_id = property(lambda self: 1, doc="Id of ``<UNK>`` (1).")
    eos_id = property(lambda self: 2, doc="Id of ``<EOS>`` (2).")

    def token_to_id(self, token: str) -> int:
        """Id of ``token``; :class:`DataError` if it is not in the vocabulary."""
        try:
            return self._index[token]
        except (KeyError, TypeError):
            raise DataError(f"token {token!r} is not in the vocabulary ({len(self)} tokens); "
                            "check `token in vocab` first or encode with unk='map'") from None

    def id_to_token(self, i: int) -> str:
        """Token with id ``i``; :class:`DataError` if ``i`` is outside ``[0, len(vocab))``."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(self):
            raise DataError(f"id {i!r} is out of range: expected an integer in [0, {len(self)})")
        return self._tokens[int(i)]

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` exactly as this vocabulary's corpus was split."""
        if self.level == "char":
            return char_tokenize(_check_text(text).lower() if self.lowercase else text)
        return word_tokenize(text, lowercase=self.lowercase, punctuation=self.punctuation)

    # ----------------------------------------------------------------------------- encode / decode
    def encode(self, text_or_tokens: str | Sequence[str], add_eos: bool = False,
               unk: str | None = None) -> np.ndarray:
        """Map a ``str`` (tokenized with this vocabulary's settings) or a token list to ids.

        Args:
            text_or_tokens: text, or tokens looked up as they are (so ``"<EOS>"`` maps to 2).
            add_eos: append ``<EOS>``.
            unk: ``"map"`` unknown tokens to ``<UNK>`` or raise a :class:`DataError` naming them and
                their positions (``"error"``). ``None``: ``"error"`` at char level, ``"map"`` at word.

        Returns:
            ``(N,)`` int32 ids (``N + 1`` with ``add_eos``).
        """
        unk = ("error" if self.level == "char" else "map") if unk is None else unk
        check_choice("unk", unk, ("map", "error"))
        if isinstance(text_or_tokens, str) and self.level == "char":
            text = text_or_tokens.lower() if self.lowercase else text_or_tokens
            ids = self._encode_chars(text)
            items = text
        else:
            items = (self.tokenize(text_or_tokens) if isinstance(text_or_tokens, str)
                     else _as_token_list(text_or_tokens))
            get = self._index.get
            try:
                ids = np.fromiter((get(t, -1) for t in items), dtype=np.int32, count=len(items))
            except TypeError:  # an unhashable item
                ids = np.array([get(t, -1) if isinstance(t, str) else -1 for t in items],
                               dtype=np.int32)
        bad = np.flatnonzero(ids < 0)
        if bad.size:
            wrong = next((i for i in bad.tolist() if not isinstance(items[i], str)), None)
            if wrong is not None:
                raise DTypeError(f"tokens[{wrong}]: expected a str token, got {items[wrong]!r} "
                                 f"({type(items[wrong]).__name__}); pass text or a list of str")
            if unk == "error":
                raise DataError(self._unknown_message(items, bad))
            ids[bad] = self.unk_id
        if add_eos:
            ids = np.append(ids, np.int32(self.eos_id))
        return ids

    def encode_lines(self, lines: Iterable[str], add_eos: bool = True,
                     unk: str | None = None) -> list[np.ndarray]:
        """Encode each line separately; by default each ends with ``<EOS>`` (one sequence per line)."""
        return [self.encode(line, add_eos=add_eos, unk=unk) for line in lines]

    def decode(self, ids, skip_specials: bool = True, stop_at_eos: bool = True) -> str:
        """Turn ids back into text: joined with ``""`` (char level) or ``" "`` (word level).

        Args:
            ids: 1-D integers in ``[0, len(vocab))``.
            skip_specials: drop ``<PAD>``, ``<UNK>`` and ``<EOS>``; otherwise show their names.
            stop_at_eos: stop at the first ``<EOS>`` (not shown).
        """
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ShapeError(f"ids: expected a 1-D sequence, got shape {arr.shape}; decode rows "
                             "one at a time")
        if arr.size == 0:
            return ""
        if not np.issubdtype(arr.dtype, np.integer):
            raise DTypeError(f"ids: expected integers, got dtype {arr.dtype}")
        if (arr.min() < 0 or arr.max() >= len(self)):
            out = np.flatnonzero((arr < 0) | (arr >= len(self)))[0]
            raise DataError(f"ids[{out}] = {arr[out]} is out of range: expected ids in "
                            f"[0, {len(self)}) for this vocabulary")
        if stop_at_eos:
            first_eos = int(np.argmax(arr == self.eos_id))
            arr = arr[:first_eos] if arr[first_eos] == self.eos_id else arr
        has_specials = bool(arr.size) and arr.min() < len(SPECIAL_TOKENS)
        if skip_specials and has_specials:
            arr, has_specials = arr[arr >= len(SPECIAL_TOKENS)], False
        if self.level == "char" and not has_specials:
            return self._char_tables()[1][arr].tobytes().decode("utf-32-le", "surrogatepass")
        sep = "" if self.level == "char" else " "
        return sep.join([self._tokens[i] for i in arr.tolist()])

    # ----------------------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        """JSON-able description (format tag, version, settings, all tokens in id order)."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "level": self.level,
                "lowercase": self.lowercase, "punctuation": self.punctuation,
                "tokens": list(self._tokens)}

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "vocabulary dict") -> "Vocabulary":
        """Rebuild from :meth:`to_dict` output, validating it (:class:`DataError` names ``source``)."""
        if not isinstance(d, dict):
            raise DataError(f"{source}: expected a JSON object, got {type(d).__name__}")
        if d.get("format") != FORMAT or d.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{source}: expected format {FORMAT!r} version {FORMAT_VERSION}, got "
                            f"{d.get('format')!r} version {d.get('format_version')!r}; write it "
                            "with Vocabulary.save")
        for key, ok in (("level", lambda v: v in LEVELS), ("lowercase", lambda v: isinstance(v, bool)),
                        ("punctuation", lambda v: v in PUNCTUATION_MODES),
                        ("tokens", lambda v: isinstance(v, list))):
            if key not in d or not ok(d[key]):
                raise DataError(f"{source}: key {key!r} is missing or invalid, got {d.get(key)!r}")
        tokens = d["tokens"]
        if tokens[:3] != list(SPECIAL_TOKENS):
            raise DataError(f"{source}: the first tokens must be the specials {list(SPECIAL_TOKENS)}"
                            f" (ids 0, 1, 2), got {tokens[:3]!r}")
        try:
            return cls(tokens[3:], level=d["level"], lowercase=d["lowercase"],
                       punctuation=d["punctuation"])
        except (DataError, DTypeError) as err:
            raise DataError(f"{source}: {err}") from None

    def save(self, path) -> Path:
        """Write :meth:`to_dict` as UTF-8 JSON atomically (temp file + ``os.replace``)."""
        path = Path(path)
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path) -> "Vocabulary":
        """Read a file written by :meth:`save`; :class:`DataError` names the path on any problem."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: vocabulary file not found (or not a file); write one with "
                            "Vocabulary.save(path)")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 at byte offset {err.start}") from None
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: "
                            f"{err.msg}") from None
        except RecursionError:
            raise DataError(f"{path}: JSON nested too deeply to be a vocabulary") from None
        return cls.from_dict(d, source=str(path))

    # ----------------------------------------------------------------------------- internals
    def _char_tables(self):
        """(lookup code point -> id, with a trailing -1 sentinel; id -> code point, specials 0)."""
        if self._table is None:
            regular = self._tokens[3:]
            cps = np.array([ord(t) for t in regular], dtype=np.int64)
            size = max(int(cps.max()) + 2 if cps.size else 1, 129)
            table = np.full(size, -1, dtype=np.int32)
            table[cps] = np.arange(3, 3 + cps.size, dtype=np.int32)
            codepoints = np.zeros(len(self._tokens), dtype="<u4")
            codepoints[3:] = cps
            self._table, self._codepoints = table, codepoints
        return self._table, self._codepoints

    def _encode_chars(self, text: str) -> np.ndarray:
        table, _ = self._char_tables()
        if text.isascii():  # O(1) in CPython: one byte per character
            return table[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
        out = np.empty(len(text), dtype=np.int32)
        last = len(table) - 1  # the -1 sentinel: every code point beyond the table is unknown
        for start in range(0, len(text), _CHUNK):
            cps = np.frombuffer(text[start:start + _CHUNK].encode("utf-32-le", "surrogatepass"),
                                dtype="<u4")
            np.take(table, np.minimum(cps, last), out=out[start:start + cps.size], mode="clip")
        return out

    def _unknown_message(self, items, bad: np.ndarray) -> str:
        first: dict = {}
        for pos in bad.tolist():
            first.setdefault(items[pos], pos)
            if len(first) == 5:
                break
        what = "characters" if self.level == "char" else "tokens"
        shown = ", ".join(f"{tok!r}{_codepoint(tok)} at position {pos}" for tok, pos in first.items())
        more = f" ({bad.size} unknown positions in total)" if bad.size > len(first) else ""
        return (f"unknown {what}: {shown}{more}; expected {what} of this {self.level}-level "
                f"vocabulary ({len(self)} tokens). Fix: encode with unk='map' to map them to "
                f"{UNK}, or rebuild the vocabulary from text that contains them")


def _as_token_list(tokens) -> list:
    message = (f"text_or_tokens: expected a str or a sequence of str tokens, got "
               f"{type(tokens).__name__}; ids are turned back into text with vocab.decode(ids)")
    if isinstance(tokens, (bytes, bytearray)) or (isinstance(tokens, np.ndarray)
                                                  and tokens.dtype.kind != "U"):
        raise DTypeError(message)
    try:
        return list(tokens)
    except TypeError:
        raise DTypeError(message) from None


def _codepoint(tok) -> str:
    return f" (U+{ord(tok):04X})" if isinstance(tok, str) and len(tok) == 1 else ""


def _check_tokens(tokens: list, level: str, offset: int) -> list[str]:
    """Validate regular tokens: str, non-empty, single characters at char level, no duplicates."""
    seen: dict = {}
    for i, tok in enumerate(tokens, start=offset):
        if not isinstance(tok, str):
            raise DTypeError(f"token at id {i}: expected a str, got {tok!r} ({type(tok).__name__})")
        if tok in SPECIAL_TOKENS:
            raise DataError(f"token at id {i}: {tok!r} is a special token, reserved for id "
                            f"{SPECIAL_TOKENS.index(tok)}; remove it from the regular tokens")
        if level == "char" and len(tok) != 1:
            raise DataError(f"token at id {i}: char-level tokens must be single characters, got "
                            f"{tok!r}; use level='word' for longer tokens")
        if not tok:
            raise DataError(f"token at id {i}: empty string is not a valid token")
        if tok in seen:
            raise DataError(f"duplicate token {tok!r} at ids {seen[tok]} and {i}; "
                            "each token may appear once")
        seen[tok] = i
    return tokens
