"""The error catalogue: every kind of bad input, through the library and the command line.

Library calls raise the documented SeqModelsError subclass whose message names the file/line/argument and
the value; the command line exits with the documented code and prints ONE line on stderr, no traceback
(argparse usage errors too: exit 2, "(see seqmodels CMD --help)"). Codes: 2 usage, 3 ConfigError,
4 DataError / unreadable file, 5 CheckpointError, 6 ShapeError/DTypeError, 7 NonFiniteError.
"""

import importlib.util
import json
import re

import numpy as np
import pytest

import seqmodels as sm
from seqmodels.cli.main import main
from seqmodels.core.errors import (CheckpointError, ConfigError, DataError, DTypeError, NonFiniteError,
                                   SeqModelsError, ShapeError)
from seqmodels.core.functional import softmax_cross_entropy
from seqmodels.data import readers
from seqmodels.io import load_checkpoint, save_checkpoint
from seqmodels.models.language_model import LanguageModel
from seqmodels.sampling import sample_next
from seqmodels.text import StreamBatcher, Vocabulary, pad_sequences
from seqmodels.text import memmap
from seqmodels.training.loop import TrainConfig
from seqmodels.training.optim import make_optimizer

try:
    from seqmodels.data import midi
except ImportError:   # NOTE: MIDI is another helper's module; without it the MIDI rows below are skipped
    midi = None

CORPUS = "the cat sat on the mat\nthe dog sat on the log\n" * 20
TINY = ["--hidden", "8", "--layers", "1", "--seq-len", "10", "--batch-size", "4", "--no-progress"]


def one_line_error(capsys, argv, code, *needles):
    """Run the CLI in-process: exit ``code``, one stderr line without a traceback, naming ``needles``."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == code, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


def usage_error(capsys, argv, *needles):
    """argparse's errors: exit 2, one line naming the argument and the value, and where to get help."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert e.value.code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].endswith("--help)"), err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])


# ------------------------------------------------------------------------------- files
BAD_FILES = {
    "missing": (None, ["file not found"]),
    "empty": (b"", ["file is empty (0 bytes)"]),
    "binary": (b"abc\ndef\x00\x01\x02", ["NUL byte at byte offset 7 (line 2)"]),
    "latin-1": (b"ok\ncaf\xe9 au lait\n", ["not valid UTF-8 at byte offset 6 (line 2)", "e9"]),
    "utf-16": ("hi\n".encode("utf-16"), ["UTF-16 byte-order mark", "ff fe"]),
}
TEXT_READERS = {
    "read_text": readers.read_text, "read_lines": readers.read_lines, "read_conll": readers.read_conll,
    "read_tsv": readers.read_tsv, "read_piano_roll_json": readers.read_piano_roll_json,
    "read_parallel": readers.read_parallel, "memmap.build_vocab": memmap.build_vocab,
    "memmap.encode_corpus": lambda p: memmap.encode_corpus(p, Vocabulary(["a"]), progress=False),
}


def bad_file(tmp_path, kind):
    path = tmp_path / f"{kind}.txt"
    data, needles = BAD_FILES[kind]
    if data is not None:
        path.write_bytes(data)
    return path, needles


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.parametrize("reader", TEXT_READERS)
def test_unreadable_files_in_the_readers(tmp_path, reader, kind):
    path, needles = bad_file(tmp_path, kind)
    with pytest.raises(DataError) as e:
        TEXT_READERS[reader](path)
    assert str(path) in str(e.value) and all(n in str(e.value) for n in needles), e.value


