"""Tests of seqmodels.io: safetensors reader/writer, checkpoint directories, .npz files, crash safety."""

from __future__ import annotations

import dataclasses
import errno
import inspect
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqmodels._version import __version__
from seqmodels.core.errors import CheckpointError, ConfigError, DTypeError
from seqmodels.io import (
    check_arrays, load_checkpoint, load_npz, load_safetensors, save_checkpoint, save_npz, save_safetensors,
)
from seqmodels.io import checkpoint as ckmod

REPO = Path(__file__).resolve().parents[2]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
rng = np.random.default_rng(0)


def raw_safetensors(header, data: bytes = b"", n: int | None = None) -> bytes:
    """Hand-built file bytes: header (dict or bytes), data section, optional forced header length."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return (len(h) if n is None else n).to_bytes(8, "little") + h + data


def sample_arrays():
    return {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f64": rng.standard_normal((2, 5)),
        "i64": np.array([-(2**62), 0, 2**62 + 5], dtype=np.int64),
        "u8": np.arange(250, 256, dtype=np.uint8).reshape(2, 3),
        "scalar": np.array(3.25),
        "empty": np.zeros((0, 7), np.float32),
        "layers.0.forward.W_f": rng.standard_normal((4, 9)).astype(np.float32),
    }


def assert_same(a: dict, b: dict):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k])


def save_simple(d, step: int, **kw):
    w = np.full((4, 6), step, np.float32)
    return save_checkpoint(d, arrays={"W": w, "b": np.arange(step % 5 + 1)}, meta={"step": step},
                           kind="language_model", config={"hidden": 4}, extra_arrays={"optim": {"m": w * 2}}, **kw)


def check_simple(ck, step: int):
    assert ck.meta["step"] == step
    np.testing.assert_array_equal(ck.arrays["W"], np.full((4, 6), step, np.float32))
    np.testing.assert_array_equal(ck.arrays["b"], np.arange(step % 5 + 1))
    np.testing.assert_array_equal(ck.extra["optim"]["m"], np.full((4, 6), 2 * step, np.float32))


def leftovers(parent: Path, name: str):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}"))


# ------------------------------------------------------------------------------------- safetensors
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32, np.uint8, np.float16, np.bool_])
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (1,), (2, 3, 4)])
def test_safetensors_round_trip(tmp_path, dtype, shape):
    a = np.asarray(rng.standard_normal(shape) * 100).astype(dtype)
    p = tmp_path / "x.safetensors"
    save_safetensors(p, {"a": a, "big_endian": a.astype(a.dtype.newbyteorder(">")), "t": a.T})
    got, meta = load_safetensors(p)
    assert meta == {}
    assert_same(got, {"a": a, "big_endian": a, "t": a.T.copy()})
    assert got["a"].flags.writeable and got["big_endian"].dtype.isnative


def test_safetensors_layout_metadata_and_order(tmp_path):
    arrays = {"z": np.arange(3, dtype=np.uint8), "a": np.ones((2, 2)), "m": np.zeros(5, np.float32)}
    p = tmp_path / "x.safetensors"
    save_safetensors(p, arrays, {"step": "12", "note": "é"})
    raw = p.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    assert n % 8 == 0 and header["__metadata__"] == {"step": "12", "note": "é"}
    assert header["a"] == {"dtype": "F64", "shape": [2, 2], "data_offsets": [0, 32]}
    assert header["m"]["data_offsets"] == [32, 52] and header["z"]["data_offsets"] == [52, 55]
    assert np.frombuffer(raw[8 + n + 32:8 + n + 52], "<f4").tolist() == [0.0] * 5
    got, meta = load_safetensors(p)
    assert list(got) == ["z", "a", "m"] and meta == {"step": "12", "note": "é"}


@pytest.mark.parametrize("arrays, metadata, err", [
    ({"c": np.ones(2, complex)}, None, DTypeError),
    ({"o": np.array([None])}, None, DTypeError),
    ({"l": [1.0, 2.0]}, None, DTypeError),
    ({3: np.ones(2)}, None, DTypeError),
    ({"__metadata__": np.ones(2)}, None, ConfigError),
    ({"a": np.ones(2)}, {"step": 3}, DTypeError),
])
def test_safetensors_save_refuses_bad_arguments(tmp_path, arrays, metadata, err):
    with pytest.raises(err):
        save_safetensors(tmp_path / "x.safetensors", arrays, metadata)
    assert list(tmp_path.iterdir()) == []


def test_safetensors_matches_reference_implementation(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    arrays = {k: v for k, v in sample_arrays().items()}
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    save_safetensors(ours, arrays, {"k": "v"})
    loaded = st_numpy.load_file(str(ours))
    assert {k: v.shape for k, v in loaded.items()} == {k: v.shape for k, v in arrays.items()}
    for k in arrays:
        np.testing.assert_array_equal(loaded[k], arrays[k])
    st_numpy.save_file(arrays, str(theirs), metadata={"k": "v"})
    got, meta = load_safetensors(theirs)
    assert meta == {"k": "v"} and set(got) == set(arrays)
    for k in arrays:
        assert got[k].dtype == arrays[k].dtype and got[k].shape == arrays[k].shape
        np.testing.assert_array_equal(got[k], arrays[k])


GOOD = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
BAD_HEADERS = [
    ("unknown dtype", {"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, 4, "BF16"),
    ("negative dim", {"w": {"dtype": "U8", "shape": [-2], "data_offsets": [0, 2]}}, 2, "non-negative"),
    ("bool dim", {"w": {"dtype": "U8", "shape": [True], "data_offsets": [0, 1]}}, 1, "non-negative"),
    ("float dim", {"w": {"dtype": "U8", "shape": [2.0], "data_offsets": [0, 2]}}, 2, "non-negative"),
    ("size mismatch", {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, 8, "needs 12 bytes"),
    ("past the end", {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, 8, "outside"),
    ("reversed", {"w": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}}, 4, "outside"),
    ("overlap", {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                 "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, 12, "overlaps"),
    ("gap", {"w": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
             "v": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]}}, 6, "gap"),
    ("trailing bytes", GOOD, 12, "cover 8 bytes"),
    ("extra field", {"w": {**GOOD["w"], "x": 1}}, 8, "expected an object"),
    ("missing field", {"w": {"dtype": "F32", "shape": [2]}}, 8, "expected an object"),
    ("bad metadata", {**GOOD, "__metadata__": {"a": 1}}, 8, "__metadata__"),
    ("not an object", [1, 2], 0, "JSON object"),
]


@pytest.mark.parametrize("case, header, nbytes, needle", BAD_HEADERS, ids=[c[0] for c in BAD_HEADERS])
def test_safetensors_refuses_malformed_headers(tmp_path, case, header, nbytes, needle):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(raw_safetensors(header, bytes(nbytes)))
    with pytest.raises(CheckpointError, match=needle) as info:
        load_safetensors(p)
    assert str(p) in str(info.value)
    if isinstance(header, dict) and case != "trailing bytes":
        assert any(repr(k) in str(info.value) for k in header)


@pytest.mark.parametrize("raw, needle", [
    (b"", "too short"),
    (b"\x05\x00\x00", "too short"),
    (raw_safetensors(GOOD, bytes(8), n=10**7), "larger than"),
    (raw_safetensors(GOOD, bytes(8), n=2**64 - 1), "exceeds the limit"),
    (raw_safetensors(b'{"w": {"dtype": "F32"} "x"}'), "not valid UTF-8 JSON"),
    (raw_safetensors(b'\xff\xfe{}'), "not valid UTF-8 JSON"),
    (raw_safetensors(b'{"w": 1, "w": 2}'), "duplicate"),
    (raw_safetensors(b"[" * 100_000 + b"]" * 100_000), "JSON"),
])
def test_safetensors_refuses_bad_files(tmp_path, raw, needle):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(raw)
    with pytest.raises(CheckpointError, match=needle):
        load_safetensors(p)


def test_safetensors_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_safetensors(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_safetensors(tmp_path)


def test_safetensors_every_truncation_and_byte_flip_is_caught(tmp_path):
    p = tmp_path / "x.safetensors"
    save_safetensors(p, {"a": np.arange(5, dtype=np.float32), "b": np.ones((2, 2))})
    raw = p.read_bytes()
    for cut in range(len(raw)):
        p.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError):
            load_safetensors(p)
    n = int.from_bytes(raw[:8], "little")
    for i in range(0, 8 + n):  # header bytes: a flip either breaks the header or changes nothing valid
        p.write_bytes(raw[:i] + bytes([raw[i] ^ 0x5A]) + raw[i + 1:])
        try:
            got, _ = load_safetensors(p)
        except CheckpointError:
            continue
        assert sum(a.nbytes for a in got.values()) == len(raw) - 8 - n


@pytest.mark.parametrize("offsets", [[0, 8 * 10**12], [0, 8]])
def test_safetensors_huge_declared_shape_is_refused_without_allocating(tmp_path, offsets):
    p = tmp_path / "huge.safetensors"
    p.write_bytes(raw_safetensors({"big": {"dtype": "F64", "shape": [10**6, 10**6], "data_offsets": offsets}},
                                  bytes(8)))
    tracemalloc.start()
    try:
        np.empty(2_000_000, np.uint8)  # control: tracemalloc does see NumPy's allocations
        assert tracemalloc.get_traced_memory()[1] > 2_000_000
        tracemalloc.reset_peak()
        with pytest.raises(CheckpointError, match="'big'"):
            load_safetensors(p)
        assert tracemalloc.get_traced_memory()[1] < 1_000_000
    finally:
        tracemalloc.stop()


def _entry_strategy():
    ints = st.one_of(st.integers(-3, 40), st.sampled_from([2**63, 10**12, 2**64 + 1]), st.booleans(), st.floats())
    return st.fixed_dictionaries({
        "dtype": st.one_of(st.sampled_from(["F32", "F64", "U8", "I64", "BOOL", "BF16", "x"]), st.integers()),
        "shape": st.one_of(st.lists(ints, max_size=3), ints),
        "data_offsets": st.one_of(st.lists(ints, min_size=2, max_size=2), st.lists(ints, max_size=3)),
    })


@FUZZ
@given(header=st.dictionaries(st.text(max_size=5), _entry_strategy(), max_size=4), nbytes=st.integers(0, 64),
       n_delta=st.sampled_from([0, 0, 0, -1, 1, 7]))
def test_fuzz_structured_headers_raise_only_checkpoint_error(tmp_path, header, nbytes, n_delta):
    p = tmp_path / "f.safetensors"
    h = json.dumps(header).encode()
    p.write_bytes(raw_safetensors(h, bytes(nbytes), n=max(0, len(h) + n_delta)))
    try:
        got, _ = load_safetensors(p)
    except CheckpointError:
        return
    assert sum(a.nbytes for a in got.values()) == nbytes


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzz_random_bytes_raise_only_checkpoint_error(tmp_path, data):
    p = tmp_path / "f.safetensors"
    p.write_bytes(data)
    try:
        load_safetensors(p)
    except CheckpointError:
        pass


_VALID = raw_safetensors({"__metadata__": {"k": "v"}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "b": {"dtype": "U8", "shape": [0], "data_offsets": [8, 8]},
                          "c": {"dtype": "I64", "shape": [1, 1], "data_offsets": [8, 16]}}, bytes(16))


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), max_size=4),
       cut=st.integers(0, len(_VALID)), insert=st.binary(max_size=4))
def test_fuzz_mutated_files_raise_only_checkpoint_error(tmp_path, edits, cut, insert):
    raw = bytearray(_VALID)
    for i, b in edits:
        raw[i] = b
    p = tmp_path / "f.safetensors"
    p.write_bytes(bytes(raw[:cut]) + insert + bytes(raw[cut:]))
    try:
        load_safetensors(p)
    except CheckpointError:
        pass


# ------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(tmp_path):
    arrays = sample_arrays()
    state = np.random.default_rng(7).bit_generator.state
    meta = {"step": 1200, "vocabulary": ["<PAD>", "<UNK>", "é", "日"], "rng": state,
            "optimizer": {"name": "adam", "t": 3}, "history": {"loss": [2.5, 1.25]}}
    optim = {"m.W": np.ones((2, 2), np.float32), "v.W": np.zeros((2, 2), np.float32)}
    d = tmp_path / "run" / "ckpt"
    assert save_checkpoint(d, arrays=arrays, meta=meta, kind="language_model", config={"hidden": 16, "cell": "lstm"},
                           extra_arrays={"optim": optim}) == str(d)
    assert sorted(os.listdir(d)) == ["checkpoint.json", "model.safetensors", "optim.safetensors"]
    ck = load_checkpoint(d, expected_kind="language_model")
    assert_same(ck.arrays, arrays)
    assert_same(ck.extra["optim"], optim) and list(ck.extra) == ["optim"]
    assert ck.meta == meta and ck.kind == "language_model" and ck.config == {"hidden": 16, "cell": "lstm"}
    assert (ck.format_version, ck.library_version, ck.path) == (1, __version__, str(d))
    restored = np.random.default_rng()
    restored.bit_generator.state = ck.meta["rng"]
    assert restored.random() == np.random.default_rng(7).random()
    doc = json.loads((d / "checkpoint.json").read_text("utf-8"))
    assert doc["format_version"] == 1 and doc["library_version"] == __version__
    assert len(doc["files"]["model"]["sha256"]) == 64
    assert doc["files"]["optim"]["bytes"] == (d / "optim.safetensors").stat().st_size
    assert leftovers(d.parent, "ckpt") == []


def test_checkpoint_overwrite_leaves_no_debris(tmp_path):
    d = tmp_path / "ck"
    for step in range(3):
        save_simple(d, step)
        check_simple(load_checkpoint(d), step)
    assert leftovers(tmp_path, "ck") == [] and sorted(os.listdir(tmp_path)) == ["ck"]


def test_wrong_kind_and_newer_format(tmp_path):
    d = tmp_path / "ck"
    save_simple(d, 1)
    with pytest.raises(CheckpointError, match="is a 'language_model' checkpoint, expected 'tagger'"):
        load_checkpoint(d, expected_kind="tagger")
    doc = json.loads((d / "checkpoint.json").read_text())
    (d / "checkpoint.json").write_text(json.dumps({**doc, "format_version": 2, "library_version": "9.0"}))
    with pytest.raises(CheckpointError, match=r"written by seqmodels '9.0'.*[Uu]pgrade") as info:
        load_checkpoint(d)
    assert "format_version" in str(info.value) and str(d) in str(info.value)


@pytest.mark.parametrize("change, needle", [
    (lambda doc: doc.pop("kind"), "'kind'"),
    (lambda doc: doc.pop("config"), "'config'"),
    (lambda doc: doc.pop("files"), "'files'"),
    (lambda doc: doc.pop("library_version"), "'library_version'"),
    (lambda doc: doc.pop("format_version"), "'format_version'"),
    (lambda doc: doc.update(format_version="1"), "'format_version'"),
    (lambda doc: doc.update(format_version=True), "'format_version'"),
    (lambda doc: doc.update(format_version=0), "'format_version'"),
    (lambda doc: doc["files"].pop("model"), "'model'"),
    (lambda doc: doc["files"]["model"].update(file="../../etc/passwd"), "files.model"),
    (lambda doc: doc["files"].update({"../x": doc["files"]["optim"]}), "files"),
    (lambda doc: doc["files"]["optim"].update(sha256="0" * 64), "checksum"),
    (lambda doc: doc["files"]["optim"].update(bytes=5), "truncated"),
])
def test_manifest_problems_name_the_key(tmp_path, change, needle):
    d = tmp_path / "ck"
    save_simple(d, 1)
    doc = json.loads((d / "checkpoint.json").read_text())
    change(doc)
    (d / "checkpoint.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=needle):
        load_checkpoint(d)


@pytest.mark.parametrize("damage, needle", [
    (lambda d: (d / "checkpoint.json").write_text("{not json"), "not valid UTF-8 JSON"),
    (lambda d: (d / "checkpoint.json").write_text("[1]"), "JSON object"),
    (lambda d: (d / "checkpoint.json").unlink(), "checkpoint.json: missing"),
    (lambda d: (d / "optim.safetensors").unlink(), "optim.safetensors: missing"),
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-3]), "truncated"),
    (lambda d: (d / "model.safetensors").write_bytes(
        (d / "model.safetensors").read_bytes()[:-1] + b"\x01"), "checksum mismatch"),
])
def test_damaged_checkpoints(tmp_path, damage, needle):
    d = tmp_path / "ck"
    save_simple(d, 1)
    damage(d)
    with pytest.raises(CheckpointError, match=needle) as info:
        load_checkpoint(d)
    assert str(d) in str(info.value)


def test_missing_directory_and_file_instead_of_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "one.npz").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="load_npz"):
        load_checkpoint(tmp_path / "one.npz")


@pytest.mark.parametrize("kwargs, err, needle", [
    ({"meta": {"kind": 1}}, ConfigError, "reserved"),
    ({"meta": {"lr": np.float32(0.1)}}, ConfigError, "'lr'"),
    ({"meta": {1: 2}}, DTypeError, "meta"),
    ({"kind": ""}, ConfigError, "kind"),
    ({"extra_arrays": {"model": {}}}, ConfigError, "'model'"),
    ({"extra_arrays": {"../x": {}}}, ConfigError, "'../x'"),
    ({"arrays": {"W": np.ones(2, complex)}}, DTypeError, "'W'"),
])
def test_save_refuses_bad_arguments_before_touching_disk(tmp_path, kwargs, err, needle):
    args = {"arrays": {"W": np.ones(2)}, "meta": {}, "kind": "tagger", "config": {}, **kwargs}
    with pytest.raises(err, match=needle):
        save_checkpoint(tmp_path / "ck", **args)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_to_replace_a_foreign_directory(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(CheckpointError, match="not a seqmodels checkpoint"):
        save_simple(tmp_path / "mine", 1)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"
    (tmp_path / "empty").mkdir()
    save_simple(tmp_path / "empty", 2)
    check_simple(load_checkpoint(tmp_path / "empty"), 2)


def test_check_arrays_is_strict_and_names_keys():
    expected = {"W": ((2, 3), np.float32), "b": ((2,), "float32"), "c": ((1,), np.int64)}
    good = {"W": np.zeros((2, 3), np.float32), "b": np.zeros(2, np.float32), "c": np.zeros(1, np.int64)}
    check_arrays(good, expected, "ck")
    cases = [
        ({k: v for k, v in good.items() if k != "b"}, r"missing key 'b' \(expected shape \(2,\), dtype float32\)"),
        ({**good, "extra": np.ones(4)}, r"unexpected key 'extra' \(shape \(4,\)"),
        ({**good, "W": np.zeros((3, 2), np.float32)}, r"key 'W': expected shape \(2, 3\).*found shape \(3, 2\)"),
        ({**good, "b": np.zeros(2, np.float64)}, r"key 'b': expected .*float32, found .*float64"),
        ({**good, "c": [0]}, r"key 'c': expected an array"),
    ]
    for arrays, needle in cases:
        with pytest.raises(CheckpointError, match=needle) as info:
            check_arrays(arrays, expected, "run/ck")
        assert str(info.value).startswith("run/ck:")


# -------------------------------------------------------------------------------- failures while saving
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("target", ["fsync", "write", "swap"])
def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch, target):
    d = tmp_path / "ck"
    save_simple(d, 1)
    if target == "fsync":
        monkeypatch.setattr(os, "fsync", _enospc)
    elif target == "write":
        def half_then_fail(f, arrays, metadata):
            f.write(b"\0" * 16)
            _enospc()
        monkeypatch.setattr(ckmod, "write_safetensors", half_then_fail)
    else:
        real = os.replace
        swap = lambda s, t: _enospc() if os.path.basename(s).startswith(".ck.tmp-") else real(s, t)  # noqa: E731
        monkeypatch.setattr(os, "replace", swap)
    with pytest.raises(CheckpointError, match=f"disk may be full.*previous checkpoint at {d} is intact"):
        save_simple(d, 2)
    assert sorted(os.listdir(tmp_path)) == ["ck"]  # rolled back in place, temp files removed
    monkeypatch.undo()
    check_simple(load_checkpoint(d), 1)
    assert leftovers(tmp_path, "ck") == []
    save_simple(d, 3)
    check_simple(load_checkpoint(d), 3)


def test_disk_full_on_first_save_says_nothing_was_written(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(CheckpointError, match="No checkpoint was written"):
        save_simple(tmp_path / "ck", 1)
    assert list(tmp_path.iterdir()) == []


def test_backup_left_by_a_crash_is_loaded_then_replaced(tmp_path):
    d = tmp_path / "ck"
    save_simple(d, 1)
    os.rename(d, tmp_path / ".ck.old")  # the state after `ck -> .ck.old` and before the new one lands
    ck = load_checkpoint(d)
    check_simple(ck, 1)
    assert ck.path == str(tmp_path / ".ck.old")
    save_simple(d, 2)
    check_simple(load_checkpoint(d), 2)
    assert sorted(os.listdir(tmp_path)) == ["ck"]


def _run(code: str, *args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, text=True, **kwargs)


_SAVER = """
import sys, numpy as np
from seqmodels.io import save_checkpoint
{setup}
""" + inspect.getsource(save_simple) + """
d, step = sys.argv[1], int(sys.argv[2])
print("ready", flush=True)
while True:
    step += 1
    save_simple(d, step)
    print(step, flush=True)
