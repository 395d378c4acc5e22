"""Tokenizers and Vocabulary: exact ids, round trips, unknown handling, persistence, real corpora."""

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqmodels.core.errors import ConfigError, DataError, DTypeError, ShapeError
from seqmodels.text import Vocabulary, char_tokenize, word_tokenize
from seqmodels.text import vocab as vocab_module

FAST = settings(max_examples=60, deadline=None)


# ------------------------------------------------------------------------------------------ tokenizers
def test_char_tokenize_keeps_every_character():
    assert char_tokenize("a b\n!é") == ["a", " ", "b", "\n", "!", "é"]
    assert char_tokenize("") == []
    with pytest.raises(DTypeError, match="bytes"):
        char_tokenize(b"abc")


@pytest.mark.parametrize("mode, expected", [
    ("tokens", ["it", "'", "s", "déjà", "-", "vu", ",", "n", "'", "est", "-", "ce", "pas", "?",
                "3", ".", "5"]),
    ("strip", ["it", "s", "déjà", "vu", "n", "est", "ce", "pas", "3", "5"]),
    ("keep", ["it's", "déjà-vu,", "n'est-ce", "pas?", "3.5"]),
])
def test_word_tokenize_punctuation_modes(mode, expected):
    assert word_tokenize("It's  Déjà-vu,\tn'est-ce pas?\n3.5", punctuation=mode) == expected


def test_word_tokenize_lowercase_flag_and_bad_mode():
    assert word_tokenize("Hello World!", lowercase=False) == ["Hello", "World", "!"]
    with pytest.raises(ConfigError, match="punctuation"):
        word_tokenize("x", punctuation="remove")


@FAST
@given(st.text(max_size=60))
def test_strip_is_tokens_without_punctuation_and_keep_is_split(text):
    tokens = word_tokenize(text, punctuation="tokens")
    assert word_tokenize(text, punctuation="strip") == [t for t in tokens if re.fullmatch(r"\w+", t)]
    assert word_tokenize(text, punctuation="keep") == text.lower().split()
    assert "".join(tokens) == "".join(text.lower().split())  # nothing but whitespace is lost


# ------------------------------------------------------------------------------------------ build
def test_specials_come_first_with_fixed_ids():
    v = Vocabulary(["a", "b"])
    assert v.tokens == ["<PAD>", "<UNK>", "<EOS>", "a", "b"]
    assert (v.pad_id, v.unk_id, v.eos_id) == (0, 1, 2)
    assert len(v) == 5 and "a" in v and "<EOS>" in v and "z" not in v


def test_build_orders_by_count_with_ties_by_first_appearance():
    seqs = [["b", "a", "c"], ["a", "b", "d", "d"]]
    assert Vocabulary.build(seqs).tokens[3:] == ["b", "a", "d", "c"]
    assert Vocabulary.build(seqs, max_size=2).tokens[3:] == ["b", "a"]
    assert Vocabulary.build(seqs, min_count=2).tokens[3:] == ["b", "a", "d"]
    assert Vocabulary.build(seqs, order="first").tokens[3:] == ["b", "a", "c", "d"]
    assert Vocabulary.build(seqs, order="sorted").tokens[3:] == ["a", "b", "c", "d"]


def test_build_skips_special_strings_and_handles_empty_corpus():
    assert Vocabulary.build([["a", "<EOS>", "<PAD>"]]).tokens == ["<PAD>", "<UNK>", "<EOS>", "a"]
    assert Vocabulary.build([]).tokens == ["<PAD>", "<UNK>", "<EOS>"]
    assert len(Vocabulary.from_text("")) == 3
    assert len(Vocabulary.from_text("", level="word")) == 3


@pytest.mark.parametrize("kwargs", [{"max_size": 0}, {"max_size": -2}, {"min_count": 0},
                                    {"order": "alphabetical"}, {"level": "byte"}])
def test_build_rejects_bad_options(kwargs):
    with pytest.raises(ConfigError):
        Vocabulary.build([["a"]], **kwargs)


def test_build_rejects_text_and_bad_tokens():
    with pytest.raises(DTypeError, match="from_text"):
        Vocabulary.build("abc")
    with pytest.raises(DataError, match="single characters.*'ab'"):
        Vocabulary.build([["ab"]], level="char")
    with pytest.raises(DataError, match="duplicate token 'a' at ids 3 and 4"):
        Vocabulary(["a", "a"])
    with pytest.raises(DataError, match="reserved for id 2"):
        Vocabulary(["<EOS>"])


