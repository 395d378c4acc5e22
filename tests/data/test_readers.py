"""Readers: strict text decoding, CoNLL, TSV, piano-roll JSON, parallel pairs; errors name file + line."""

import json
import re

import pytest

from seqmodels.core.errors import ConfigError, DataError
from seqmodels.data import (Sentence, read_conll, read_lines, read_parallel, read_piano_roll_json,
                            read_text, read_tsv)


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


# ------------------------------------------------------------------------------------------ read_text
def test_read_text_strips_bom_and_normalises_crlf(tmp_path):
    path = write(tmp_path, "a.txt", b"\xef\xbb\xbfline one\r\nline two\r\n")
    assert read_text(path) == "line one\nline two\n"


@pytest.mark.parametrize("data, match", [
    (b"", r"file is empty \(0 bytes\)"),
    (b"\xef\xbb\xbf", "only a UTF-8 byte-order mark"),
    (b"ab\ncd\x00ef", r"NUL byte at byte offset 5 \(line 2\)"),
    (b"\xff\xfea\x00", "UTF-16"),
    (b"abc\nd\xe9f", r"not valid UTF-8 at byte offset 5 \(line 2\): bytes e9"),
    (b"\xef\xbb\xbfab\xff", r"byte offset 5 \(line 1\): bytes ff"),
])
def test_read_text_rejects_bad_files_naming_path_and_offset(tmp_path, data, match):
    path = write(tmp_path, "bad.txt", data)
    with pytest.raises(DataError, match=match) as err:
        read_text(path)
    assert str(path) in str(err.value)


def test_read_text_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nope.txt")) + ": file not found"):
        read_text(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="is a directory"):
        read_text(tmp_path)


def test_every_reader_checks_the_file(tmp_path):
    path = write(tmp_path, "latin1.txt", "café\tO\n".encode("latin-1"))
    for reader in (read_lines, read_conll, read_tsv, read_piano_roll_json, read_parallel):
        with pytest.raises(DataError, match="latin1.txt: not valid UTF-8 at byte offset 3"):
            reader(path)


def test_read_lines(tmp_path):
    path = write(tmp_path, "names.txt", "Aa\r\n\n  \nBb\nCc")  # no trailing newline
    assert read_lines(path) == ["Aa", "Bb", "Cc"]
    assert read_lines(path, skip_blank=False) == ["Aa", "", "  ", "Bb", "Cc"]


# ------------------------------------------------------------------------------------------ CoNLL
def test_read_conll_tab_file_with_docstart_and_no_trailing_blank(tmp_path):
    text = "-DOCSTART-\tO\n\nEU\tB-org\nNew York\tB-loc\n\t\n\n\nPeter\tB-per\n.\tO"
    assert read_conll(write(tmp_path, "a.conll", text)) == [
        Sentence(["EU", "New York"], ["B-org", "B-loc"], 3),
        Sentence(["Peter", "."], ["B-per", "O"], 8),
    ]


def test_read_conll_space_separated_columns(tmp_path):
    text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nJapan NNP B-NP B-LOC\n\n"
    path = write(tmp_path, "c.conll", text)
    assert read_conll(path) == [Sentence(["EU", "rejects"], ["B-ORG", "O"], 3),
                                Sentence(["Japan"], ["B-LOC"], 6)]
    assert [s.tags for s in read_conll(path, tag_col=1)] == [["NNP", "VBZ"], ["NNP"]]


def test_read_conll_too_few_columns_names_file_and_line(tmp_path):
    path = write(tmp_path, "bad.conll", "a\tO\nb\tO\n\nc\nd\tO\n")
    with pytest.raises(DataError, match=r"bad\.conll, line 4: expected at least 2 columns.*got 1: 'c'"):
        read_conll(path)
    with pytest.raises(DataError, match="line 1: expected at least 4 columns"):
        read_conll(write(tmp_path, "b.conll", "a\tb\tO\n"), tag_col=3)


def test_read_conll_inconsistent_columns_and_empty_fields(tmp_path):
    with pytest.raises(DataError, match="line 2: 3 columns, but line 1 has 2"):
        read_conll(write(tmp_path, "x.conll", "a\tO\nb\tX\tO\n"))
    with pytest.raises(DataError, match="line 1: empty token"):
        read_conll(write(tmp_path, "y.conll", " \t \tO\n"))
    with pytest.raises(ConfigError):
        read_conll(write(tmp_path, "z.conll", "a\tO\n"), tag_col="1")


# ------------------------------------------------------------------------------------------ TSV
def test_read_tsv_strips_space_before_tab(tmp_path):
    path = write(tmp_path, "s.tsv", "a good film \t1\nbad . \t0\n\n")
    assert read_tsv(path) == (["a good film", "bad ."], ["1", "0"])


@pytest.mark.parametrize("text, header, expected_first", [
    ("sentence\tlabel\ngood\t1\nbad\t0\n", "auto", "good"),
    ("text\tsentiment\ngood\tpos\nbad\tneg\nok\tpos\nmeh\tneg\n", "auto", "good"),
    ("good\t1\nbad\t0\nfine\t1\n", "auto", "good"),
    ("good\tpos\nbad\tneg\nok\tpos\n", "auto", "good"),  # 'neg' appears once: not a header
    ("good\t1\nbad\t0\n", True, "bad"),
    ("sentence\tlabel\ngood\t1\n", False, "sentence"),
])
def test_read_tsv_header(tmp_path, text, header, expected_first):
    texts, labels = read_tsv(write(tmp_path, "h.tsv", text), header=header)
    assert texts[0] == expected_first and "label" not in labels[1:]


