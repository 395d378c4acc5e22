"""Memory-mapped corpora: the ids equal LanguageModel.stream_ids(read_text(path)) for any chunking, the
vocabulary equals Vocabulary.from_text, bad bytes give read_text's errors, the cache is reused only when
it matches, a failed write keeps the old cache, and memory stays bounded by the chunk size."""

import io
import json
import os
import re
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from seqmodels.core.errors import ConfigError, DataError, DTypeError
from seqmodels.data.readers import read_text
from seqmodels.models.language_model import LanguageModel
from seqmodels.text import StreamBatcher, Vocabulary
from seqmodels.text import memmap as mm

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALPHABET = st.sampled_from(list("ab cZ\n\r\t.") + ["\r\n", "é", "Σ", "ὠ", "😀", "İ", "ß"])
TEXTS = st.lists(ALPHABET, min_size=1, max_size=120).map("".join)
CHUNKS = st.sampled_from([16, 17, 23, 64, 1 << 20])


def stream_ids(vocab: Vocabulary, text: str) -> np.ndarray:
    """The reference: what the in-memory language-model path produces for this text."""
    return LanguageModel(vocab, "rnn", 1, seed=0).stream_ids(text)


def write(dir_, name: str, data: bytes):
    path = dir_ / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------- equivalence
@FUZZ
@given(text=TEXTS, chunk=CHUNKS, bom=st.booleans(), lowercase=st.booleans(),
       max_size=st.sampled_from([None, 2, 5]), order=st.sampled_from(["count", "first", "sorted"]))