def test_from_text_lines_as_sequences_and_settings():
    v = Vocabulary.from_text("Ab\nbB\n", lines_as_sequences=True, lowercase=True)
    assert v.tokens[3:] == ["b", "a"] and "\n" not in v
    assert Vocabulary.from_text("ab\nba").tokens[3:] == ["a", "b", "\n"]
    w = Vocabulary.from_text("The cat. The DOG!", level="word", punctuation="strip")
    assert w.tokens[3:] == ["the", "cat", "dog"] and w.lowercase is True
    assert w.tokenize("A Cat!") == ["a", "cat"]


# ------------------------------------------------------------------------------------------ encode
def test_char_encode_exact_ids_and_eos():
    v = Vocabulary.from_text("hello world")  # l:3 o:4 h:5 e:6 ' ':7 w:8 r:9 d:10
    ids = v.encode("hello", add_eos=True)
    assert ids.dtype == np.int32
    assert ids.tolist() == [5, 6, 3, 3, 4, 2]
    assert v.decode(ids) == "hello"
    assert v.encode(["h", "<EOS>", "z"], unk="map").tolist() == [5, 2, 1]


def test_char_unknown_raises_naming_characters_and_positions():
    v = Vocabulary.from_text("abc")
    with pytest.raises(DataError) as err:
        v.encode("abxcé€")
    msg = str(err.value)
    assert "'x' (U+0078) at position 2" in msg and "'é' (U+00E9) at position 4" in msg
    assert "'€' (U+20AC) at position 5" in msg and "unk='map'" in msg
    assert v.encode("abxcé", unk="map").tolist() == [3, 4, 1, 5, 1]


def test_word_level_maps_unknown_by_default_and_can_raise():
    v = Vocabulary.from_text("the cat sat.", level="word")
    assert v.encode("The dog sat.").tolist() == [3, 1, 5, 6]
    with pytest.raises(DataError, match="'dog' at position 1"):
        v.encode("the dog", unk="error")
    with pytest.raises(ConfigError):
        v.encode("the", unk="ignore")


def test_encode_rejects_non_token_input():
    v = Vocabulary.from_text("ab")
    with pytest.raises(DTypeError, match="decode"):
        v.encode(np.array([3, 4]))
    with pytest.raises(DTypeError, match=r"tokens\[1\]"):
        v.encode(["a", 7])


def test_encode_lines_ends_each_line_with_eos():
    v = Vocabulary.from_text("ab\nba", lines_as_sequences=True)
    out = v.encode_lines(["ab", "b"])
    assert [a.tolist() for a in out] == [[3, 4, 2], [4, 2]]


def test_lowercase_setting_is_applied_when_encoding():
    v = Vocabulary.from_text("abc", lowercase=True)
    assert v.encode("ABC").tolist() == v.encode("abc").tolist()
    assert v.decode(v.encode("CaB")) == "cab"


@pytest.mark.parametrize("chunk", [1, 3, 1 << 22])
def test_vectorised_path_matches_dict_path(monkeypatch, chunk):
    monkeypatch.setattr(vocab_module, "_CHUNK", chunk)
    text = "naïve café 😀 — ok\n" * 5
    v = Vocabulary.from_text(text[:-10])
    probe = text + "Ω"
    assert v.encode(probe, unk="map").tolist() == v.encode(list(probe), unk="map").tolist()


@FAST
@given(st.text(max_size=80), st.text(max_size=40))
def test_char_encode_matches_lookup_for_any_text(corpus, probe):
    v = Vocabulary.from_text(corpus)
    ids = v.encode(probe, unk="map")
    expected = [v.token_to_id(c) if c in v else 1 for c in probe]
    assert ids.tolist() == expected


# ------------------------------------------------------------------------------------------ decode
@FAST
@given(st.text(max_size=200))
def test_char_round_trip(text):
    v = Vocabulary.from_text(text)
    assert v.decode(v.encode(text)) == text
    assert v.decode(v.encode(text, add_eos=True)) == text


@FAST
@given(st.text(max_size=100), st.sampled_from(["tokens", "strip", "keep"]))
def test_word_round_trip_is_the_tokenization(text, mode):
    v = Vocabulary.from_text(text, level="word", punctuation=mode)
    assert v.decode(v.encode(text)) == " ".join(v.tokenize(text))