@pytest.mark.parametrize("kind", BAD_FILES)
def test_unreadable_vocabulary_and_midi_files(tmp_path, kind):
    path, needles = bad_file(tmp_path, kind)
    with pytest.raises(DataError, match=re.escape(str(path))):
        Vocabulary.load(path)
    if midi is not None:
        with pytest.raises(DataError, match=re.escape(str(path))):
            midi.read_midi(path)


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.parametrize("command", [
    ["train", "{f}", "--out", "{o}"], ["ngram", "{f}"],
    ["tag", "train", "--train", "{f}", "--out", "{o}"], ["classify", "train", "--train", "{f}", "--out", "{o}"],
    ["translate", "train", "--train", "{f}", "--out", "{o}"],
], ids=lambda c: " ".join(c[:2]) if isinstance(c, list) else c)
def test_unreadable_files_on_the_command_line(tmp_path, capsys, command, kind):
    module = {"tag": "tag", "classify": "classify", "translate": "translate"}.get(command[0], "lm")
    if importlib.util.find_spec(f"seqmodels.cli.{module}") is None:
        pytest.skip(f"no {command[0]} command in this build")
    path, needles = bad_file(tmp_path, kind)
    argv = [a.format(f=path, o=tmp_path / "out") for a in command]
    one_line_error(capsys, argv, 4, path, *needles)
    assert not (tmp_path / "out" / "model").exists()


def test_a_corpus_shorter_than_one_window(tmp_path, capsys):
    lm = LanguageModel(Vocabulary.from_text(CORPUS), "lstm", 4, seed=0)
    with pytest.raises(DataError, match=r"batch_size \* \(seq_len \+ 1\) = 4 \* 11 = 44 tokens, got 9"):
        lm.batcher("the cat\n", batch_size=4, seq_len=10)
    path = tmp_path / "short.txt"
    path.write_text("a cat\n")
    one_line_error(capsys, ["train", path, "--out", tmp_path / "o", *TINY], 4, "too short", "got 7")


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("read, name, data, needle", [
    (readers.read_conll, "a.conll", "EU\tB-org\nrejects\tO\n\nPeter\n", "line 4: expected at least 2 columns"),
    (readers.read_conll, "b.conll", "EU\tB-org\tx\nrejects\tO\n", "line 2: 2 columns, but line 1 has 3"),
    (readers.read_conll, "c.conll", "EU\tB-org\n\tO\n", "line 2: empty token column"),
    (readers.read_tsv, "a.tsv", "good\t1\nbad one\t0\nno label here\n", "line 3: expected at least 2 tab-separated"),
    (readers.read_tsv, "b.tsv", "good\t1\nbad\tone\t0\n", "line 2: 3 tab-separated columns, but line 1 has 2"),
    (readers.read_tsv, "c.tsv", "good\t1\n \t0\n", "line 2: empty text column"),
    (readers.read_parallel, "a.txt", "Go.\tVa !\nHi.\n", "line 2: expected at least 2 fields"),
    (readers.read_piano_roll_json, "a.json", '{"train": [[[60], [200]]]}',
     "split 'train', sequence 0, step 1: note 200 is not a MIDI note number"),
    (readers.read_piano_roll_json, "b.json", '{"train": [[[60], [61.5]]]}', "note 61.5"),
    (readers.read_piano_roll_json, "c.json", '{"train": [[60, 61]]}', "sequence 0, step 0: expected a list"),
    (readers.read_piano_roll_json, "d.json", '{"train": [[[60]]],\n "valid": [[[61]]', "invalid JSON at line 2"),
    (readers.read_piano_roll_json, "e.json", "[1, 2]", "expected a JSON object"),
    (Vocabulary.load, "v.json", '{"format": "seqmodels.Vocabulary", "format_version": 1, "level": "char", '
     '"lowercase": false, "punctuation": "tokens", "tokens": ["<PAD>", "<UNK>", "<EOS>", "a", "a"]}',
     "duplicate token 'a' at ids 3 and 4"),
])
def test_malformed_lines_name_the_file_and_line(tmp_path, read, name, data, needle):
    path = write(tmp_path, name, data)
    with pytest.raises(DataError) as e:
        read(path)
    assert str(path) in str(e.value) and needle in str(e.value), e.value


