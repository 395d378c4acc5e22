"""``seqmodels diagnose ...`` in-process: figures with matplotlib, tables without it, exit codes."""

import json
import math
import sys

import numpy as np
import pytest

from seqmodels.cli.main import main
from seqmodels.models.language_model import LanguageModel
from seqmodels.text import Vocabulary

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make ``import matplotlib`` fail, as on an install without the [plot] extra."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)


@pytest.fixture
def saved_lm(tmp_path):
    vocab = Vocabulary.from_text("the cat sat on the mat", level="char")
    lm = LanguageModel(vocab, cell="lstm", hidden_size=6, num_layers=2, seed=0)
    lm.params["head.W_y"] = np.zeros_like(lm.params["head.W_y"])
    b = np.zeros_like(lm.params["head.b_y"])
    b[vocab.token_to_id("m")] = -12.0                        # 'm' is very unlikely: a surprising token
    lm.params["head.b_y"] = b
    path = tmp_path / "lm"
    lm.save(path)
    return path


def test_agreement_quick_writes_figures_and_table(tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["diagnose", "agreement", "--quick", "--cells", "rnn,lstm,lstm-remember", "--out", str(out),
                 "--json", str(tmp_path / "a.json")]) == 0
    text = capsys.readouterr().out
    assert "tanh RNN" in text and "LSTM, b_f = 3" in text and "G=8" in text
    for name in ("agreement.png", "gradient_through_time.png", "agreement_gates.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) < 200_000
    results = json.loads((tmp_path / "a.json").read_text())["results"]
    assert {(r["cell"], r["gap"]) for r in results} == {(c, g) for c in ("rnn", "lstm", "lstm-remember")
                                                        for g in (3, 8)}
    for r in results:                                        # the table prints what the runs measured
        assert f"{r['accuracy']:.3f}" in text


def test_agreement_without_matplotlib_prints_tables_only(tmp_path, capsys, no_matplotlib):
    out = tmp_path / "figs"
    assert main(["diagnose", "agreement", "--quick", "--cells", "irnn", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "IRNN" in captured.out and "G=3" in captured.out
    assert "matplotlib is not installed" in captured.err
    assert not out.exists() or not list(out.iterdir())


def test_exploding_quick_table_matches_json(tmp_path, capsys):
    path = tmp_path / "e.json"
    assert main(["diagnose", "exploding", "--quick", "--out", str(tmp_path), "--json", str(path)]) == 0
    text = capsys.readouterr().out
    runs = json.loads(path.read_text())["runs"]
    assert [r["setting"] for r in runs] == ["none", "value ±5", "norm 5"]
    assert runs[0]["clipped_steps"] == 0
    for r in runs:
        assert f"{r['max_norm']:.3g}" in text
    assert (tmp_path / "exploding.png").read_bytes().startswith(PNG)


def test_exploding_without_matplotlib(tmp_path, capsys, no_matplotlib):
    assert main(["diagnose", "exploding", "--quick", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "value ±5" in captured.out and not (tmp_path / "exploding.png").exists()


def test_surprisal_plain_and_coloured(saved_lm, capsys):
    assert main(["diagnose", "surprisal", str(saved_lm), "the mat"]) == 0
    plain = capsys.readouterr().out
    assert plain.splitlines()[0] == "the [m]at⏎" and "\033[" not in plain     # captured stdout: not a tty
    assert main(["diagnose", "surprisal", str(saved_lm), "the mat", "--color", "always"]) == 0
    coloured = capsys.readouterr().out
    assert "\033[1;31mm\033[0m" in coloured


def test_gradients_and_gates_of_a_saved_model(saved_lm, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["diagnose", "gradients", str(saved_lm), "--text", "the cat", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "rnn.layers.0" in text and "rnn.layers.1" in text and "lstm" in text
    assert (out / "gradients.png").read_bytes().startswith(PNG)
    assert main(["diagnose", "gates", str(saved_lm), "--text", "the cat", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Γf (forget)" in text and "saturated" in text
    assert (out / "gates.png").read_bytes().startswith(PNG)


def test_fresh_cell_gradients_without_matplotlib(tmp_path, capsys, no_matplotlib):
    assert main(["diagnose", "gradients", "--cells", "rnn,irnn", "--gap", "5", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    line = next(l for l in text.splitlines() if l.startswith("IRNN"))
    values = [float(v) for v in line.split()[4:-1]]
    assert values[0] == pytest.approx(1 / 16, rel=1e-5)     # ‖w‖/B at the last step, w a unit vector
    assert not (tmp_path / "gradients.png").exists()


@pytest.mark.parametrize("argv,code", [
    (["diagnose", "gradients", "--cells", "rnn,transformer"], 3),
    (["diagnose", "agreement", "--quick", "--gaps", "five"], 3),
])
def test_user_errors_give_exit_codes(argv, code, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path)]) == code
    assert "error" in capsys.readouterr().err


def test_missing_text_and_missing_model(saved_lm, tmp_path, capsys):
    assert main(["diagnose", "gradients", str(saved_lm), "--out", str(tmp_path)]) == 3
    assert "--text" in capsys.readouterr().err
    code = main(["diagnose", "surprisal", str(tmp_path / "nowhere"), "abc"])
    assert code in (4, 5) and capsys.readouterr().err
