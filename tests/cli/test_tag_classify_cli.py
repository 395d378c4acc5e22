"""``seqmodels tag ...`` and ``seqmodels classify ...`` run in-process: outputs, files, one-line errors."""

import io
import json

import numpy as np
import pytest

from seqmodels.cli.main import main

TINY = ["--hidden", "8", "--embedding-dim", "8", "--batch-size", "8", "--no-progress", "--lr", "0.02"]


def _conll(n, seed):
    rng = np.random.default_rng(seed)
    names, other = ["Paris", "Rome", "Ann"], ["I", "saw", "big", "in", "the"]
    lines = []
    for _ in range(n):
        for w in rng.choice(names + other, int(rng.integers(2, 6))):
            tag = "B-person" if w == "Ann" else "B-location" if w in names else "O"
            lines.append(f"{w}\t{tag}")
        lines.append("")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def tag_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("tag")
    (d / "train.conll").write_text(_conll(80, 0))
    (d / "dev.conll").write_text(_conll(20, 1))
    code = main(["tag", "train", "--train", str(d / "train.conll"), "--dev", str(d / "dev.conll"),
                 "--out", str(d / "run"), "--epochs", "15", *TINY])
    assert code == 0
    return d


def test_tag_train_writes_run_and_reports_dev(tag_run):
    run = tag_run / "run"
    assert (run / "model" / "checkpoint.json").exists()
    history = json.loads((run / "history.json").read_text())
    assert history["step"] == 15 * 10 and history["val_loss"]
    scores = json.loads((run / "dev_scores.json").read_text())
    assert scores["f1"] > 0.95