@pytest.mark.skipif(midi is None, reason="seqmodels.data.midi is not part of this build")
@pytest.mark.parametrize("cut, needle", [(10, "byte 10: track count needs 2 byte(s)"), (-3, "truncated"),
                                         (4, "header")])
def test_malformed_midi_names_the_file_and_byte(tmp_path, cut, needle):
    roll = np.zeros((4, 128), np.uint8)
    roll[0:2, 60] = 1
    data = midi.midi_bytes(roll)
    path = write(tmp_path, "a.mid", data[:cut])
    with pytest.raises(DataError) as e:
        midi.read_midi(path)
    assert str(path) in str(e.value) and needle in str(e.value) and "byte" in str(e.value), e.value
    with pytest.raises(DataError, match=r"MThd.*got b'MTrk'"):
        midi.parse_midi(b"MTrk" + data[4:], "x.mid")


# ------------------------------------------------------------------------------- vocabulary and prime
def test_a_vocabulary_of_size_zero(tmp_path, capsys):
    with pytest.raises(ConfigError, match="vocab: has no tokens besides <PAD>, <UNK>, <EOS>"):
        LanguageModel(Vocabulary(), "lstm", 4)
    with pytest.raises(DataError, match=r"first tokens must be the specials .* got \[\]"):
        Vocabulary.from_dict({**Vocabulary().to_dict(), "tokens": []})
    path = write(tmp_path, "blank.txt", "\n\n\n")
    one_line_error(capsys, ["train", path, "--out", tmp_path / "o", *TINY], 4, path, "no tokens")


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    lm = LanguageModel(Vocabulary.from_text(CORPUS, lines_as_sequences=True, order="sorted"), "lstm", 6, seed=0)
    return lm, lm.save(tmp_path_factory.mktemp("lm") / "model")


def test_prime_out_of_vocabulary(lm_dir, capsys):
    lm, path = lm_dir
    with pytest.raises(DataError, match=r"^prime: .*'Z' \(U\+005A\) at position 0, 'b' \(U\+0062\) at position 2"):
        lm.sample(1, 5, prime="Zebra")
    one_line_error(capsys, ["sample", path, "--prime", "Zebra"], 4, "--prime", "'Zbr'")


# ------------------------------------------------------------------------------- hyperparameters
@pytest.mark.parametrize("make, err, needle", [
    (lambda v: LanguageModel(v, "lstm", 0), ConfigError, "hidden_size: expected an integer >= 1, got 0"),
    (lambda v: LanguageModel(v, "gru", 4, 0), ConfigError, "num_layers: expected an integer >= 1, got 0"),
    (lambda v: LanguageModel(v, "lstm", 2.5), DTypeError, "hidden_size: expected an integer, got 2.5"),
    (lambda v: sm.RNN(3, 0), ConfigError, "hidden_size: expected an integer >= 1, got 0"),
    (lambda v: LanguageModel(v, "lstm", 4, dropout=1.0), ConfigError, "dropout: expected a value in [0, 1), got 1.0"),
    (lambda v: LanguageModel(v, "transformer"), ConfigError,
     "cell: expected one of 'lstm', 'gru', 'rnn', got 'transformer'"),
    (lambda v: TrainConfig(lr=-0.1), ConfigError, "lr: expected a finite number > 0, got -0.1"),
    (lambda v: TrainConfig(lr=float("nan")), ConfigError, "lr: expected a finite number > 0, got nan"),
    (lambda v: TrainConfig(lr=float("inf")), ConfigError, "got inf"),
    (lambda v: TrainConfig(steps=0), ConfigError, "steps: expected an integer >= 1 or None, got 0"),
    (lambda v: TrainConfig(clip_value=-1), ConfigError, "clip_value: expected a number > 0, got -1"),
    (lambda v: TrainConfig(nonfinite="ignore"), ConfigError, "nonfinite: expected one of 'skip', 'stop', got 'ignore'"),
    (lambda v: make_optimizer("adam", {"w": np.zeros(2)}, {"w": np.zeros(2)}, lr=-1), ConfigError, "lr: "),
    (lambda v: LanguageModel(v, "lstm", 4).sample(1, 5, temperature=0), ConfigError,
     "temperature: expected a number > 0"),
    (lambda v: LanguageModel(v, "lstm", 4).sample(1, 5, temperature=-0.5), ConfigError, "got -0.5"),
    (lambda v: sample_next(np.zeros((1, 3)), np.random.default_rng(0), temperature=float("nan")), ConfigError,
     "got nan"),
    (lambda v: LanguageModel(v, "lstm", 4).sample(1, 5, top_k=0), ConfigError, "top_k: expected an integer >= 1"),
    (lambda v: LanguageModel(v, "lstm", 4).sample(0, 5), ConfigError, "num: expected an integer >= 1, got 0"),
    (lambda v: LanguageModel(v, "lstm", 4).batcher(CORPUS, batch_size=0), ConfigError,
     "batch_size: expected an integer >= 1, got 0"),
    (lambda v: LanguageModel(v, "lstm", 4).batcher(CORPUS, seq_len=-2), ConfigError,
     "seq_len: expected an integer >= 1, got -2"),
])
def test_hyperparameters_out_of_range_in_the_library(make, err, needle):
    with pytest.raises(err) as e:
        make(Vocabulary.from_text(CORPUS))
    assert needle in str(e.value)


