"""``seqmodels translate train|eval|predict``, run in-process: results on stdout, errors as one line + code."""

import io
import json

import pytest

from seqmodels.cli.main import main
from seqmodels.models.base import Model

TINY = ["--hidden", "16", "--embedding-dim", "8", "--batch-size", "16", "--no-progress"]
PAIRS = [("I am here .", "je suis là ."), ("you are here .", "tu es là ."), ("he is here .", "il est là ."),
         ("I am tired .", "je suis fatigué ."), ("you are tired .", "tu es fatigué ."),
         ("he is tired .", "il est fatigué ."), ("I am tall .", "je suis grand ."), ("he is tall .", "il est grand .")]


@pytest.fixture
def tsv(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS * 4), encoding="utf-8")
    return path


@pytest.fixture
def dates_run(tmp_path):
    out = tmp_path / "dates"
    assert main(["translate", "train", "--dates", "300", "--out", str(out), "--steps", "20", *TINY]) == 0
    return out


def test_train_on_dates_writes_a_run_directory(dates_run, capsys):
    assert (dates_run / "model" / "checkpoint.json").exists()
    history = json.loads((dates_run / "history.json").read_text())
    assert history["step"] == 20 and history["loss"][-1][1] < history["loss"][0][1]
    scores = json.loads((dates_run / "valid_scores.json").read_text())
    assert set(scores) == {"bleu", "exact_match", "loss", "n"} and scores["n"] == 100
    model = Model.load(dates_run / "model")
    assert model.kind == "seq2seq" and model.src_vocab.level == "char"


def test_train_on_a_tsv_file_then_eval_and_predict(tmp_path, tsv, capsys):
    out = tmp_path / "run"
    assert main(["translate", "train", "--train", str(tsv), "--valid-fraction", "0", "--out", str(out),
                 "--epochs", "40", "--lr", "0.01", "--bidirectional", *TINY]) == 0
    capsys.readouterr()
    assert main(["translate", "eval", str(out), str(tsv)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["n"] == len(PAIRS) and scores["exact_match"] == 1.0 and scores["bleu"] == pytest.approx(1.0)
    src = tmp_path / "src.txt"
    src.write_text("he is tired .\nI am here .\n")
    assert main(["translate", "predict", str(out), str(src), "--beam", "3"]) == 0
    assert capsys.readouterr().out == "il est fatigué.\nje suis là.\n"


def test_predict_reads_stdin_and_eval_on_generated_dates(dates_run, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("3 May 1998\nJanuary 2, 2003\n"))
    capsys.readouterr()
    assert main(["translate", "predict", str(dates_run / "model")]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert len(lines) == 3 and lines[2] == ""
    assert main(["translate", "eval", str(dates_run), "--dates", "50", "--beam", "2", "--alpha", "0.6"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 50


def test_resume_continues_a_run(dates_run):
    assert main(["translate", "train", "--resume", str(dates_run), "--steps", "25", "--no-progress"]) == 0
    history = json.loads((dates_run / "history.json").read_text())
    assert history["step"] == 25 and history["loss"][0][0] == 1


def test_errors_are_one_line_with_exit_codes(tmp_path, dates_run, capsys):
    assert main(["translate", "train", "--dates", "50", "--out", str(dates_run), *TINY]) == 3
    assert "already holds a trained model" in capsys.readouterr().err
    assert main(["translate", "eval", str(tmp_path / "nowhere"), "--dates", "5"]) == 5
    assert "no such directory" in capsys.readouterr().err
    bad = tmp_path / "bad.tsv"
    bad.write_text("only one column\n")
    assert main(["translate", "train", "--train", str(bad), "--out", str(tmp_path / "x"), *TINY]) == 4
    err = capsys.readouterr().err
    assert "line 1" in err and err.count("\n") == 1
    blank = tmp_path / "blank.txt"
    blank.write_text("3 May 1998\n\n4 May 1998\n")
    assert main(["translate", "predict", str(dates_run), str(blank)]) == 4
    assert "line 2: empty source sentence" in capsys.readouterr().err
    assert main(["translate", "eval", str(dates_run)]) == 3
    assert main(["translate", "train", "--out", str(tmp_path / "y"), *TINY]) == 3
    with pytest.raises(SystemExit):
        main(["translate", "train", "--dates", "5", "--train", "x.tsv", "--out", str(tmp_path / "z")])