"""


@pytest.mark.parametrize("moment, survivor", [("ck -> backup", 1), ("tmp -> ck", 1), ("delete backup", 2)])
def test_sigkill_during_the_swap(tmp_path, moment, survivor):
    setup = f"""
import os, signal, shutil
real_replace, real_rmtree = os.replace, shutil.rmtree
def die(): os.kill(os.getpid(), signal.SIGKILL)
def replace(s, t):
    name = os.path.basename(s)
    if ({moment!r} == "ck -> backup" and name == "ck") or ({moment!r} == "tmp -> ck" and name.startswith(".ck.tmp-")):
        die()
    return real_replace(s, t)
def rmtree(p, *a, **k):
    if {moment!r} == "delete backup" and os.path.basename(p) == ".ck.old" and os.path.exists(p):
        die()
    return real_rmtree(p, *a, **k)
os.replace, shutil.rmtree = replace, rmtree
"""
    d = tmp_path / "ck"
    save_simple(d, 1)
    proc = _run(_SAVER.replace("{setup}", setup), d, 1, stdout=subprocess.PIPE)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    check_simple(load_checkpoint(d), survivor)
    save_simple(d, 5)
    check_simple(load_checkpoint(d), 5)
    assert sorted(os.listdir(tmp_path)) == ["ck"]


def _kill_at_random_moments(tmp_path, kills: int, seed: int):
    d, step = tmp_path / "ck", 0
    save_simple(d, step)
    moments = np.random.default_rng(seed).uniform(0.0, 0.12, size=kills)
    for delay in moments:
        proc = _run(_SAVER.replace("{setup}", ""), d, step, stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        printed = [int(s) for s in out.split()]
        last = printed[-1] if printed else step
        ck = load_checkpoint(d, expected_kind="language_model")
        assert last <= ck.meta["step"] <= last + 1  # the save in flight may have landed
        check_simple(ck, ck.meta["step"])
        step = ck.meta["step"]
    assert step > 0


def test_sigkill_at_random_moments_leaves_a_complete_checkpoint(tmp_path):
    _kill_at_random_moments(tmp_path, kills=6, seed=1)


@pytest.mark.slow
def test_sigkill_at_random_moments_many(tmp_path):
    _kill_at_random_moments(tmp_path, kills=60, seed=2)


# ---------------------------------------------------------------------------------- fuzz checkpoints
@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    d = tmp_path_factory.mktemp("pristine") / "ck"
    save_simple(d, 3)
    return {name: (d / name).read_bytes() for name in os.listdir(d)}


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                     max_leaves=8)


@FUZZ
@given(name=st.sampled_from(["checkpoint.json", "model.safetensors", "optim.safetensors"]),
       edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3),
       cut=st.one_of(st.none(), st.integers(0, 10**6)),
       field=st.sampled_from(["format_version", "kind", "config", "files", "library_version", "step"]),
       value=_json, use_value=st.booleans())
def test_fuzz_load_checkpoint_raises_only_checkpoint_error(tmp_path, pristine, name, edits, cut, field, value,
                                                           use_value):
    d = tmp_path / "ck"
    d.mkdir(exist_ok=True)
    for n, raw in pristine.items():
        (d / n).write_bytes(raw)
    raw = bytearray(pristine[name])
    if use_value:
        doc = json.loads(pristine["checkpoint.json"])
        doc[field] = value
        (d / "checkpoint.json").write_text(json.dumps(doc))
    else:
        for i, b in edits:
            raw[i % len(raw)] = b
        (d / name).write_bytes(bytes(raw[:cut]))
    try:
        ck = load_checkpoint(d, expected_kind="language_model")
    except CheckpointError:
        return
    # the array files are checksummed: whatever loads holds the saved arrays, not damaged ones
    check_simple(dataclasses.replace(ck, meta={"step": 3}), 3)


# ------------------------------------------------------------------------------------------- .npz
def test_npz_round_trip(tmp_path):
    arrays = {**sample_arrays(), "file": np.ones(2), "allow_pickle": np.zeros(1, np.int32),
              "f16": np.ones((2, 2), np.float16), "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3))}
    meta = {"kind": "classifier", "config": {"hidden": 3}, "vocabulary": ["a", "ü"], "step": 4}
    for compressed in (False, True):
        p = tmp_path / f"m{compressed}.npz"
        save_npz(p, arrays, meta, compressed=compressed)
        got, got_meta = load_npz(p)
        assert_same(got, arrays)
        assert got_meta == meta
    with np.load(tmp_path / "mFalse.npz", allow_pickle=False) as z:  # also an ordinary .npz
        assert json.loads(z["__meta__"].tobytes())["format_version"] == 1


def test_npz_plain_numpy_file_and_refusals(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.arange(3))
    got, meta = load_npz(tmp_path / "plain.npz")
    assert meta == {} and got["a"].tolist() == [0, 1, 2]
    np.savez(tmp_path / "obj.npz", o=np.array([{"x": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="'o'.*object"):
        load_npz(tmp_path / "obj.npz")
    np.save(tmp_path / "one.npy", np.arange(3))
    with pytest.raises(CheckpointError, match="not a .npz"):
        load_npz(tmp_path / "one.npy")
    with pytest.raises(CheckpointError, match="no such file"):
        load_npz(tmp_path / "nope.npz")
    with pytest.raises(DTypeError):
        save_npz(tmp_path / "x.npz", {"o": np.array([None])})
    with pytest.raises(ConfigError):
        save_npz(tmp_path / "x.npz", {"__meta__": np.ones(1)})
    with pytest.raises(ConfigError):
        save_npz(tmp_path / "x.npz", {"a": np.ones(1)}, {"format_version": 3})


def test_npz_newer_format_and_huge_declared_shape(tmp_path):
    p = tmp_path / "new.npz"
    save_npz(p, {"a": np.ones(2)}, {"step": 1})
    with zipfile.ZipFile(p) as z:
        members = {n: z.read(n) for n in z.namelist()}
    doc = json.dumps({"format_version": 2, "library_version": "9.9"}).encode()
    meta = np.frombuffer(doc, np.uint8)
    with zipfile.ZipFile(p, "w") as z:
        with z.open("a.npy", "w") as g:  # claims 10**12 float64 but holds 16 bytes
            hdr = members["a.npy"][:-16].replace(b"(2,)", b"(1000000000000,)")
            hdr = hdr[:8] + (len(hdr) - 10).to_bytes(2, "little") + hdr[10:]
            g.write(hdr + bytes(16))
        with z.open("__meta__.npy", "w") as g:
            np.lib.format.write_array(g, meta)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="'a'.*1000000000000"):
            load_npz(p)
        assert tracemalloc.get_traced_memory()[1] < 1_000_000
    finally:
        tracemalloc.stop()
    with zipfile.ZipFile(p, "w") as z:
        with z.open("__meta__.npy", "w") as g:
            np.lib.format.write_array(g, meta)
    with pytest.raises(CheckpointError, match="written by seqmodels '9.9'.*[Uu]pgrade"):
        load_npz(p)


def test_npz_disk_full_keeps_previous_file(tmp_path, monkeypatch):
    p = tmp_path / "m.npz"
    save_npz(p, {"a": np.ones(2)}, {"step": 1})
    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(CheckpointError, match="disk may be full"):
        save_npz(p, {"a": np.zeros(2)}, {"step": 2})
    monkeypatch.undo()
    assert load_npz(p)[1] == {"step": 1} and os.listdir(tmp_path) == ["m.npz"]


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_fuzz_load_npz_raises_only_checkpoint_error(tmp_path, edits, cut):
    p = tmp_path / "m.npz"
    if not p.exists():
        save_npz(p, {"a": np.arange(4.0), "b": np.ones((2, 2), np.int32)}, {"step": 1})
        (tmp_path / "pristine").write_bytes(p.read_bytes())
    raw = bytearray((tmp_path / "pristine").read_bytes())
    for i, b in edits:
        raw[i % len(raw)] = b
    p.write_bytes(bytes(raw[:cut]))
    try:
        load_npz(p)
    except CheckpointError:
        pass