@pytest.mark.parametrize("args, needle", [
    (["--hidden", "0"], "argument --hidden: expected an integer >= 1, got 0"),
    (["--layers", "0"], "argument --layers: expected an integer >= 1, got 0"),
    (["--lr", "-0.1"], "argument --lr: expected a finite number > 0, got -0.1"),
    (["--lr", "nan"], "argument --lr: expected a finite number > 0, got nan"),
    (["--dropout", "1"], "argument --dropout: expected a value in [0, 1), got 1"),
    (["--batch-size", "0"], "argument --batch-size: expected an integer >= 1, got 0"),
    (["--seq-len", "x"], "argument --seq-len: expected an integer, got 'x'"),
    (["--cell", "tcn"], "argument --cell: invalid choice: 'tcn'"),
])
def test_hyperparameters_out_of_range_on_the_command_line(tmp_path, capsys, args, needle):
    path = write(tmp_path, "c.txt", CORPUS)
    usage_error(capsys, ["train", path, "--out", tmp_path / "o", *args], needle)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_temperature_on_the_command_line(lm_dir, capsys, value):
    usage_error(capsys, ["sample", lm_dir[1], "--temperature", value], "argument --temperature", f"got {value}")


def test_options_that_pass_argparse_but_not_the_library_exit_3(tmp_path, capsys):
    path = write(tmp_path, "c.txt", CORPUS)
    one_line_error(capsys, ["train", path, "--out", tmp_path / "o", *TINY, "--optimizer", "adam", "--momentum", "0.9"],
                   3, "--momentum", "adam")
    one_line_error(capsys, ["train", path, *TINY], 3, "--out")


def test_usage_errors_name_the_command(tmp_path, capsys):
    usage_error(capsys, ["train", tmp_path / "c.txt", "--out", tmp_path / "o", "--hidden", "0"],
                "seqmodels train: error: argument --hidden", "(see seqmodels train --help)")
    usage_error(capsys, ["nonsense"], "seqmodels: error: argument COMMAND: invalid choice: 'nonsense'")


