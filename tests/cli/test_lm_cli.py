"""The language-model commands, run in-process: results on stdout, errors as one line + exit code."""

import json

import pytest

from seqmodels.cli.main import main

CORPUS = ("the cat sat on the mat\nthe dog sat on the log\na cat and a dog met on a mat\n" * 20)

TINY = ["--hidden", "8", "--layers", "1", "--seq-len", "10", "--batch-size", "4", "--no-progress"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS)
    return path


@pytest.fixture
def run_dir(tmp_path, corpus):
    out = tmp_path / "run"
    assert main(["train", str(corpus), "--out", str(out), "--steps", "30", *TINY]) == 0
    return out


def test_train_writes_a_run_directory(run_dir):
    assert (run_dir / "model" / "checkpoint.json").exists()
    history = json.loads((run_dir / "history.json").read_text())
    assert history["step"] == 30 and len(history["loss"]) == 30
    assert history["loss"][-1][1] < history["loss"][0][1]
    assert (run_dir / "samples.txt").read_text().strip()


def test_sample_prints_only_samples(run_dir, capsys):
    capsys.readouterr()
    assert main(["sample", str(run_dir), "--num", "2", "--length", "15", "--seed", "1", "--prime", "the "]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("the ") and err == ""
    assert main(["sample", str(run_dir), "--num", "2", "--length", "15", "--seed", "1", "--prime", "the "]) == 0
    assert capsys.readouterr().out == out                             # seeded: reproducible


def test_score_prints_log_prob_and_table(run_dir, capsys):
    assert main(["score", str(run_dir), "the cat", "the dog"]) == 0
    out = capsys.readouterr().out
    assert out.count("log P =") == 2 and "perplexity" in out and "'<EOS>'" in out


def test_resume_continues_from_the_saved_step(run_dir, corpus):
    assert main(["train", str(corpus), "--resume", str(run_dir), "--steps", "40", "--no-progress"]) == 0
    history = json.loads((run_dir / "history.json").read_text())
    assert history["step"] == 40 and history["loss"][0][0] == 1


def test_refuses_to_overwrite_a_trained_model(run_dir, corpus, capsys):
    before = (run_dir / "model" / "model.safetensors").read_bytes()
    assert main(["train", str(corpus), "--out", str(run_dir), "--steps", "2", *TINY]) == 3
    assert "already holds a trained model" in capsys.readouterr().err
    assert (run_dir / "model" / "model.safetensors").read_bytes() == before


def test_ngram_command(corpus, capsys):
    assert main(["ngram", str(corpus), "--n", "3", "--num", "2", "--length", "20"]) == 0
    out = capsys.readouterr().out
    assert "validation perplexity" in out and len(out.strip().splitlines()) == 3


@pytest.mark.parametrize("content, code, message", [
    (None, 4, "not found"),
    (b"", 4, "empty"),
    (b"abc\xff\xfedef", 4, "byte"),
    (b"ab", 4, "too short"),
])
def test_bad_corpus_is_one_line_error(tmp_path, content, code, message, capsys):
    path = tmp_path / "c.txt"
    if content is not None:
        path.write_bytes(content)
    rc = main(["train", str(path), "--out", str(tmp_path / "o"), "--steps", "2", *TINY])
    err = capsys.readouterr().err
    assert rc == code, err
    assert message in err.lower() and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "model").exists()


def test_bad_arguments(run_dir, tmp_path, capsys):
    assert main(["sample", str(run_dir), "--prime", "XYZ"]) == 4
    assert "not in the model's vocabulary" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["sample", str(run_dir), "--temperature", "0"])
    assert e.value.code == 2
    assert main(["sample", str(tmp_path / "nothing")]) == 5
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "checkpoint.json").write_text("{not json")
    assert main(["sample", str(tmp_path / "broken")]) == 5
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_wrong_model_kind(tmp_path, capsys):
    import numpy as np
    from seqmodels.io import save_checkpoint
    save_checkpoint(tmp_path / "tagger", arrays={"W": np.zeros(2)}, meta={}, kind="tagger", config={})
    assert main(["sample", str(tmp_path / "tagger")]) == 5
    assert "tagger" in capsys.readouterr().err


def test_debug_shows_traceback(tmp_path, capsys):
    assert main(["--debug", "sample", str(tmp_path / "nothing")]) == 5
    assert "Traceback" in capsys.readouterr().err


def test_average_option_ends_with_averaged_weights_and_resumes_exactly(tmp_path, corpus):
    from seqmodels.io.checkpoint import load_checkpoint

    def train(out, steps, *extra):
        assert main(["train", str(corpus), "--out", str(out), "--steps", str(steps), "--average", "0.9", "--seed", "1",
                     *TINY, *extra]) == 0
        return load_checkpoint(out / "model")

    straight = train(tmp_path / "a", 20)
    assert straight.meta["optimizer"]["hyper"]["average"] == 0.9 and straight.meta["optimizer"]["average_applied"]
    train(tmp_path / "b", 12)
    assert main(["train", str(corpus), "--resume", str(tmp_path / "b"), "--steps", "20", "--no-progress"]) == 0
    resumed = load_checkpoint(tmp_path / "b" / "model")
    for k, v in straight.arrays.items():
        assert (resumed.arrays[k] == v).all(), k
