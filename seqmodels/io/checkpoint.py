"""Checkpoints: a directory of safetensors files plus a JSON manifest, written atomically.

Layout of a checkpoint directory ``run/ckpt``::

    run/ckpt/
        checkpoint.json      {"format_version": 1, "library_version": "0.1.0", "kind": "language_model",
                              "config": {...}, "files": {"model": {"file": "model.safetensors",
                              "bytes": 1234, "sha256": "..."}, "optim": {...}}, ...meta (vocabulary,
                              step, optimiser and RNG state, history)}
        model.safetensors    the parameters (dotted keys, e.g. "layers.0.forward.W_f")
        optim.safetensors    one file per extra group, e.g. extra_arrays={"optim": {...}}

While saving, the parent directory briefly holds ``.ckpt.tmp-XXXX`` (the new checkpoint being written)
and ``.ckpt.old`` (the previous one during the swap). Every file is written to a temp file, flushed,
``os.fsync``-ed and ``os.replace``-d; the finished temp directory is then swapped in (``ckpt`` ->
``.ckpt.old``, ``.ckpt.tmp-XXXX`` -> ``ckpt``, delete ``.ckpt.old``). A crash at any moment therefore
leaves the previous complete checkpoint or the new complete one; :func:`load_checkpoint` falls back to
``.ckpt.old`` when ``ckpt`` is missing. Loading verifies each file's size and SHA-256.

The single-file variant :func:`save_npz` / :func:`load_npz` stores the arrays in a ``.npz`` (read with
``allow_pickle=False``) and the JSON meta as a uint8 array named ``"__meta__"``.

Example::

    >>> import numpy as np, tempfile, os
    >>> d = os.path.join(tempfile.mkdtemp(), "ckpt")
    >>> _ = save_checkpoint(d, arrays={"W": np.zeros((2, 3), np.float32)}, meta={"step": 5},
    ...                     kind="language_model", config={"hidden_size": 2})
    >>> ck = load_checkpoint(d, expected_kind="language_model")
    >>> ck.meta["step"], ck.config, ck.arrays["W"].shape
    (5, {'hidden_size': 2}, (2, 3))
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqmodels._version import __version__
from seqmodels.core.errors import CheckpointError, ConfigError, DTypeError
from seqmodels.io.safetensors import _fsync_dir, _prepare, atomic_write, load_safetensors, write_safetensors

__all__ = ["FORMAT_VERSION", "Checkpoint", "check_arrays", "load_checkpoint", "load_npz", "save_checkpoint", "save_npz"]

#: The newest checkpoint format this version reads and the one it writes.
FORMAT_VERSION = 1
MANIFEST = "checkpoint.json"
MODEL_GROUP = "model"
_RESERVED = ("format_version", "library_version", "kind", "config", "files")
_GROUP = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_MAX_JSON_BYTES = 100_000_000
_NPZ_META = "__meta__"


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`load_checkpoint` returns. ``path`` is the directory actually read (maybe the backup)."""

    arrays: dict[str, np.ndarray]
    extra: dict[str, dict[str, np.ndarray]]
    meta: dict[str, Any]
    kind: str
    config: dict[str, Any]
    format_version: int
    library_version: str
    path: str


class _Hashing:
    """A write-only stream that hashes and counts what it forwards to ``f``."""

    def __init__(self, f):
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, data) -> None:
        self.f.write(data)
        self.sha.update(data)
        self.size += memoryview(data).nbytes


def _dumps(doc: Mapping[str, Any], what: str) -> bytes:
    """Encode ``doc`` as UTF-8 JSON, or raise :class:`ConfigError` naming the first key that cannot be."""
    def enc(value: Any) -> bytes:
        return json.dumps(value, indent=1, ensure_ascii=False).encode("utf-8")

    try:
        return enc(doc)
    except (TypeError, ValueError) as e:
        bad = [k for k, v in doc.items() if not _encodes(enc, v)]
        raise ConfigError(
            f"{what}: key {bad[0] if bad else '?'!r} is not JSON-serialisable ({e}); "
            "convert NumPy scalars/arrays to int, float or lists first"
        ) from None