# ------------------------------------------------------------------------------- arrays
@pytest.mark.parametrize("call, err, needle", [
    (lambda: sm.LSTM(3, 4).forward(np.zeros((5, 3))), ShapeError,
     "x: expected a 3-d array (batch, time, features), got shape (5, 3)"),
    (lambda: sm.GRU(3, 4).forward(np.zeros((2, 5, 4))), ShapeError,
     "x: expected 3 features in the last axis, got shape (2, 5, 4)"),
    (lambda: sm.RNN(3, 4).forward(np.array([[["a", "b", "c"]]])), DTypeError,
     "x: expected a numeric array, got dtype <U1"),
    (lambda: sm.LSTM(3, 4).forward(np.zeros((2, 5, 3)), state=(np.zeros((2, 5)), np.zeros((2, 4)))), ShapeError,
     "state.a: expected shape (2, 4), got (2, 5)"),
    (lambda: sm.Dense(3, 2).forward(np.zeros((2, 4))), ShapeError, "x: expected shape (B, T, 3) or (B, 3), got (2, 4)"),
    (lambda: sm.Embedding(5, 2).forward(np.array([[1.0]])), DTypeError,
     "ids: expected integer token ids, got dtype float64"),
    (lambda: sm.Embedding(5, 2).forward(np.array([[1, 7]])), ShapeError, "ids: expected token ids in [0, 5), got 7"),
    (lambda: StreamBatcher(np.zeros((3, 40), int), 1, 1), ShapeError,
     "ids: expected a 1-D token stream, got shape (3, 40)"),
    (lambda: StreamBatcher(np.zeros(40), 1, 1), DTypeError, "ids: expected integer token ids, got dtype float64"),
    (lambda: pad_sequences([[1, 2], [1.5]]), DTypeError, "seqs[1]: expected integer ids, got dtype float64"),
    (lambda: softmax_cross_entropy(np.zeros((2, 3, 5)), np.zeros((2, 4), int)), ShapeError,
     "targets: expected shape (2, 3) (logits.shape[:-1]), got (2, 4)"),
    (lambda: softmax_cross_entropy(np.zeros((2, 3, 5)), np.zeros((2, 3))), DTypeError,
     "targets: expected integer class ids, got dtype float64"),
    (lambda: softmax_cross_entropy(np.zeros((2, 3, 5)), np.full((2, 3), 7)), ShapeError,
     "targets: expected class ids in [0, 5)"),
    (lambda: Vocabulary.from_text("ab").decode(np.zeros((2, 2), int)), ShapeError,
     "ids: expected a 1-D sequence, got shape (2, 2)"),
    (lambda: Vocabulary.from_text("ab").decode([3, 99]), DataError, "ids[1] = 99 is out of range"),
])
def test_wrong_array_ranks_sizes_and_dtypes(call, err, needle):
    with pytest.raises(err) as e:
        call()
    assert needle in str(e.value)


@pytest.mark.parametrize("lengths, err, needle", [
    ([3, 4], ShapeError, "lengths: expected values in [0, 3] (the time axis), got [3, 4]"),
    ([-1, 2], ShapeError, "got [-1, 2]"),
    ([1, 2, 3], ShapeError, "lengths: expected shape (2,) (one per sequence), got (3,)"),
    ([1.5, 2.0], DTypeError, "lengths: expected integers, got float64 values [1.5, 2.0]"),
])
def test_lengths_out_of_range(lengths, err, needle):
    with pytest.raises(err) as e:
        sm.LSTM(3, 4).forward(np.zeros((2, 3, 3)), np.array(lengths))
    assert needle in str(e.value)
    if err is ShapeError and len(lengths) == 2:
        with pytest.raises(ShapeError, match=r"lengths: expected values in \[0, 3\]"):
            softmax_cross_entropy(np.zeros((2, 3, 5)), np.zeros((2, 3), int), lengths=np.array(lengths))


def test_nan_and_inf_inputs():
    x = np.zeros((2, 3, 3))
    x[1, 2, 0] = np.inf
    with pytest.raises(NonFiniteError, match=r"x: contains NaN or inf \(first at index \(1, 2, 0\)\)"):
        sm.GRU(3, 4).forward(x)
    with pytest.raises(NonFiniteError, match="state.c: contains NaN or inf"):
        sm.LSTM(3, 4).forward(np.zeros((1, 2, 3)), state=(np.zeros((1, 4)), np.full((1, 4), np.nan)))
    assert issubclass(NonFiniteError, FloatingPointError) and issubclass(NonFiniteError, SeqModelsError)
    # losses pass NaN through (the training loop's guard skips or stops: tests/test_faults.py)
    loss, _ = softmax_cross_entropy(np.full((1, 2, 3), np.nan), np.zeros((1, 2), int))
    assert np.isnan(loss)