def test_decode_eos_and_specials_options():
    v = Vocabulary.from_text("ab")  # a:3 b:4
    ids = [3, 0, 4, 2, 3, 1]
    assert v.decode(ids) == "ab"
    assert v.decode(ids, stop_at_eos=False) == "aba"
    assert v.decode(ids, skip_specials=False) == "a<PAD>b"
    assert v.decode(ids, skip_specials=False, stop_at_eos=False) == "a<PAD>b<EOS>a<UNK>"
    w = Vocabulary.from_text("x y", level="word")
    assert w.decode([3, 4, 2, 3]) == "x y"
    assert w.decode([3, 2, 4], stop_at_eos=False, skip_specials=False) == "x <EOS> y"
    assert v.decode([]) == "" and v.decode(np.array([], dtype=np.float64)) == ""


def test_decode_rejects_bad_ids():
    v = Vocabulary.from_text("ab")
    with pytest.raises(DataError, match=r"ids\[1\] = 5 is out of range.*\[0, 5\)"):
        v.decode([3, 5])
    with pytest.raises(DataError, match="-1"):
        v.decode([-1])
    with pytest.raises(ShapeError):
        v.decode([[3, 4]])
    with pytest.raises(DTypeError):
        v.decode([3.0])


def test_token_id_lookups():
    v = Vocabulary.from_text("ab")
    assert v.token_to_id("b") == 4 and v.id_to_token(4) == "b" and v.id_to_token(np.int64(0)) == "<PAD>"
    with pytest.raises(DataError, match="'z' is not in the vocabulary"):
        v.token_to_id("z")
    with pytest.raises(DataError, match="out of range"):
        v.id_to_token(5)


# ------------------------------------------------------------------------------------------ persistence
def test_dict_round_trip_is_json_and_keeps_settings():
    v = Vocabulary.from_text("The cat, the hat!", level="word", punctuation="keep", lowercase=False)
    d = json.loads(json.dumps(v.to_dict()))
    w = Vocabulary.from_dict(d)
    assert w == v and w.tokens == v.tokens
    assert (w.level, w.lowercase, w.punctuation) == ("word", False, "keep")
    assert w.tokenize("The cat,") == ["The", "cat,"]


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d["tokens"].append("a"), "duplicate token 'a'"),
    (lambda d: d["tokens"].remove("<UNK>"), "specials"),
    (lambda d: d.__setitem__("tokens", ["<UNK>", "<PAD>", "<EOS>", "a"]), "specials"),
    (lambda d: d.__setitem__("format", "other"), "format"),
    (lambda d: d.pop("level"), "'level'"),
    (lambda d: d["tokens"].append("xy"), "single characters"),
    (lambda d: d["tokens"].append(5), "expected a str"),
])
def test_from_dict_validates(mutate, match):
    d = Vocabulary.from_text("ab").to_dict()
    mutate(d)
    with pytest.raises(DataError, match=match):
        Vocabulary.from_dict(d)


def test_save_load_atomic_round_trip(tmp_path):
    v = Vocabulary.from_text("héllo wörld 😀\n")
    path = tmp_path / "vocab.json"
    path.write_text("old contents")
    assert v.save(path) == path
    assert Vocabulary.load(path) == v
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vocab.json"]  # no temp file left
    assert json.loads(path.read_text(encoding="utf-8"))["tokens"][3] == "l"


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.json.*not found"):
        Vocabulary.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format":\n  nope}')
    with pytest.raises(DataError, match=r"bad\.json: invalid JSON at line 2"):
        Vocabulary.load(bad)
    dup = tmp_path / "dup.json"
    d = Vocabulary.from_text("ab").to_dict()
    d["tokens"].append("b")
    dup.write_text(json.dumps(d))
    with pytest.raises(DataError, match=r"dup\.json.*duplicate token 'b' at ids 4 and 5"):
        Vocabulary.load(dup)


# ------------------------------------------------------------------------------------------ real corpora
def test_tiny_shakespeare_vocabulary_and_round_trip(shared_data):
    from seqmodels.data import read_text
    text = read_text(shared_data / "tinyshakespeare" / "input.txt")
    v = Vocabulary.from_text(text, order="sorted")
    assert len(v) == 65 + 3 and v.tokens[3:] == sorted(set(text))
    ids = v.encode(text)
    assert ids.shape == (1_115_394,) and ids.min() >= 3
    assert v.decode(ids) == text


def test_dinosaur_names_have_26_letters(shared_data):
    from seqmodels.data import read_text
    text = read_text(shared_data / "dinos" / "dinos.txt")
    v = Vocabulary.from_text(text, lines_as_sequences=True, lowercase=True, order="sorted")
    assert v.tokens[3:] == list("abcdefghijklmnopqrstuvwxyz")
    seqs = v.encode_lines(text.split("\n"))
    assert len(seqs) == 1536 and all(s[-1] == v.eos_id for s in seqs)
