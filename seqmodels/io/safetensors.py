"""A small, hardened reader and writer of the safetensors file format, in NumPy only.

File layout (integers little-endian)::

    bytes [0, 8)           N: the header length, an unsigned 64-bit integer
    bytes [8, 8 + N)       the header: UTF-8 JSON, padded with spaces to a multiple of 8 bytes
    bytes [8 + N, end)     the data section: each tensor's raw little-endian bytes in C order

The header is one JSON object::

    {"W_f": {"dtype": "F32", "shape": [4, 12], "data_offsets": [0, 192]},
     "b_f": {"dtype": "F32", "shape": [4], "data_offsets": [192, 208]},
     "__metadata__": {"any": "string to string"}}

``data_offsets`` are ``[begin, end)`` relative to the start of the data section. The writer orders the
data by decreasing item size (then name) so every tensor is aligned to its item size; the header keeps
the caller's order, and so does the loader.

The loader trusts nothing: the header length is checked against the file size (and capped at
:data:`MAX_HEADER_BYTES`) before it is read; the JSON is parsed as data only; every dtype must be known,
every shape a list of non-negative integers, every ``[begin, end)`` inside the data section and exactly
``prod(shape) * itemsize`` long; the tensors may not overlap and must cover the data section exactly.
Only then is anything allocated, and never more than each tensor's declared (and verified) size. Every
failure raises :class:`~seqmodels.core.errors.CheckpointError` naming the file and the tensor.

Example::

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.safetensors")
    >>> save_safetensors(path, {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"step": "7"})
    >>> arrays, meta = load_safetensors(path)
    >>> arrays["w"].shape, arrays["w"].dtype, meta
    ((2, 3), dtype('float32'), {'step': '7'})

:func:`atomic_write` (temp file in the same directory, flush, ``os.fsync``, ``os.replace``) lives here
too; :mod:`seqmodels.io.checkpoint` builds on it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import BinaryIO

import numpy as np

from seqmodels.core.errors import CheckpointError, ConfigError, DTypeError

__all__ = [
    "DTYPES",
    "MAX_HEADER_BYTES",
    "atomic_write",
    "load_safetensors",
    "save_safetensors",
    "write_safetensors",
]

#: safetensors dtype code -> little-endian NumPy dtype (BF16 and the FP8 codes have no NumPy dtype).
DTYPES: dict[str, np.dtype] = {
    code: np.dtype(spec)
    for code, spec in [
        ("BOOL", "|b1"), ("U8", "|u1"), ("I8", "|i1"), ("U16", "<u2"), ("I16", "<i2"), ("F16", "<f2"),
        ("U32", "<u4"), ("I32", "<i4"), ("F32", "<f4"), ("U64", "<u8"), ("I64", "<i8"), ("F64", "<f8"),
    ]
}
_CODES = {(dt.kind, dt.itemsize): code for code, dt in DTYPES.items()}

#: Largest header the loader accepts (the reference implementation uses the same limit).
MAX_HEADER_BYTES = 100_000_000
_METADATA = "__metadata__"
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


# ----------------------------------------------------------------------------------------- writing
def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:  # lone surrogates
        return False


def _prepare(arrays: Mapping[str, np.ndarray]) -> list[tuple[str, str, np.ndarray]]:
    """Validate the arrays to write; return ``(name, dtype code, little-endian C array)`` triples."""
    if not isinstance(arrays, Mapping):
        raise DTypeError(f"arrays: expected a mapping of str to numpy.ndarray, got {type(arrays).__name__}")
    out = []
    for name, arr in arrays.items():
        if not isinstance(name, str) or not name or not _utf8(name):
            raise DTypeError(f"arrays: tensor names must be non-empty UTF-8 strings, got {name!r}")
        if name == _METADATA:
            raise ConfigError(f"arrays: the name {_METADATA!r} is reserved by the safetensors format")
        if isinstance(arr, np.generic):  # a NumPy scalar is stored as a 0-d tensor
            arr = np.asarray(arr)
        if not isinstance(arr, np.ndarray):
            raise DTypeError(
                f"arrays[{name!r}]: expected a numpy.ndarray, got {type(arr).__name__} "
                "(convert GPU arrays with .get() or numpy.asarray first)"
            )
        code = _CODES.get((arr.dtype.kind, arr.dtype.itemsize))
        if code is None or arr.dtype.fields is not None:
            raise DTypeError(
                f"arrays[{name!r}]: dtype {arr.dtype} cannot be stored in safetensors; "
                f"expected one of {', '.join(str(d) for d in DTYPES.values())}"
            )
        out.append((name, code, np.asarray(arr, dtype=DTYPES[code], order="C")))  # keeps 0-d arrays 0-d
    return out


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and _utf8(k) and _utf8(v) for k, v in metadata.items()
    ):
        raise DTypeError(f"metadata: expected a dict of str to str, got {metadata!r}")
    return dict(metadata)


def write_safetensors(
    f: BinaryIO, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> int:
    """Write ``arrays`` (and string ``metadata``) to the binary stream ``f``; return the bytes written.

    ``f`` only needs a ``write`` method taking any bytes-like object.
    """
    tensors = _prepare(arrays)
    meta = _check_metadata(metadata)
    order = sorted(range(len(tensors)), key=lambda i: (-tensors[i][2].itemsize, tensors[i][0]))
    offsets, pos = {}, 0
    for i in order:
        offsets[i] = (pos, pos + tensors[i][2].nbytes)
        pos += tensors[i][2].nbytes
    header: dict = {_METADATA: meta} if meta else {}
    for i, (name, code, arr) in enumerate(tensors):
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": list(offsets[i])}
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    f.write(len(raw).to_bytes(8, "little"))
    f.write(raw)
    for i in order:
        f.write(tensors[i][2].reshape(-1).view(np.uint8))
    return 8 + len(raw) + pos


def _fsync_dir(directory: str) -> None:
    """fsync a directory so that renames inside it survive a power cut (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Create or replace ``path`` atomically with what ``write(f)`` writes to a binary file ``f``.

    The data goes to a temp file in the same directory, is flushed and ``os.fsync``-ed, then
    ``os.replace``-d onto ``path``: readers (and a crash) see the old file or the new one, never a mix.
    OSErrors propagate; the temp file is removed on any failure.
    """
    path = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def save_safetensors(
    path: str | os.PathLike, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``arrays`` and optional string ``metadata`` to ``path`` as safetensors, atomically.

    Raises :class:`DTypeError` / :class:`ConfigError` for arguments that cannot be stored (before touching
    the disk) and :class:`CheckpointError` when the write fails (any earlier file at ``path`` is unchanged).
    """
    _prepare(arrays)
    _check_metadata(metadata)
    try:
        atomic_write(path, lambda f: write_safetensors(f, arrays, metadata))
    except OSError as e:
        raise CheckpointError(
            f"{os.fspath(path)}: could not write the file ({e}); the disk may be full. "
            "Any previous file at this path is unchanged."
        ) from e


# ----------------------------------------------------------------------------------------- reading
def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"duplicate key {dup!r}")
    return dict(pairs)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _parse_header(raw: bytes, where: str) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{where}: the header is not valid UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}: the header must be a JSON object, got {type(header).__name__}")
    return header