def _encodes(enc, value: Any) -> bool:
    try:
        enc(value)
        return True
    except (TypeError, ValueError):
        return False


def _siblings(target: str) -> tuple[str, str, str]:
    parent, name = os.path.split(target)
    return parent, os.path.join(parent, f".{name}.old"), f".{name}.tmp-"


def _check_replaceable(target: str) -> None:
    """Refuse to replace a directory that holds anything a checkpoint would not."""
    if not os.path.exists(target):
        return
    if not os.path.isdir(target):
        raise CheckpointError(f"{target}: exists and is not a directory; refusing to replace it with a checkpoint")
    names = os.listdir(target)
    strangers = [n for n in names if n != MANIFEST and not re.fullmatch(r"\w+\.safetensors|\..*\.tmp", n)]
    if strangers or (names and MANIFEST not in names):
        raise CheckpointError(
            f"{target}: exists and is not a seqmodels checkpoint (found {sorted(names)[:5]}); "
            "refusing to replace it. Choose a new directory or empty this one."
        )


def save_checkpoint(
    directory: str | os.PathLike,
    *,
    arrays: Mapping[str, np.ndarray],
    meta: Mapping[str, Any],
    kind: str,
    config: Mapping[str, Any],
    extra_arrays: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> str:
    """Write a checkpoint directory atomically (see the module docstring); return its absolute path.

    ``meta`` holds JSON values (vocabulary, step, optimiser/RNG state, history) merged into
    ``checkpoint.json``; tuples come back as lists. Bad arguments raise :class:`ConfigError` /
    :class:`DTypeError` before the disk is touched; a failed write raises :class:`CheckpointError` and
    leaves the previous checkpoint intact.
    """
    target = os.path.abspath(os.fspath(directory))
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f"kind: expected a non-empty string such as 'language_model', got {kind!r}")
    for what, m in (("config", config), ("meta", meta)):
        if not isinstance(m, Mapping) or not all(isinstance(k, str) for k in m):
            raise DTypeError(f"{what}: expected a dict with string keys, got {type(m).__name__}")
    clash = sorted(set(meta) & set(_RESERVED))
    if clash:
        raise ConfigError(f"meta: keys {clash} are reserved for checkpoint.json; rename them")
    extra_arrays = {} if extra_arrays is None else extra_arrays
    if not isinstance(extra_arrays, Mapping):
        raise DTypeError(f"extra_arrays: expected a dict of group name to arrays, got {type(extra_arrays).__name__}")
    for group in extra_arrays:
        if not isinstance(group, str) or not _GROUP.match(group) or group == MODEL_GROUP:
            raise ConfigError(
                f"extra_arrays: group name {group!r} must be an identifier (letters, digits, _) other than 'model'"
            )
    groups = {MODEL_GROUP: arrays, **extra_arrays}
    for group_arrays in groups.values():
        _prepare(group_arrays)
    doc = {"format_version": FORMAT_VERSION, "library_version": __version__, "kind": kind,
           "config": dict(config), **meta}
    _dumps(doc, f"{target}: checkpoint.json")  # fail on bad meta before writing anything
    parent, backup, tmp_prefix = _siblings(target)
    if parent == target:
        raise ConfigError(f"directory: {target!r} cannot hold a checkpoint; give a sub-directory")
    _check_replaceable(target)
    try:
        os.makedirs(parent, exist_ok=True)
        for stale in os.listdir(parent):  # left by an earlier crash
            if stale.startswith(tmp_prefix):
                shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
        tmp = tempfile.mkdtemp(prefix=tmp_prefix, dir=parent)
    except OSError as e:
        raise _write_error(target, e, backup) from e
    try:
        files = {}
        for group, group_arrays in groups.items():
            name, box = f"{group}.safetensors", {}

            def write(f, group_arrays=group_arrays, box=box):
                box["h"] = _Hashing(f)
                write_safetensors(box["h"], group_arrays, {"seqmodels.kind": kind, "seqmodels.group": group})

            atomic_write(os.path.join(tmp, name), write)
            files[group] = {"file": name, "bytes": box["h"].size, "sha256": box["h"].sha.hexdigest()}
        doc["files"] = files
        data = _dumps(doc, f"{target}: checkpoint.json")
        atomic_write(os.path.join(tmp, MANIFEST), lambda f: f.write(data))
        _swap(tmp, target, backup)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _write_error(target, e, backup) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _swap(tmp: str, target: str, backup: str) -> None:
    parent = os.path.dirname(target)
    had_old = os.path.isdir(target)
    if had_old:  # target is complete, so a leftover backup is stale
        shutil.rmtree(backup, ignore_errors=True)
        os.replace(target, backup)
    try:
        os.replace(tmp, target)
    except OSError:
        if had_old:
            try:
                os.replace(backup, target)
            except OSError:
                pass  # load_checkpoint falls back to the backup
        raise
    try:
        _fsync_dir(parent)
    except OSError:
        pass  # the rename is done; durability across power loss is best effort here
    shutil.rmtree(backup, ignore_errors=True)