# ------------------------------------------------------------------------------- checkpoints
def rewrite(path, change):
    ck = load_checkpoint(path)
    arrays = dict(ck.arrays)
    change(arrays)
    save_checkpoint(path, arrays=arrays, meta=ck.meta, kind=ck.kind, config=ck.config)


def damage_manifest(path, **fields):
    doc = json.loads((path / "checkpoint.json").read_text())
    (path / "checkpoint.json").write_text(json.dumps({**doc, **fields}))


def truncate(path):
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[:len(data) // 2])


DAMAGES = {
    "truncated": (truncate, ["model.safetensors", "bytes, but checkpoint.json records", "truncated"]),
    "missing array": (lambda p: rewrite(p, lambda a: a.pop("head.b_y")), ["missing key 'head.b_y'", "shape (16,)"]),
    "extra array": (lambda p: rewrite(p, lambda a: a.update({"head.bias2": np.zeros(3, np.float32)})),
                    ["unexpected key 'head.bias2'", "shape (3,)"]),
    "wrong shape": (lambda p: rewrite(p, lambda a: a.update({"head.W_y": a["head.W_y"].T.copy()})),
                    ["key 'head.W_y': expected shape (16, 6)", "found shape (6, 16)"]),
    "wrong dtype": (lambda p: rewrite(p, lambda a: a.update({"head.b_y": a["head.b_y"].astype(np.float64)})),
                    ["key 'head.b_y'", "dtype float32", "dtype float64"]),
    "NaN weights": (lambda p: rewrite(p, lambda a: a["head.b_y"].__setitem__(0, np.nan)), ["'head.b_y' holds NaN"]),
    "newer format": (lambda p: damage_manifest(p, format_version=7), ["format_version 7", "Upgrade seqmodels"]),
    "flipped byte": (lambda p: (p / "model.safetensors").write_bytes(
        (p / "model.safetensors").read_bytes()[:-1] + b"\x01"), ["model.safetensors", "SHA-256"]),
    "other kind": (lambda p: save_checkpoint(p, arrays={"W": np.zeros(2)}, meta={}, kind="tagger", config={},
                                             ), ["tagger"]),
}


@pytest.fixture
def damaged(lm_dir, tmp_path, request):
    import shutil
    path = tmp_path / "model"
    shutil.copytree(lm_dir[1], path)
    apply, needles = DAMAGES[request.param]
    if request.param == "other kind":
        shutil.rmtree(path)
    apply(path)
    return path, needles


@pytest.mark.parametrize("damaged", DAMAGES, indirect=True)
def test_bad_checkpoints_through_the_library(damaged):
    path, needles = damaged
    with pytest.raises(CheckpointError) as e:
        LanguageModel.load(path)
    assert str(path) in str(e.value) and all(n in str(e.value) for n in needles), e.value


@pytest.mark.parametrize("damaged", DAMAGES, indirect=True)
def test_bad_checkpoints_through_the_command_line(damaged, capsys, tmp_path):
    path, needles = damaged
    one_line_error(capsys, ["sample", path, "--length", "5"], 5, path, *needles)
    corpus = write(tmp_path, "c.txt", CORPUS)
    one_line_error(capsys, ["score", path, "the cat"], 5, *needles)
    run = tmp_path / "run"
    run.mkdir()
    (path).rename(run / "model")
    one_line_error(capsys, ["train", corpus, "--resume", run, "--steps", "3", "--no-progress"], 5, *needles)


def test_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        LanguageModel.load(tmp_path / "nothing")
    one_line_error(capsys, ["sample", tmp_path / "nothing"], 5, tmp_path / "nothing", "no such directory")