def test_char_vocab_and_ids_match_the_in_memory_path(tmp_path_factory, text, chunk, bom, lowercase, max_size, order):
    if lowercase and "Σ" in text and chunk < 1 << 20:
        text = text.replace("Σ", "σ")     # final sigma needs its word: cuts inside a long word may change it
    d = tmp_path_factory.mktemp("mm")
    path = write(d, "c.txt", (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    reference_text = read_text(path)
    vocab = mm.build_vocab(path, lowercase=lowercase, max_size=max_size, order=order, chunk_bytes=chunk)
    expected = Vocabulary.from_text(reference_text, level="char", lines_as_sequences=True, lowercase=lowercase,
                                    max_size=max_size, order=order)
    assert vocab == expected
    if len(vocab) <= 3:
        return
    corpus = mm.encode_corpus(path, vocab, chunk_bytes=chunk, progress=False)   # max_size: many <UNK>
    np.testing.assert_array_equal(np.asarray(corpus.ids), stream_ids(vocab, reference_text))
    assert corpus.ids.dtype == np.dtype("<u2") and not corpus.reused


@FUZZ
@given(text=TEXTS, chunk=CHUNKS)
def test_chunks_join_to_read_text(tmp_path_factory, text, chunk):
    path = write(tmp_path_factory.mktemp("mm"), "c.txt", text.encode("utf-8"))
    pieces = list(mm.iter_text_chunks(path, chunk))
    assert "".join(p.decode("ascii") if isinstance(p, bytes) else p for p in pieces) == read_text(path)
    assert all(isinstance(p, str) or p.isascii() for p in pieces)


@FUZZ
@given(text=st.lists(ALPHABET, min_size=2, max_size=80).map("".join), where=st.floats(0, 1),
       bad=st.sampled_from([b"\x00", b"\xff", b"\xc3", b"\x80", b"\xed\xa0\x80"]), chunk=CHUNKS)
@example(text="😀aé", where=0.5, bad=b"\x80", chunk=16)     # a stray byte after a 4-byte character
def test_a_bad_byte_is_reported_where_read_text_reports_it(tmp_path_factory, text, where, bad, chunk):
    at = int(where * len(text))                      # between two characters: one defect in the file
    path = write(tmp_path_factory.mktemp("mm"), "c.txt", text[:at].encode("utf-8") + bad + text[at:].encode("utf-8"))
    with pytest.raises(DataError) as ref:
        read_text(path)
    with pytest.raises(DataError) as got:
        list(mm.iter_text_chunks(path, chunk))
    position = re.compile(r"(NUL byte|UTF-8) at byte offset (\d+) \(line (\d+)\)")
    assert position.search(str(got.value)).groups() == position.search(str(ref.value)).groups()
    assert str(path) in str(got.value)


def test_word_level_vocab_and_ids_match_the_in_memory_path(tmp_path):
    text = ("The cat sat, on the mat!\r\nA dog -- barked.\n\n" * 30 + "a very long line " * 40 + "\nend")
    path = write(tmp_path, "w.txt", text.encode("utf-8"))
    for chunk in (16, 50, 1 << 20):
        vocab = mm.build_vocab(path, level="word", min_count=2, chunk_bytes=chunk)
        assert vocab == Vocabulary.from_text(read_text(path), level="word", lines_as_sequences=True, min_count=2)
        corpus = mm.encode_corpus(path, vocab, chunk_bytes=chunk, progress=False, force=True)
        np.testing.assert_array_equal(np.asarray(corpus.ids), stream_ids(vocab, read_text(path)))
    assert vocab.unk_id in np.asarray(corpus.ids)                           # "end" is rarer than min_count


def test_large_vocabulary_uses_int32(tmp_path):
    vocab = Vocabulary([f"w{i}" for i in range(70_000)], level="word")
    path = write(tmp_path, "w.txt", b"w1 w69999 zzz\nw65535\n")
    corpus = mm.encode_corpus(path, vocab, progress=False)
    assert corpus.ids.dtype == np.dtype("<i4") and corpus.info["dtype"] == "<i4"
    assert corpus.ids.tolist() == [2, 4, 70_002, 1, 2, 65_538, 2]


# ------------------------------------------------------------------------------- cache
@pytest.fixture
def corpus_file(tmp_path):
    return write(tmp_path, "c.txt", "hello world\nhéllo again\n".encode("utf-8") * 50)


def test_second_run_reuses_the_file_without_encoding(corpus_file, monkeypatch):
    vocab = mm.build_vocab(corpus_file)
    first = mm.encode_corpus(corpus_file, vocab, progress=False)
    side = json.loads(first.path.with_name(first.path.name + ".json").read_text())
    assert side["vocabulary_sha256"] == mm.vocab_sha256(vocab) and side["length"] == first.ids.size
    assert side["dtype"] == "<u2" and side["source"]["bytes"] == corpus_file.stat().st_size
    monkeypatch.setattr(mm, "_write_ids", lambda *a: pytest.fail("encoded again"))
    log = io.StringIO()
    second = mm.encode_corpus(corpus_file, vocab, progress=log)
    assert second.reused and second.path == first.path and "reusing" in log.getvalue()
    np.testing.assert_array_equal(second.ids, first.ids)


def test_a_changed_corpus_or_vocabulary_is_encoded_again(corpus_file):
    vocab = mm.build_vocab(corpus_file)
    first = mm.encode_corpus(corpus_file, vocab, progress=False)
    other = Vocabulary(vocab.tokens[3:-1])
    assert mm.encode_corpus(corpus_file, other, progress=False).path != first.path
    with open(corpus_file, "ab") as f:
        f.write(b"one more line\n")
    again = mm.encode_corpus(corpus_file, vocab, progress=False)
    assert not again.reused and again.path == first.path
    np.testing.assert_array_equal(np.asarray(again.ids), stream_ids(vocab, read_text(corpus_file)))
    assert not mm.encode_corpus(corpus_file, vocab, progress=False, force=True).reused


@pytest.mark.parametrize("damage, needle", [
    (lambda ids, side: ids.write_bytes(ids.read_bytes()[:-2]), "truncated or replaced"),
    (lambda ids, side: side.write_text("{not json"), "unreadable sidecar"),
    (lambda ids, side: side.unlink(), "sidecar missing"),
    (lambda ids, side: side.write_text(json.dumps({**json.loads(side.read_text()), "format_version": 9})),
     "format_version 9"),
    (lambda ids, side: side.write_text(json.dumps({**json.loads(side.read_text()), "dtype": "<f8"})), "'<f8'"),
    (lambda ids, side: side.write_text(json.dumps({**json.loads(side.read_text()), "length": -3})), "-3"),
])
def test_a_damaged_cache_is_refused_by_open_ids_and_rebuilt_by_encode(corpus_file, damage, needle):
    vocab = mm.build_vocab(corpus_file)
    first = mm.encode_corpus(corpus_file, vocab, progress=False)
    expected, ids_path = np.array(first.ids), first.path
    side = ids_path.with_name(ids_path.name + ".json")
    del first                                                  # unmap before changing the file under it
    damage(ids_path, side)
    with pytest.raises(DataError, match=re.escape(needle)) as e:
        mm.open_ids(ids_path)
    assert ids_path.name in str(e.value)
    rebuilt = mm.encode_corpus(corpus_file, vocab, progress=False)
    assert not rebuilt.reused
    np.testing.assert_array_equal(rebuilt.ids, expected)


def test_a_failed_write_keeps_the_previous_cache(corpus_file, monkeypatch):
    vocab = mm.build_vocab(corpus_file)
    first = mm.encode_corpus(corpus_file, vocab, progress=False)
    before = first.path.read_bytes()

    def disk_full(f, pieces, vocab, dtype):
        f.write(b"\0" * 10)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mm, "_write_ids", disk_full)
    with pytest.raises(DataError, match="is the disk full"):
        mm.encode_corpus(corpus_file, vocab, progress=False, force=True)
    assert first.path.read_bytes() == before
    assert sorted(p.name for p in corpus_file.parent.iterdir()) == sorted(
        [corpus_file.name, first.path.name, first.path.name + ".json"])            # no temp files left
    monkeypatch.undo()
    assert mm.encode_corpus(corpus_file, vocab, progress=False).reused


def test_not_enough_disk_space_is_refused_before_writing(corpus_file, monkeypatch):
    vocab = mm.build_vocab(corpus_file)
    monkeypatch.setattr(mm.shutil, "disk_usage", lambda p: type("U", (), {"free": 100})())
    with pytest.raises(DataError, match=r"MB free.*may need up to"):
        mm.encode_corpus(corpus_file, vocab, progress=False)
    assert [p.name for p in corpus_file.parent.iterdir()] == [corpus_file.name]


def test_ids_are_read_only(corpus_file):
    corpus = mm.encode_corpus(corpus_file, mm.build_vocab(corpus_file), progress=False)
    with pytest.raises(ValueError):
        corpus.ids[0] = 5


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("data, needle", [
    (None, "file not found"), (b"", "file is empty"), (b"\xef\xbb\xbf", "only a UTF-8 byte-order mark"),
    (b"\xff\xfeh\x00i\x00", "UTF-16 byte-order mark"), (b"ab\ncd\x00ef", "NUL byte at byte offset 5 (line 2)"),
    (b"ab\n\ncaf\xe9\n", "not valid UTF-8 at byte offset 7 (line 3)"),
])
def test_unreadable_corpora_name_the_file_and_position(tmp_path, data, needle):
    path = tmp_path / "c.txt"
    if data is not None:
        path.write_bytes(data)
    for call in (lambda: mm.build_vocab(path), lambda: mm.encode_corpus(path, Vocabulary(["a"]), progress=False)):
        with pytest.raises(DataError, match=re.escape(needle)) as e:
            call()
        assert str(path) in str(e.value)
    assert not list(tmp_path.glob("*.ids*"))


def test_bad_arguments(tmp_path, corpus_file):
    with pytest.raises(DataError, match="is a directory"):
        mm.build_vocab(tmp_path)
    with pytest.raises(DTypeError, match="vocab: expected a seqmodels.text.Vocabulary, got dict"):
        mm.encode_corpus(corpus_file, {"a": 3})
    with pytest.raises(ConfigError, match="chunk_bytes: expected at least 16, got 8"):
        mm.build_vocab(corpus_file, chunk_bytes=8)
    with pytest.raises(ConfigError, match="min_count"):
        mm.build_vocab(corpus_file, min_count=0)
    with pytest.raises(ConfigError, match="valid_fraction"):
        mm.split_ids(np.arange(10), 1.0)


# ------------------------------------------------------------------------------- training on it
def test_training_on_the_memmap_equals_training_in_memory(corpus_file):
    vocab = mm.build_vocab(corpus_file, order="sorted")
    corpus = mm.encode_corpus(corpus_file, vocab, progress=False)
    in_memory = stream_ids(vocab, read_text(corpus_file))
    a = StreamBatcher(corpus.ids, 3, 7, random_offset=True, seed=1)
    b = StreamBatcher(in_memory, 3, 7, random_offset=True, seed=1)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    models = [LanguageModel(vocab, "lstm", 8, dtype=np.float64, seed=0) for _ in range(2)]
    for model, ids in zip(models, (corpus.ids, in_memory)):
        model.fit(ids, batch_size=3, seq_len=7, steps=6, lr=1e-2, progress=False)
    for k in models[0].params:
        np.testing.assert_array_equal(models[0].params[k], models[1].params[k], err_msg=k)


def test_split_ids_cuts_at_a_line_break_like_splitting_the_text(tmp_path):
    lines = [f"line {i} " + "x" * (i % 7) for i in range(40)]
    path = write(tmp_path, "c.txt", ("\n".join(lines) + "\n").encode())
    vocab = mm.build_vocab(path)
    ids = mm.encode_corpus(path, vocab, progress=False).ids
    train, valid = mm.split_ids(ids, 0.25, vocab.eos_id, block=5)
    k = int(train.size) - 1                                  # the shared <EOS>
    assert train[-1] == valid[0] == vocab.eos_id and train.size + valid.size == ids.size + 1
    assert 0.5 * ids.size < k <= 0.75 * ids.size and not (np.asarray(ids[k + 1:int(0.75 * ids.size)]) == 2).any()
    n_train = int((np.asarray(train) == vocab.eos_id).sum()) - 1
    np.testing.assert_array_equal(train, stream_ids(vocab, "\n".join(lines[:n_train]) + "\n"))
    np.testing.assert_array_equal(valid, stream_ids(vocab, "\n".join(lines[n_train:]) + "\n"))
    assert isinstance(train, np.memmap) and mm.split_ids(ids, 0.0)[1] is None


def test_progress_goes_to_the_given_stream(corpus_file):
    log = io.StringIO()
    vocab = mm.build_vocab(corpus_file, progress=log)
    mm.encode_corpus(corpus_file, vocab, progress=log, chunk_bytes=64)
    out = log.getvalue()
    assert re.search(r"vocabulary c\.txt: .* MB in .* s \(.* MB/s\); \d+ distinct characters", out)
    assert re.search(r"encode c\.txt: .* MB/s\); \d[\d,]* tokens \(uint16\) -> ", out)


def test_memory_is_bounded_by_the_chunk_size(tmp_path):
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghéπ😀"), 6)) for _ in range(300)]
    block = ("\n".join(" ".join(rng.choice(words, 9)) for _ in range(2000)) + "\n").encode("utf-8")
    path = tmp_path / "big.txt"
    with open(path, "wb") as f:
        for _ in range(8_000_000 // len(block) + 1):
            f.write(block)
    chunk = 1 << 16
    tracemalloc.start()
    try:
        vocab = mm.build_vocab(path, chunk_bytes=chunk)
        corpus = mm.encode_corpus(path, vocab, chunk_bytes=chunk, progress=False)
        batches = StreamBatcher(corpus.ids, 8, 32)
        for _, (x, y) in zip(range(50), batches):
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert size > 8_000_000 and corpus.ids.size > 2_000_000
    assert peak < 40 * chunk, f"peak {peak} bytes for a {size}-byte corpus"   # ~0.3 of the text's size
    assert os.path.getsize(corpus.path) == 2 * corpus.ids.size


# ------------------------------------------------------------------------------- command line (once hooked up)
def test_cli_memmap_trains_exactly_like_the_text_path(tmp_path, capsys):
    from seqmodels.cli.main import build_parser, main
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    if "--memmap" not in train._option_string_actions:
        pytest.skip("`seqmodels train --memmap` is not hooked up in this build")
    corpus = write(tmp_path, "c.txt", ("the cat sat on the mat\nthe dog sat on the log\n" * 40).encode())
    args = ["--hidden", "8", "--layers", "1", "--seq-len", "10", "--batch-size", "4", "--no-progress",
            "--valid-fraction", "0", "--float64", "--steps", "6"]
    stamps = []
    for name, extra in (("text", []), ("memmap", ["--memmap"]), ("again", ["--memmap"])):
        assert main(["train", str(corpus), "--out", str(tmp_path / name), *args, *extra]) == 0
        stamps.append([p.stat().st_mtime_ns for p in tmp_path.glob("c.txt.*.ids")])
    assert stamps[0] == [] and len(stamps[1]) == 1 and stamps[2] == stamps[1]     # encoded once, then reused
    runs = [LanguageModel.load(tmp_path / name / "model") for name in ("text", "memmap", "again")]
    for k in runs[0].params:
        np.testing.assert_array_equal(runs[0].params[k], runs[1].params[k], err_msg=k)
        np.testing.assert_array_equal(runs[0].params[k], runs[2].params[k], err_msg=k)
    assert main(["train", str(corpus), "--resume", str(tmp_path / "memmap"), "--steps", "8", "--no-progress"]) == 0