def _write_error(target: str, e: OSError, backup: str) -> CheckpointError:
    if os.path.isdir(target):
        state = f"The previous checkpoint at {target} is intact."
    elif os.path.isdir(backup):
        state = f"The previous checkpoint is intact at {backup}; load_checkpoint({target!r}) will find it."
    else:
        state = "No checkpoint was written."
    return CheckpointError(f"{target}: could not write the checkpoint ({e}); the disk may be full. {state}")


def _read_json(path: str, what: str) -> Any:
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; not a complete seqmodels checkpoint") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e})") from e
    return _parse_json(raw, path, what)


def _parse_json(raw: bytes, where: str, what: str) -> Any:
    if len(raw) > _MAX_JSON_BYTES:
        raise CheckpointError(f"{where}: {what} is larger than {_MAX_JSON_BYTES} bytes")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{where}: {what} is not valid UTF-8 JSON ({e})") from None


def _check_version(doc: dict, where: str) -> int:
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{where}: key 'format_version': expected a positive integer, got {version!r:.100}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where}: format_version {version} was written by seqmodels {doc.get('library_version')!r:.50}; "
            f"this seqmodels {__version__} reads format_version <= {FORMAT_VERSION}. Upgrade seqmodels."
        )
    return version


def _field(doc: dict, key: str, typ: type, where: str) -> Any:
    value = doc.get(key)
    if not isinstance(value, typ):
        raise CheckpointError(f"{where}: key {key!r}: expected a {typ.__name__}, got {value!r:.100}")
    return value


def _verify_file(path: str, entry: dict, where: str) -> None:
    try:
        size = os.path.getsize(path)
        if size != entry["bytes"]:
            raise CheckpointError(
                f"{path}: {size} bytes, but {where} records {entry['bytes']} (file truncated or replaced)"
            )
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; {where} lists it") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e})") from e
    if sha.hexdigest() != entry["sha256"]:
        raise CheckpointError(f"{path}: SHA-256 checksum mismatch with {where} (file corrupted)")


