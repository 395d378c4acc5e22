"""``seqmodels music train|eval|generate`` run in-process: files written, reproducible songs, one-line errors."""

import json

import numpy as np
import pytest

from seqmodels.cli.main import main
from seqmodels.data.midi import read_midi_roll, write_midi

TINY = ["--cell", "gru", "--hidden", "8", "--batch-size", "4", "--epochs", "3", "--no-progress", "--lr", "0.01"]


def _songs(n, seed, T=(6, 14)):
    """Random walks of triads in C major around middle C, as piano-roll JSON sequences."""
    rng = np.random.default_rng(seed)
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76]
    out = []
    for _ in range(n):
        deg = int(rng.integers(0, 4))
        seq = []
        for _ in range(int(rng.integers(*T))):
            seq.append([scale[deg], scale[deg + 2], scale[deg + 4]] if rng.random() < 0.9 else [])
            deg = int(np.clip(deg + rng.integers(-1, 2), 0, 5))
        out.append(seq)
    return out


@pytest.fixture(scope="module")
def music_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("music")
    data = {"train": _songs(16, 0), "valid": _songs(4, 1), "test": _songs(4, 2)}
    (d / "songs.json").write_text(json.dumps(data))
    code = main(["music", "train", "--data", str(d / "songs.json"), "--out", str(d / "run"), "--notes", "auto",
                 *TINY])
    assert code == 0
    return d


def test_train_writes_the_run(music_run, capsys):
    run = music_run / "run"
    assert (run / "model" / "checkpoint.json").exists()
    info = json.loads((run / "run.json").read_text())
    assert info["note_range"] == [60, 76] and set(info["nll_per_step"]) == {"train", "valid", "test"}
    assert info["history"]["step"] == 3 * 4 and len(info["history"]["val_loss"]) == 3   # 4 batches per epoch


def test_eval_prints_nll_per_time_step(music_run, capsys):
    assert main(["music", "eval", str(music_run / "run"), "--split", "test"]) == 0
    out = capsys.readouterr().out
    info = json.loads((music_run / "run" / "run.json").read_text())
    assert out.startswith("test: NLL per time step ") and f"{info['nll_per_step']['test']:.4f}" in out


def test_generate_is_reproducible_and_readable(music_run, capsys):
    run, d = str(music_run / "run"), music_run
    for name, seed in (("a.mid", "5"), ("b.mid", "5"), ("c.mid", "6")):
        assert main(["music", "generate", run, "--out", str(d / name), "--length", "24", "--seed", seed]) == 0
    assert (d / "a.mid").read_bytes() == (d / "b.mid").read_bytes() != (d / "c.mid").read_bytes()
    roll = read_midi_roll(d / "a.mid", steps_per_beat=1)
    assert roll.shape == (24, 128) and not roll[:, :60].any() and not roll[:, 77:].any()
    assert "a.mid: 24 steps" in capsys.readouterr().out


def test_generate_from_a_midi_primer(music_run):
    d = music_run
    primer = np.zeros((4, 128), np.uint8)
    primer[:, [60, 64, 67]] = 1
    write_midi(d / "primer.mid", primer)
    assert main(["music", "generate", str(d / "run"), "--out", str(d / "cont.mid"), "--length", "8", "--seed", "1",
                 "--primer", str(d / "primer.mid"), "--include-primer", "--num", "2"]) == 0
    for i in (1, 2):
        roll = read_midi_roll(d / f"cont-{i}.mid")
        assert roll.shape[0] == 12 and np.array_equal(roll[:4], primer)


def test_train_on_a_directory_of_midi_files(tmp_path):
    songs = tmp_path / "midi"
    songs.mkdir()
    for i, seq in enumerate(_songs(10, 3)):
        roll = np.zeros((len(seq), 128), np.uint8)
        for t, notes in enumerate(seq):
            roll[t, notes] = 1
        write_midi(songs / f"song{i}.mid", roll, steps_per_beat=2)
    code = main(["music", "train", "--data", str(songs), "--out", str(tmp_path / "run"), "--steps-per-beat", "2",
                 *TINY])
    assert code == 0
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["note_range"] == [21, 108] and set(info["nll_per_step"]) == {"train", "valid", "test"}


def test_a_file_that_is_not_midi_is_one_clear_line(tmp_path, capsys):
    songs = tmp_path / "midi"
    songs.mkdir()
    write_midi(songs / "good.mid", np.eye(8, 128, 60, dtype=np.uint8))
    (songs / "notes.mid").write_text("C E G C E G")
    code = main(["music", "train", "--data", str(songs), "--out", str(tmp_path / "run"), *TINY])
    err = capsys.readouterr().err
    assert code == 4 and "Traceback" not in err
    assert "notes.mid: byte 0: expected the MIDI header 'MThd'" in err and len(err.strip().splitlines()) == 1


def test_errors_for_bad_runs_and_data(tmp_path, music_run, capsys):
    assert main(["music", "eval", str(tmp_path)]) == 5                      # no checkpoint here
    assert "no checkpoint.json" in capsys.readouterr().err
    (tmp_path / "empty.json").write_text(json.dumps({"train": [[[60]], []]}))
    assert main(["music", "train", "--data", str(tmp_path / "empty.json"), "--out", str(tmp_path / "r"), *TINY]) == 4
    assert "sequence 1: empty sequence" in capsys.readouterr().err
    assert main(["music", "train", "--data", str(music_run / "songs.json"), "--out", str(tmp_path / "r2"),
                 "--notes", "70-80", *TINY]) == 4
    assert "outside the model's range 70..80" in capsys.readouterr().err
    assert main(["music", "train", "--data", str(music_run / "songs.json"), "--out", str(music_run / "run"),
                 *TINY]) == 3
    assert "already holds a trained model" in capsys.readouterr().err


def test_resume_continues_to_more_steps(music_run, tmp_path):
    data, out = str(music_run / "songs.json"), str(tmp_path / "run")
    assert main(["music", "train", "--data", data, "--out", out, "--notes", "auto", *TINY, "--epochs", "1"]) == 0
    assert main(["music", "train", "--data", data, "--out", out, "--resume", "--steps", "7", "--no-progress"]) == 0
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["history"]["step"] == 7 and info["note_range"] == [60, 76]