def test_read_tsv_malformed_lines_name_the_line(tmp_path):
    with pytest.raises(DataError, match=r"m\.tsv, line 3: expected at least 2 tab-separated columns"):
        read_tsv(write(tmp_path, "m.tsv", "a\t1\nb\t0\nno label here\n"))
    with pytest.raises(DataError, match="line 2: 3 tab-separated columns, but line 1 has 2"):
        read_tsv(write(tmp_path, "n.tsv", "a\t1\nb\tc\t0\n"))
    with pytest.raises(DataError, match="line 2: empty label"):
        read_tsv(write(tmp_path, "o.tsv", "a\t1\nb\t \n"))
    assert read_tsv(write(tmp_path, "p.tsv", "0\ta\n1\tb\n"), text_col=1, label_col=0) == (["a", "b"],
                                                                                          ["0", "1"])


# ------------------------------------------------------------------------------------------ piano roll
def test_read_piano_roll_json(tmp_path):
    data = {"train": [[[60, 64, 67], [], [62]], [[21], [108]]], "test": [[[0, 127]]]}
    assert read_piano_roll_json(write(tmp_path, "r.json", json.dumps(data))) == data


@pytest.mark.parametrize("data, match", [
    ({"train": [[[60]], [[60], [61, 128]]]}, r"split 'train', sequence 1, step 1: note 128"),
    ({"valid": [[[60.0]]]}, r"split 'valid', sequence 0, step 0: note 60.0"),
    ({"train": [[[True]]]}, "note True"),
    ({"train": [[[-1]]]}, "note -1"),
    ({"train": [[60]]}, "sequence 0, step 0: expected a list of MIDI note numbers"),
    ({"train": {"a": 1}}, "split 'train': expected a list of sequences"),
    ([[[60]]], "expected a JSON object mapping split names"),
])
def test_read_piano_roll_json_validates(tmp_path, data, match):
    with pytest.raises(DataError, match=match):
        read_piano_roll_json(write(tmp_path, "r.json", json.dumps(data)))


def test_read_piano_roll_bad_json_names_line(tmp_path):
    with pytest.raises(DataError, match=r"r\.json: invalid JSON at line 2, column"):
        read_piano_roll_json(write(tmp_path, "r.json", '{"train":\n [[[60,]]]}'))


# ------------------------------------------------------------------------------------------ parallel
def test_read_parallel(tmp_path):
    path = write(tmp_path, "fra.txt", "Go.\tVa !\nRun!\tCours\u202f!\tCC-BY 2.0 (France)\n\n")
    assert read_parallel(path) == (["Go.", "Run!"], ["Va !", "Cours\u202f!"])
    assert read_parallel(write(tmp_path, "p.txt", "a ||| b\n"), sep="|||") == (["a"], ["b"])


def test_read_parallel_errors_name_the_line(tmp_path):
    with pytest.raises(DataError, match=r"f\.txt, line 2: expected at least 2 fields separated by '\\t'"):
        read_parallel(write(tmp_path, "f.txt", "Go.\tVa !\nno tab here\n"))
    with pytest.raises(DataError, match="line 1: empty target"):
        read_parallel(write(tmp_path, "g.txt", "Go.\t \n"))
    with pytest.raises(ConfigError):
        read_parallel(write(tmp_path, "h.txt", "a\tb\n"), sep="")


# ------------------------------------------------------------------------------------------ real data
@pytest.mark.parametrize("name, sentences, tokens", [
    ("wnut17train.conll", 3394, 62730),        # sentences end with a tab-only line or a blank line
    ("emerging.dev.conll", 1009, 15733),
    ("emerging.test.annotated", 1287, 23394),
])
def test_wnut17_files_parse(shared_data, name, sentences, tokens):
    sents = read_conll(shared_data / "wnut17" / name)
    assert len(sents) == sentences and sum(len(s.tokens) for s in sents) == tokens
    tags = {t for s in sents for t in s.tags}
    assert "O" in tags and all(t == "O" or re.fullmatch(r"[BI]-[a-z-]+", t) for t in tags)
    assert all(len(s.tokens) == len(s.tags) > 0 for s in sents)


@pytest.mark.parametrize("name, n, pos", [("train", 67349, 37569), ("dev", 872, 444), ("test", 1821, 909)])
def test_sst2_files_parse(shared_data, name, n, pos):
    texts, labels = read_tsv(shared_data / "sst2" / f"{name}.tsv")
    assert len(texts) == n and labels.count("1") == pos and set(labels) == {"0", "1"}
    assert not any(t != t.strip() or not t for t in texts)


@pytest.mark.parametrize("name, sizes, low, high", [
    ("jsb_chorales", (229, 76, 77), 43, 96),
    ("piano_midi", (87, 12, 25), 21, 108),
])
def test_polyphonic_files_parse(shared_data, name, sizes, low, high):
    data = read_piano_roll_json(shared_data / "polyphonic" / f"{name}.json")
    assert tuple(len(data[s]) for s in ("train", "valid", "test")) == sizes
    notes = [n for seqs in data.values() for seq in seqs for step in seq for n in step]
    assert (min(notes), max(notes)) == (low, high)


def test_fra_eng_parses(shared_data):
    src, tgt = read_parallel(shared_data / "fra-eng" / "fra.txt")
    assert len(src) == len(tgt) == 142787
    assert (src[0], tgt[0]) == ("Go.", "Va !")
    assert sum("\u202f" in t for t in tgt) > 1000  # narrow no-break spaces are kept as content


def test_dinos_and_shakespeare_read(shared_data):
    names = read_lines(shared_data / "dinos" / "dinos.txt")
    assert len(names) == 1536 and names[0] == "Aachenosaurus" and names[-1] == "Zuul"
    assert len(read_text(shared_data / "tinyshakespeare" / "input.txt")) == 1_115_394
