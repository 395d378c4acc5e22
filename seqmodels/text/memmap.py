"""Corpora larger than memory: token ids encoded once into a memory-mapped file, windows read from it.

    corpus.txt --(64 KiB pieces, cut after a line break)--> <ids> (raw little-endian uint16; int32 above
    65,535 tokens) + <ids>.json sidecar --open_ids--> read-only np.memmap (N,) --> StreamBatcher

The ids are exactly ``LanguageModel.stream_ids(read_text(path))``: ``<EOS>``, then each line's ids each
followed by ``<EOS>`` (``\\r\\n`` is one line break, a UTF-8 BOM is dropped, unknown tokens are ``<UNK>``).
Neither the text nor the ids are ever held whole: memory is a few times ``chunk_bytes`` for any corpus
size, and the character vocabulary is counted piece by piece (ASCII with ``np.bincount``). The sidecar
holds the vocabulary's SHA-256, dtype, length and a fingerprint of the source (size, mtime, SHA-256 of
its first and last 64 KiB): a second :func:`encode_corpus` reuses the file. Writes go to a temporary
file, are fsync-ed and ``os.replace``-d; the old sidecar is removed just before and the new one written
last, so no sidecar ever describes another file. Bad bytes raise :class:`DataError` as ``read_text``
does (missing, empty, binary, UTF-16, invalid UTF-8 with byte offset and line).

>>> import pathlib, tempfile
>>> d = pathlib.Path(tempfile.mkdtemp()); p = d / "corpus.txt"
>>> _ = p.write_text("abc\\nba\\n")
>>> vocab = build_vocab(p, order="sorted")
>>> corpus = encode_corpus(p, vocab, progress=False)
>>> corpus.ids.tolist(), corpus.reused
([2, 3, 4, 5, 2, 4, 3, 2], False)
>>> encode_corpus(p, vocab, progress=False).reused
True
>>> import shutil; shutil.rmtree(d)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..core.errors import ConfigError, DataError, DTypeError, check_positive_int
from .vocab import Vocabulary

__all__ = ["MemmapCorpus", "build_vocab", "encode_corpus", "open_ids", "split_ids", "iter_text_chunks",
           "vocab_sha256"]

FORMAT, FORMAT_VERSION = "seqmodels.memmap", 1
DEFAULT_CHUNK_BYTES = 1 << 16          # 64 KiB of text per step: small temporaries, RSS flat, fastest
_DTYPES = ("<u2", "<i4")
_BOM = b"\xef\xbb\xbf"
_ASCII = bytes(range(128))
_SLICE = 1 << 16                       # elements per NumPy step: fixed-size temporaries, cache-friendly


# ------------------------------------------------------------------------------------ chunked reading
def iter_text_chunks(path, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes | str]:
    """Yield the text of ``path`` in pieces of about ``chunk_bytes``, checked like ``read_text``.

    Pieces are cut after the last line break of each block (or, for a line longer than a block, on a
    character boundary, never between ``\\r`` and ``\\n``); ``\\r\\n`` becomes ``\\n`` and a leading BOM is
    dropped. An all-ASCII piece is yielded as ``bytes`` (no decoding needed), any other as ``str``;
    ``"".join`` of the decoded pieces equals ``read_text(path)``. A missing, unreadable or empty file
    raises :class:`DataError` at once; bad bytes when the iteration reaches them (the first defect in
    file order, where ``read_text`` looks for NUL bytes in the whole file before decoding).
    """
    chunk_bytes = check_positive_int("chunk_bytes", chunk_bytes)
    if chunk_bytes < 16:
        raise ConfigError(f"chunk_bytes: expected at least 16, got {chunk_bytes}")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found (working directory {Path.cwd()}); check the path")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file; name a file inside it")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: cannot be read (permission denied); check its permissions")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes), expected text")
    return _chunks(path, chunk_bytes)


def _chunks(path: Path, chunk_bytes: int) -> Iterator[bytes | str]:
    with open(path, "rb") as f:
        head = f.read(3)
        if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise DataError(f"{path}: starts with a UTF-16 byte-order mark {head[:2].hex(' ')}; expected "
                            "UTF-8. Fix: re-save it as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8`)")
        carry, offset = (b"", 3) if head == _BOM else (head, 0)
        if head == _BOM and path.stat().st_size == 3:
            raise DataError(f"{path}: holds only a UTF-8 byte-order mark, no text")
        while True:
            block = f.read(chunk_bytes)
            cut = block.rfind(b"\n") + 1
            if cut:                                        # the usual case: cut after the last line break
                piece = b"".join((carry, memoryview(block)[:cut])) if carry or cut < len(block) else block
                carry = block[cut:]
            elif block:                                    # a line longer than the block
                piece, carry = _cut_inside(carry + block)
                if not piece:
                    continue
            else:
                piece, carry = carry, b""
                if not piece:
                    return
            nul = piece.find(b"\0")
            if nul >= 0:
                raise DataError(f"{path}: looks binary: NUL byte at byte offset {offset + nul} (line "
                                f"{_line_at(path, offset + nul)}); expected UTF-8 text")
            text = piece if piece.isascii() else _decode(piece, path, offset)
            if b"\r\n" in piece:
                text = text.replace(b"\r\n", b"\n") if isinstance(text, bytes) else text.replace("\r\n", "\n")
            offset += len(piece)
            yield text


def _cut_inside(buf: bytes) -> tuple[bytes, bytes]:
    """Split a buffer without a line break after its last space (str.lower's final-sigma context ends
    there) or else on a character boundary, never between ``\\r`` and ``\\n``."""
    cut = buf.rfind(b" ") + 1
    if cut == 0:
        cut = back = max(len(buf) - 4, 0)
        for _ in range(4):                                 # step back onto the first byte of a character
            if back > 0 and buf[back] & 0xC0 == 0x80:
                back -= 1
        if not (back > 0 and buf[back] & 0xC0 == 0x80):
            cut = back
        # else: 5 continuation bytes in a row, so a stray one lies before ``cut`` and decoding the piece
        # reports the first defect where it is (a cut inside a character would report its start instead)
        if cut > 0 and buf[cut - 1] == 0x0D:               # keep \r\n together
            cut -= 1
    return buf[:cut], buf[cut:]


def _line_at(path: Path, offset: int) -> int:
    """1-based line of byte ``offset`` (counted again only when an error needs it)."""
    lines, done = 1, 0
    with open(path, "rb") as f:
        while done < offset:
            block = f.read(min(1 << 22, offset - done))
            if not block:
                break
            lines += block.count(b"\n")
            done += len(block)
    return lines


def _decode(piece: bytes, path: Path, offset: int) -> str:
    try:
        return piece.decode("utf-8")
    except UnicodeDecodeError as err:
        at = offset + err.start
        bad = piece[err.start:max(err.end, err.start + 1)]
        context = piece[max(err.start - 12, 0):err.start + 12]
        raise DataError(f"{path}: not valid UTF-8 at byte offset {at} (line {_line_at(path, at)}): bytes "
                        f"{bad.hex(' ')} ({err.reason}) in {context!r}; expected UTF-8 text. Fix: convert the "
                        "file, e.g. `iconv -f latin1 -t UTF-8 in > out`") from None


# ------------------------------------------------------------------------------------ vocabulary
def build_vocab(path, level: str = "char", *, lowercase: bool | None = None, min_count: int = 1,
                max_size: int | None = None, order: str = "count", punctuation: str = "tokens",
                chunk_bytes: int = DEFAULT_CHUNK_BYTES, progress=False) -> Vocabulary:
    """``Vocabulary.from_text(read_text(path), level, lines_as_sequences=True, ...)`` without the text.

    Character level counts code points per chunk with ``np.bincount`` (line breaks are not tokens: they
    become ``<EOS>``); word level feeds one tokenized line at a time to :meth:`Vocabulary.build`.
    Ties in ``max_size``/``order="first"`` are broken by first appearance, as in ``Vocabulary.build``.
    """
    Vocabulary.build((), level=level, max_size=max_size, min_count=min_count, order=order,
                     lowercase=lowercase, punctuation=punctuation)         # the same argument checks
    proto = Vocabulary(level=level, lowercase=lowercase, punctuation=punctuation)
    pieces = iter_text_chunks(path, chunk_bytes)           # checks the file first
    bar = _Progress(path, "vocabulary", progress)
    pieces = bar.wrap(pieces)
    if level == "word":
        vocab = Vocabulary.build((proto.tokenize(line) for line in _lines(pieces)), level=level,
                                 max_size=max_size, min_count=min_count, order=order,
                                 lowercase=proto.lowercase, punctuation=punctuation)
        bar.done(f"{len(vocab):,} tokens")
        return vocab
    counts: dict[str, int] = {}                            # character -> count, in first-appearance order
    for piece in pieces:
        piece = piece.lower() if proto.lowercase else piece
        raw = piece if isinstance(piece, bytes) else piece.encode("utf-8")
        found = _histogram(raw)
        new = [c for c in found if c not in counts]
        for c in sorted(new, key=lambda c: raw.find(c.encode("utf-8"))):   # byte order = character order
            counts[c] = 0
        for c, n in found.items():
            counts[c] += n
    bar.done(f"{len(counts):,} distinct characters")
    first = {c: i for i, c in enumerate(counts)}
    kept = [c for c, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n >= min_count][:max_size]
    if order == "first":
        kept.sort(key=first.__getitem__)
    elif order == "sorted":
        kept.sort()
    return Vocabulary(kept, level="char", lowercase=proto.lowercase, punctuation=punctuation)


def _histogram(raw: bytes) -> dict[str, int]:
    """Character counts of UTF-8 ``raw`` but ``"\\n"`` (<EOS>): ASCII by ``np.bincount`` of the bytes (in
    fixed-size slices: fast, and no temporaries that grow with the chunk), the rest with ``Counter`` on
    what remains after deleting every ASCII byte."""
    found = np.zeros(128, np.int64)
    arr = np.frombuffer(raw, np.uint8)
    for i in range(0, arr.size, _SLICE):
        found += np.bincount(arr[i:i + _SLICE], minlength=256)[:128]
    found[10] = 0
    counts = {chr(c): int(found[c]) for c in np.flatnonzero(found).tolist()}
    if not raw.isascii():
        counts.update(Counter(raw.translate(None, _ASCII).decode("utf-8")))
    return counts


def _lines(pieces) -> Iterator[str]:
    """Complete lines (without ``\\n``) from text pieces; the last one even without a final break."""
    partial = ""
    for piece in pieces:
        text = partial + (piece.decode("ascii") if isinstance(piece, bytes) else piece)
        lines = text.split("\n")
        partial = lines.pop()
        yield from lines
    if partial:
        yield partial


def vocab_sha256(vocab: Vocabulary) -> str:
    """SHA-256 of the vocabulary's canonical JSON (tokens, level, case and punctuation settings)."""
    raw = json.dumps(vocab.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------ encoding
@dataclass(frozen=True)
class MemmapCorpus:
    """What :func:`encode_corpus` returns: ``ids`` (a read-only ``np.memmap`` of shape ``(N,)``), the
    id file's ``path``, its sidecar ``info``, whether it was ``reused`` and the encoding ``seconds``."""

    ids: np.memmap
    path: Path
    info: dict
    reused: bool
    seconds: float

    @property
    def mb_per_s(self) -> float:
        """Source megabytes (10^6 bytes) encoded per second (0 when the file was reused)."""
        return self.info["source"]["bytes"] / 1e6 / self.seconds if self.seconds > 0 and not self.reused else 0.0


def _fingerprint(path: Path) -> dict:
    st = path.stat()
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        sha.update(f.read(1 << 16))
        if st.st_size > 1 << 16:
            f.seek(max(st.st_size - (1 << 16), 1 << 16))
            sha.update(f.read(1 << 16))
    return {"path": str(path.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
            "head_tail_sha256": sha.hexdigest()}


def _sidecar(ids_path: Path) -> Path:
    return ids_path.with_name(ids_path.name + ".json")


def encode_corpus(path, vocab: Vocabulary, out=None, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                  progress=True, force: bool = False) -> MemmapCorpus:
    """Encode the text file ``path`` to a token-id file once; later calls reuse it (see module doc).

    Args:
        path: a UTF-8 text file of any size.
        vocab: the :class:`Vocabulary` (character or word level; word level holds one line at a time).
        out: the id file (default ``<path>.<first 12 hex digits of the vocabulary hash>.ids``).
        chunk_bytes: bytes of text per step (bounds memory).
        progress: True (stderr), False, or a stream: a progress line with MB/s and ETA.
        force: encode again even if the sidecar matches.

    Returns:
        :class:`MemmapCorpus`; pass ``corpus.ids`` to ``StreamBatcher`` / ``LanguageModel.batcher``.
    """
    if not isinstance(vocab, Vocabulary):
        raise DTypeError(f"vocab: expected a seqmodels.text.Vocabulary, got {type(vocab).__name__}")
    path = Path(path)
    pieces = iter_text_chunks(path, chunk_bytes)           # checks that the file exists and is not empty
    vhash = vocab_sha256(vocab)
    out = Path(out) if out is not None else path.with_name(f"{path.name}.{vhash[:12]}.ids")
    source = _fingerprint(path)
    if not force:
        reused = _reusable(out, source, vhash)
        if reused is not None:
            _Progress(path, "encode", progress).say(f"reusing {out} ({reused.size:,} tokens: same corpus and "
                                                    "vocabulary)")
            return MemmapCorpus(reused, out, json.loads(_sidecar(out).read_text()), True, 0.0)
    dtype = np.dtype(_DTYPES[0] if len(vocab) <= 65535 else _DTYPES[1])
    t0 = time.perf_counter()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"{out.parent}: cannot create the directory for the token-id file ({err})") from None
    need = (source["bytes"] + 2) * dtype.itemsize
    free = shutil.disk_usage(out.parent).free
    if vocab.level == "char" and free < need:
        raise DataError(f"{out.parent}: {free / 1e6:,.0f} MB free, but encoding {path} may need up to "
                        f"{need / 1e6:,.0f} MB; free some space or pass out= on another disk")
    bar, tmp = _Progress(path, "encode", progress), None
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            n = _write_ids(f, bar.wrap(pieces), vocab, dtype)
            f.flush()
            os.fsync(f.fileno())
        _sidecar(out).unlink(missing_ok=True)              # never leave a sidecar describing another file
        os.replace(tmp, out)
    except OSError as err:
        raise DataError(f"{out}: could not write the token-id file ({err}); is the disk full or the directory "
                        "read-only? Free some space or pass out= elsewhere") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    info = {"format": FORMAT, "format_version": FORMAT_VERSION, "dtype": dtype.str, "length": n,
            "vocabulary_sha256": vhash, "vocabulary_size": len(vocab), "level": vocab.level,
            "eos_id": vocab.eos_id, "unk_id": vocab.unk_id, "source": source}
    _write_json(_sidecar(out), info)
    bar.done(f"{n:,} tokens ({dtype.name}) -> {out}")
    return MemmapCorpus(open_ids(out), out, info, False, seconds)


def _write_ids(f, pieces, vocab: Vocabulary, dtype: np.dtype) -> int:
    """Write ``stream_ids`` of the text in ``pieces`` to ``f`` as ``dtype``; return the number of ids."""
    eos, unk = vocab.eos_id, vocab.unk_id
    f.write(np.array([eos], dtype))
    n, last = 1, b"\n"
    if vocab.level == "word":                              # one line at a time, written 4096 lines at once
        lines = _lines(pieces)
        while batch := [vocab.encode(line, add_eos=True, unk="map") for line in itertools.islice(lines, 4096)]:
            ids = np.concatenate(batch).astype(dtype)
            f.write(ids)
            n += ids.size
        return n
    regular = np.array([ord(t) for t in vocab.tokens[3:]], dtype=np.int64)
    table = np.full(max(int(regular.max(initial=0)) + 2, 257), unk, dtype=dtype)   # code point -> id
    table[regular] = np.arange(3, 3 + regular.size)
    table[10] = eos                                        # a line break is <EOS>
    top = table.size - 1                                   # the last entry is <UNK>: code points beyond map there
    ascii_bytes = bytes(table[:256].tolist()) if table[:256].max() < 256 else None   # bytes.translate table
    for piece in pieces:
        piece = piece.lower() if vocab.lowercase else piece   # bytes.lower() = str.lower() on ASCII
        for i in range(0, len(piece), _SLICE):
            part = piece[i:i + _SLICE]
            if isinstance(part, bytes) and ascii_bytes is not None:   # ~10x faster than fancy indexing
                ids = np.frombuffer(part.translate(ascii_bytes), np.uint8).astype(dtype)
            elif isinstance(part, bytes):
                ids = table[np.frombuffer(part, np.uint8)]
            else:
                ids = table[np.minimum(np.frombuffer(part.encode("utf-32-le"), "<u4"), top)]
            f.write(ids)
            n += ids.size
        last = piece[-1:]
    if last not in (b"\n", "\n"):
        f.write(np.array([eos], dtype))
        n += 1
    return n


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _reusable(out: Path, source: dict, vhash: str) -> np.memmap | None:
    try:
        info = json.loads(_sidecar(out).read_text(encoding="utf-8"))
        if info.get("vocabulary_sha256") != vhash or info.get("source") != source:
            return None
        return open_ids(out)
    except (OSError, ValueError, DataError):
        return None


def open_ids(path) -> np.memmap:
    """Open a token-id file written by :func:`encode_corpus` as a read-only ``np.memmap`` ``(N,)``.

    The sidecar must exist and agree with the file (format, dtype, ``length * itemsize`` bytes);
    otherwise :class:`DataError` names the file, the value found and what was expected.
    """
    path = Path(path)
    side = _sidecar(path)
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{side}: sidecar missing; encode the corpus again with encode_corpus") from None
    except (OSError, ValueError) as err:
        raise DataError(f"{side}: unreadable sidecar ({err}); encode the corpus again") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT or info.get("format_version") != FORMAT_VERSION:
        got = (f"{info.get('format')!r} format_version {info.get('format_version')!r}" if isinstance(info, dict)
               else info)
        raise DataError(f"{side}: expected format {FORMAT!r} format_version {FORMAT_VERSION}, got {got:.100}; "
                        "encode the corpus again with this version of seqmodels")
    dtype, n = info.get("dtype"), info.get("length")
    if dtype not in _DTYPES:
        raise DataError(f"{side}: key 'dtype': expected one of {_DTYPES}, got {dtype!r}")
    if type(n) is not int or n < 1:
        raise DataError(f"{side}: key 'length': expected an integer >= 1, got {n!r}")
    size = path.stat().st_size if path.is_file() else None
    if size != n * np.dtype(dtype).itemsize:
        raise DataError(f"{path}: {size} bytes, but the sidecar says {n} ids of {dtype} = "
                        f"{n * np.dtype(dtype).itemsize} bytes (truncated or replaced); encode the corpus again")
    return np.memmap(path, dtype=dtype, mode="r", shape=(n,))


def split_ids(ids: np.ndarray, valid_fraction: float, eos_id: int = 2,
              block: int = 1 << 20) -> tuple[np.ndarray, np.ndarray | None]:
    """Views ``(train, valid)`` of an id stream, cut at an ``<EOS>`` near ``(1 - valid_fraction) * N``.

    ``train`` ends with that ``<EOS>`` and ``valid`` starts with it, as ``stream_ids`` of the two halves
    of a text cut after a line break would. Like the CLI's text split, the cut moves back to the last
    line break when one lies in the second half; otherwise it stays where it is. Reads at most the ids
    between the two, ``block`` at a time. ``valid`` is None when ``valid_fraction`` is 0.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise ConfigError(f"valid_fraction: expected a value in [0, 1), got {valid_fraction!r}")
    n = int(ids.shape[0])
    if valid_fraction == 0 or n < 2:
        return ids, None
    cut = min(max(int(n * (1 - valid_fraction)), 1), n - 1)
    end = cut
    while end > n // 2:
        start = max(end - block, n // 2)
        hits = np.flatnonzero(np.asarray(ids[start:end]) == eos_id)
        if hits.size:
            cut = start + int(hits[-1])
            break
        end = start
    return ids[:cut + 1], ids[cut:]


# ------------------------------------------------------------------------------------ progress
class _Progress:
    """A line on stderr (or ``stream``) every 2 seconds: MB done, MB/s, ETA; and one when done."""

    def __init__(self, path, what: str, stream):
        self.stream = sys.stderr if stream is True else (stream or None)
        self.name, self.what, self.total = Path(path).name, what, Path(path).stat().st_size
        self.done_bytes, self.t0 = 0, time.perf_counter()
        self.last = self.t0

    def say(self, message: str) -> None:
        if self.stream is not None:
            print(message, file=self.stream, flush=True)

    def wrap(self, pieces):
        for piece in pieces:
            yield piece
            if self.stream is not None:
                self.done_bytes += len(piece) if isinstance(piece, bytes) else len(piece.encode("utf-8"))
                now = time.perf_counter()
                if now - self.last >= 2.0:
                    self.last, rate = now, self.done_bytes / (now - self.t0)
                    self.say(f"{self.what} {self.name}: {self.done_bytes / 1e6:,.1f}/{self.total / 1e6:,.1f} MB "
                             f"({100 * self.done_bytes / self.total:.0f}%), {rate / 1e6:,.1f} MB/s, "
                             f"ETA {(self.total - self.done_bytes) / max(rate, 1e-9):,.0f} s")

    def done(self, result: str) -> None:
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        self.say(f"{self.what} {self.name}: {self.total / 1e6:,.1f} MB in {elapsed:.1f} s "
                 f"({self.total / 1e6 / elapsed:,.1f} MB/s); {result}")