def load_checkpoint(directory: str | os.PathLike, *, expected_kind: str | None = None) -> Checkpoint:
    """Load and verify a checkpoint directory written by :func:`save_checkpoint`.

    Falls back to the backup ``.<name>.old`` left by a crash during the swap. Raises
    :class:`CheckpointError` naming the path and key for a missing directory or file, malformed
    ``checkpoint.json``, a newer ``format_version``, a kind other than ``expected_kind`` and checksum
    mismatches. Arrays are returned as stored; check them with :func:`check_arrays`.
    """
    target = os.path.abspath(os.fspath(directory))
    _, backup, _ = _siblings(target)
    if os.path.isdir(target):
        where = target
    elif os.path.exists(target):
        hint = "; use load_npz for a .npz file" if target.endswith(".npz") else ""
        raise CheckpointError(f"{target}: is a file, expected a checkpoint directory{hint}")
    elif os.path.isdir(backup):
        where = backup
    else:
        raise CheckpointError(f"{target}: no such checkpoint directory")
    manifest = os.path.join(where, MANIFEST)
    doc = _read_json(manifest, MANIFEST)
    if not isinstance(doc, dict):
        raise CheckpointError(f"{manifest}: expected a JSON object, got {type(doc).__name__}")
    version = _check_version(doc, manifest)
    kind = _field(doc, "kind", str, manifest)
    library_version = _field(doc, "library_version", str, manifest)
    config = _field(doc, "config", dict, manifest)
    files = _field(doc, "files", dict, manifest)
    if expected_kind is not None and kind != expected_kind:
        raise CheckpointError(f"{where}: is a {kind!r:.100} checkpoint, expected {expected_kind!r}")
    if MODEL_GROUP not in files:
        raise CheckpointError(f"{manifest}: key 'files' lists no {MODEL_GROUP!r} group")
    groups = {}
    for group, entry in files.items():
        ok = (
            _GROUP.match(group) and isinstance(entry, dict)
            and entry.get("file") == f"{group}.safetensors"
            and type(entry.get("bytes")) is int and isinstance(entry.get("sha256"), str)
        )
        if not ok:
            raise CheckpointError(
                f"{manifest}: key 'files.{group:.64}': expected {{'file': '<group>.safetensors', "
                f"'bytes': int, 'sha256': str}}, got {entry!r:.200}"
            )
        path = os.path.join(where, entry["file"])
        _verify_file(path, entry, MANIFEST)
        groups[group], _ = load_safetensors(path)
    meta = {k: v for k, v in doc.items() if k not in _RESERVED}
    arrays = groups.pop(MODEL_GROUP)
    return Checkpoint(arrays, groups, meta, kind, config, version, library_version, where)


def check_arrays(
    arrays: Mapping[str, np.ndarray], expected: Mapping[str, tuple[tuple[int, ...], Any]], path: str | os.PathLike
) -> None:
    """Raise :class:`CheckpointError` unless ``arrays`` has exactly the keys, shapes and dtypes expected.

    ``expected`` maps each key to ``(shape, dtype)``. Every problem is listed, each naming the key, what
    was expected and what was found.
    """
    problems = []
    for key, (shape, dtype) in expected.items():
        want = f"shape {tuple(shape)}, dtype {np.dtype(dtype)}"
        if key not in arrays:
            problems.append(f"missing key {key!r} (expected {want})")
            continue
        arr = arrays[key]
        if not isinstance(arr, np.ndarray):
            problems.append(f"key {key!r}: expected an array with {want}, found {type(arr).__name__}")
        elif arr.shape != tuple(shape) or arr.dtype != np.dtype(dtype):
            problems.append(f"key {key!r}: expected {want}, found shape {arr.shape}, dtype {arr.dtype}")
    for key in arrays:
        if key not in expected:
            arr = arrays[key]
            found = f"shape {getattr(arr, 'shape', '?')}, dtype {getattr(arr, 'dtype', type(arr).__name__)}"
            problems.append(f"unexpected key {key!r} ({found}); the model has no such parameter")
    if problems:
        raise CheckpointError(f"{os.fspath(path)}: checkpoint does not match the model: " + "; ".join(problems))


