"""Fuzzing the readers: random bytes and mutations of valid files give a result or one of the documented
errors (a SeqModelsError subclass, DataError for bad files), never another exception type."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqmodels.core.errors import ConfigError, DataError, SeqModelsError
from seqmodels.data import readers
from seqmodels.text import Vocabulary
from seqmodels.text import memmap as mm

try:
    from seqmodels.data import midi
except ImportError:                                    # the MIDI reader is optional in this build
    midi = None

FUZZ = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

VALID = {
    "text": "Hello, world!\nÜnïcödé line\r\nlast line without newline".encode("utf-8"),
    "conll": b"-DOCSTART- O\n\nEU\tB-org\nrejects\tO\nGerman\tB-misc\n\nPeter\tB-per\nBlackburn\tI-per\n",
    "tsv": b"sentence\tlabel\nit 's a charming journey \t1\nunflinchingly bleak\t0\nfun\t1\n",
    "json": json.dumps({"train": [[[60, 64], [], [62]], [[0, 127]]], "valid": [[[55]]]}).encode(),
    "parallel": "Go.\tVa !\tCC-BY 2.0\nHi.\tSalut !\n\nRun!\tCours !\n".encode("utf-8"),
    "vocab": json.dumps(Vocabulary(["a", "b", "é"]).to_dict()).encode("utf-8"),
}
if midi is not None:
    roll = np.zeros((6, 128), np.uint8)
    roll[0:2, 60] = roll[1:4, 64] = roll[5, 67] = 1
    VALID["midi"] = midi.midi_bytes(roll, steps_per_beat=2, fmt=1)

READERS = {
    "text": [readers.read_text, readers.read_lines, lambda p: list(mm.iter_text_chunks(p, 16)),
             lambda p: mm.build_vocab(p, chunk_bytes=16)],
    "conll": [readers.read_conll, lambda p: readers.read_conll(p, token_col=1, tag_col=0)],
    "tsv": [readers.read_tsv, lambda p: readers.read_tsv(p, header=False)],
    "json": [readers.read_piano_roll_json],
    "parallel": [readers.read_parallel],
    "vocab": [Vocabulary.load],
}
if midi is not None:
    READERS["midi"] = [midi.read_midi, lambda p: midi.read_midi_roll(p, steps_per_beat=2)]


def every_reader(path) -> None:
    """Each reader of every format on ``path``: a result or a SeqModelsError (anything else fails)."""
    for fns in READERS.values():
        for read in fns:
            try:
                read(path)
            except SeqModelsError:
                pass


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "input"


def test_the_valid_seeds_are_read(scratch):
    for kind, fns in READERS.items():
        scratch.write_bytes(VALID[kind])
        for read in fns:
            read(scratch)                                # the mutations start from files that parse


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes(scratch, data):
    scratch.write_bytes(data)
    every_reader(scratch)


@FUZZ
@given(data=st.text(alphabet=st.sampled_from(list("ab é\t\n\r[]{},:\"0123456789-OB")), max_size=200))
def test_random_text_with_structure_characters(scratch, data):
    scratch.write_bytes(data.encode("utf-8"))
    every_reader(scratch)


@st.composite
def mutated(draw):
    kind = draw(st.sampled_from(sorted(VALID)))
    data = bytearray(VALID[kind])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from([b"\t", b"\n", b"\0", b"\xff", b"\xc3", b" ", b"[", b"}", b"-1",
                                                b"128", b'"', b"\r", b"\xef\xbb\xbf", b"\x90\x3c"]))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[at:]
        elif op == "duplicate":
            data[at:at] = data[at:at + draw(st.integers(1, 16))]
    return kind, bytes(data)


@FUZZ
@given(case=mutated())
def test_mutated_valid_files(scratch, case):
    kind, data = case
    scratch.write_bytes(data)
    for read in READERS[kind]:
        try:
            read(scratch)
        except SeqModelsError as e:
            assert str(scratch) in str(e), e                           # names the file


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                     max_leaves=10)


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(["format", "format_version", "level", "lowercase", "punctuation",
                                                "tokens", "extra"]), _json, max_size=3),
       tokens=st.lists(st.one_of(st.text(max_size=3), st.integers(), st.none(), st.lists(st.integers(), max_size=1)),
                       max_size=6),
       drop=st.sampled_from([None, "format", "tokens", "level"]))
def test_vocabulary_from_structured_dicts(changes, tokens, drop):
    d = {**Vocabulary(["a", "b"]).to_dict(), **changes}
    if "tokens" not in changes:
        d["tokens"] = ["<PAD>", "<UNK>", "<EOS>", *tokens]
    d.pop(drop, None)
    try:
        v = Vocabulary.from_dict(d)
    except DataError as e:
        assert "vocabulary dict" in str(e)
    else:
        assert v.tokens == d["tokens"] and len(set(v.tokens)) == len(v)


@FUZZ
@given(value=_json)
def test_vocabulary_from_anything(value):
    try:
        Vocabulary.from_dict(value)
    except DataError:
        pass


@pytest.mark.parametrize("kind", ["json", "vocab"])
def test_deeply_nested_json_is_a_data_error(scratch, kind):
    scratch.write_bytes(b"[" * 200_000)                  # json.loads raises RecursionError on this
    read = READERS[kind][0]
    with pytest.raises(DataError, match=f"{scratch}: JSON nested too deeply"):
        read(scratch)


def test_reader_options_out_of_range_are_config_errors(scratch):
    scratch.write_bytes(VALID["conll"])
    with pytest.raises(ConfigError, match="token_col: expected an int column index.*'0'"):
        readers.read_conll(scratch, token_col="0")
    with pytest.raises(ConfigError, match="header: expected True, False or 'auto', got 'yes'"):
        readers.read_tsv(scratch, header="yes")
    with pytest.raises(ConfigError, match="sep: expected a non-empty str, got ''"):
        readers.read_parallel(scratch, sep="")