def test_tag_eval_prints_conlleval_report(tag_run, capsys):
    capsys.readouterr()
    assert main(["tag", "eval", str(tag_run / "run"), str(tag_run / "dev.conll")]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "location:" in out and "person:" in out
    assert main(["tag", "eval", str(tag_run / "run" / "model"), str(tag_run / "dev.conll"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["f1"] > 0.95


def test_tag_predict_formats(tag_run, capsys, monkeypatch):
    text = tag_run / "input.txt"
    text.write_text("I saw Ann in Paris\n\nthe big Rome\n")
    capsys.readouterr()
    assert main(["tag", "predict", str(tag_run / "run"), str(text)]) == 0
    assert capsys.readouterr().out == "1\t2-3\tperson\tAnn\n1\t4-5\tlocation\tParis\n3\t2-3\tlocation\tRome\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("Ann saw Rome\n"))
    assert main(["tag", "predict", str(tag_run / "run"), "-", "--format", "inline"]) == 0
    assert capsys.readouterr().out == "[Ann|person] saw [Rome|location]\n"
    assert main(["tag", "predict", str(tag_run / "run"), str(text), "--format", "conll"]) == 0
    rows = capsys.readouterr().out.split("\n")
    assert rows[2].split("\t")[:2] == ["Ann", "B-person"] and float(rows[2].split("\t")[2]) > 0.5
    assert rows[5] == "" and rows[6].startswith("the\tO\t")


def test_tag_malformed_conll_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.conll"
    bad.write_text("Paris\tB-location\nis\n")
    assert main(["tag", "train", "--train", str(bad), "--out", str(tmp_path / "r"), *TINY]) == 4
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "line 2" in err and "bad.conll" in err and "Traceback" not in err


def test_tag_unknown_tag_in_eval_names_tag_and_line(tag_run, tmp_path, capsys):
    f = tmp_path / "odd.conll"
    f.write_text("Paris\tB-location\n\nAnn\tB-person\nsaw\tB-event\n")
    assert main(["tag", "eval", str(tag_run / "run"), str(f)]) == 4
    err = capsys.readouterr().err.strip()
    assert "odd.conll" in err and "line 3" in err and "'B-event' was never seen in training" in err


def test_tag_refuses_to_overwrite_and_resumes(tag_run, capsys):
    run = tag_run / "run"
    assert main(["tag", "train", "--train", str(tag_run / "train.conll"), "--out", str(run), *TINY]) == 3
    assert "already holds a trained model" in capsys.readouterr().err
    assert main(["tag", "train", "--train", str(tag_run / "train.conll"), "--resume", str(run), "--steps", "155",
                 "--no-progress"]) == 0
    assert json.loads((run / "history.json").read_text())["step"] == 155


def test_missing_model_is_a_checkpoint_error(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("hello\n")
    assert main(["tag", "predict", str(tmp_path / "nope"), str(tmp_path / "x.txt")]) == 5
    assert "no such directory" in capsys.readouterr().err


# ------------------------------------------------------------------------------ classify
def _tsv(n, seed, header=False):
    rng = np.random.default_rng(seed)
    rows = ["sentence\tlabel"] if header else []
    for _ in range(n):
        words = list(rng.choice(["the", "film", "was", "a", "plot"], int(rng.integers(1, 5))))
        key = str(rng.choice(["good", "bad"]))
        words.insert(int(rng.integers(0, len(words) + 1)), key)
        rows.append(" ".join(words) + f" \t{1 if key == 'good' else 0}")
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def clf_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("clf")
    (d / "train.tsv").write_text(_tsv(120, 0, header=True))
    (d / "dev.tsv").write_text(_tsv(30, 1))
    code = main(["classify", "train", "--train", str(d / "train.tsv"), "--dev", str(d / "dev.tsv"),
                 "--out", str(d / "run"), "--epochs", "6", "--pooling", "max", *TINY])
    assert code == 0
    return d


def test_classify_train_and_eval(clf_run, capsys):
    assert json.loads((clf_run / "run" / "dev_scores.json").read_text())["accuracy"] > 0.95
    capsys.readouterr()
    assert main(["classify", "eval", str(clf_run / "run"), str(clf_run / "dev.tsv")]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "confusion (rows true, columns predicted)" in out
    assert main(["classify", "eval", str(clf_run / "run"), str(clf_run / "dev.tsv"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["labels"] == ["0", "1"] and sum(map(sum, s["confusion"])) == 30


def test_classify_predict_prints_label_and_probability(clf_run, capsys, monkeypatch):
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("a good film\n\nthe plot was bad\n"))
    assert main(["classify", "predict", str(clf_run / "run"), "--with-text"]) == 0
    rows = [r.split("\t") for r in capsys.readouterr().out.strip().split("\n")]
    assert [r[0] for r in rows] == ["1", "0"] and all(0.5 < float(r[1]) <= 1 for r in rows)
    assert rows[1][2] == "the plot was bad"


def test_classify_errors_name_file_and_line(clf_run, tmp_path, capsys):
    f = tmp_path / "odd.tsv"
    f.write_text("good film\t1\nbad plot\tneutral\n")
    assert main(["classify", "eval", str(clf_run / "run"), str(f)]) == 4
    err = capsys.readouterr().err
    assert "odd.tsv, line 2: label 'neutral' was never seen in training" in err
    g = tmp_path / "punct.txt"
    g.write_text("good\n  ...\n")
    assert main(["classify", "predict", str(clf_run / "run"), str(g)]) == 0      # '.' is a token
    capsys.readouterr()
    h = tmp_path / "broken.tsv"
    h.write_text("good film\t1\nno label here\n")
    assert main(["classify", "train", "--train", str(h), "--out", str(tmp_path / "r"), *TINY]) == 4
    err = capsys.readouterr().err.strip()
    assert "broken.tsv, line 2" in err and "\n" not in err
    assert main(["classify", "eval", str(tmp_path), str(f)]) == 5              # not a run directory
    assert "no checkpoint.json" in capsys.readouterr().err


def test_classify_rejects_a_tagger_checkpoint(tag_run, clf_run, capsys):
    assert main(["classify", "eval", str(tag_run / "run"), str(clf_run / "dev.tsv")]) == 5
    assert "holds a 'tagger' model, expected a classifier" in capsys.readouterr().err