# ----------------------------------------------------------------------------------- single file
def save_npz(
    path: str | os.PathLike, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None,
    *, compressed: bool = False,
) -> None:
    """Write ``arrays`` and JSON ``meta`` to one ``.npz`` file, atomically (no pickle anywhere)."""
    meta = dict(meta or {})
    arrays = {k: np.asarray(v) if isinstance(v, np.generic) else v for k, v in arrays.items()}
    for name, arr in arrays.items():
        if not isinstance(name, str) or not name or name == _NPZ_META:
            raise ConfigError(f"arrays: names must be non-empty strings other than {_NPZ_META!r}, got {name!r}")
        if not isinstance(arr, np.ndarray) or arr.dtype.hasobject:
            found = getattr(arr, "dtype", type(arr).__name__)
            raise DTypeError(f"arrays[{name!r}]: expected a numpy.ndarray without objects, got {found}")
    if not all(isinstance(k, str) for k in meta) or set(meta) & {"format_version", "library_version"}:
        raise ConfigError("meta: keys must be strings other than 'format_version' and 'library_version'")
    raw = _dumps({"format_version": FORMAT_VERSION, "library_version": __version__, **meta}, f"{path}: meta")
    members = {**arrays, _NPZ_META: np.frombuffer(raw, dtype=np.uint8)}

    def write(f):
        mode = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
        with zipfile.ZipFile(f, "w", compression=mode, allowZip64=True) as zf:
            for name, arr in members.items():
                with zf.open(name + ".npy", "w", force_zip64=True) as g:
                    np.lib.format.write_array(g, arr, allow_pickle=False)

    try:
        atomic_write(path, write)
    except OSError as e:
        raise CheckpointError(
            f"{os.fspath(path)}: could not write ({e}); the disk may be full. Any previous file is unchanged."
        ) from e


def _npz_member_ok(zf: zipfile.ZipFile, key: str, where: str) -> None:
    """Check a member's .npy header against its size in the zip before NumPy allocates anything."""
    info = zf.getinfo(key + ".npy")
    with zf.open(info) as g:
        version = np.lib.format.read_magic(g)
        reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in reader:
            raise CheckpointError(f"{where}: array {key!r}: unsupported .npy version {version}")
        shape, _, dtype = reader[version](g)
        if dtype.hasobject:
            raise CheckpointError(f"{where}: array {key!r}: object dtype refused (it would need pickle)")
        need = math.prod(shape) * dtype.itemsize
        if info.file_size != g.tell() + need:
            raise CheckpointError(
                f"{where}: array {key!r}: header declares shape {shape} of {dtype} ({need} bytes), "
                f"but the member holds {info.file_size - g.tell()} bytes (truncated or corrupt)"
            )


def load_npz(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_npz`; return ``(arrays, meta)``.

    Plain ``numpy.savez`` files load too (``meta`` is then ``{}``). Raises :class:`CheckpointError`
    naming the file and key for anything missing, corrupt or newer than this version reads.
    """
    where = os.fspath(path)
    try:
        with open(where, "rb") as f:
            magic = f.read(4)
        if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise CheckpointError(f"{where}: not a .npz (zip) file")
        arrays = {}
        with np.load(where, allow_pickle=False) as npz:
            for key in npz.files:
                _npz_member_ok(npz.zip, key, where)
                arrays[key] = npz[key]
    except FileNotFoundError:
        raise CheckpointError(f"{where}: no such file") from None
    except CheckpointError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as e:
        raise CheckpointError(f"{where}: corrupt or unreadable .npz ({type(e).__name__}: {e})") from e
    raw = arrays.pop(_NPZ_META, None)
    if raw is None:
        return arrays, {}
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{where}: key {_NPZ_META!r}: expected a 1-D uint8 array, got {raw.dtype} {raw.shape}")
    meta = _parse_json(raw.tobytes(), where, f"key {_NPZ_META!r}")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where}: key {_NPZ_META!r}: expected a JSON object, got {type(meta).__name__}")
    _check_version(meta, f"{where}: key {_NPZ_META!r}")
    meta.pop("format_version")
    meta.pop("library_version", None)
    return arrays, meta