def _validate(header: dict, data_len: int, where: str):
    """Check every entry; return ``({name: (dtype, shape, begin, end)}, metadata)``."""
    metadata = header.pop(_METADATA, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{where}: key {_METADATA!r}: expected an object of str to str, got {metadata!r:.200}")
    entries = {}
    for name, entry in header.items():
        what = f"{where}: tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
            raise CheckpointError(f"{what}: expected an object with keys {sorted(_ENTRY_KEYS)}, got {entry!r:.200}")
        code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(code, str) or code not in DTYPES:
            raise CheckpointError(f"{what}: unknown dtype {code!r:.50}; expected one of {', '.join(DTYPES)}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise CheckpointError(f"{what}: shape must be a list of non-negative integers, got {shape!r:.200}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
            raise CheckpointError(f"{what}: data_offsets must be [begin, end] integers, got {offsets!r:.200}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            raise CheckpointError(
                f"{what}: data_offsets [{begin}, {end}] are outside the data section of {data_len} bytes "
                "(file truncated or corrupt)"
            )
        need = math.prod(shape) * DTYPES[code].itemsize
        if end - begin != need:
            raise CheckpointError(
                f"{what}: data_offsets [{begin}, {end}] span {end - begin} bytes, but shape {shape} of "
                f"{code} needs {need} bytes"
            )
        entries[name] = (DTYPES[code], tuple(shape), begin, end)
    pos, last = 0, None
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda kv: (kv[1][2], kv[1][3])):
        if begin != pos:
            problem = f"overlaps tensor {last!r}" if begin < pos else f"leaves a gap at bytes [{pos}, {begin})"
            raise CheckpointError(f"{where}: tensor {name!r}: data_offsets [{begin}, {end}] {problem}")
        pos, last = end, name
    if pos != data_len:
        raise CheckpointError(
            f"{where}: the tensors cover {pos} bytes of a {data_len}-byte data section "
            "(trailing bytes: corrupt file or not safetensors)"
        )
    return entries, metadata


def _read_open(f: BinaryIO, where: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    size = os.fstat(f.fileno()).st_size
    if size < 8:
        raise CheckpointError(f"{where}: file of {size} bytes is too short to be safetensors (truncated?)")
    n = int.from_bytes(f.read(8), "little")
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(f"{where}: header length {n} exceeds the limit of {MAX_HEADER_BYTES} bytes")
    if n > size - 8:
        raise CheckpointError(
            f"{where}: header length {n} is larger than the {size - 8} bytes that follow it "
            "(file truncated or not safetensors)"
        )
    raw = f.read(n)
    if len(raw) != n:
        raise CheckpointError(f"{where}: file ended inside the header (truncated)")
    entries, metadata = _validate(_parse_header(raw, where), size - 8 - n, where)
    arrays = {}
    for name, (dtype, shape, begin, end) in entries.items():
        buf = bytearray(end - begin)
        f.seek(8 + n + begin)
        if f.readinto(buf) != len(buf):
            raise CheckpointError(f"{where}: tensor {name!r}: file ended inside its data (truncated)")
        arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
        arrays[name] = arr.astype(dtype.newbyteorder("="), copy=False)
    return arrays, metadata


def load_safetensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file; return ``(arrays, metadata)`` (``metadata`` is ``{}`` when absent).

    Arrays come back writable, in native byte order, in the order of the header. Raises
    :class:`CheckpointError` naming the file (and tensor) for anything missing, truncated or malformed.
    """
    where = os.fspath(path)
    try:
        with open(where, "rb") as f:
            return _read_open(f, where)
    except FileNotFoundError:
        raise CheckpointError(f"{where}: no such file") from None
    except OSError as e:
        raise CheckpointError(f"{where}: cannot read the file ({e})") from e
