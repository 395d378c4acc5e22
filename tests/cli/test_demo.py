"""The main job: ``seqmodels demo`` and the corpora it reads."""

import hashlib

import pytest

from seqmodels.core.errors import DataError
from seqmodels.cli.main import main
from seqmodels.data import corpora


def test_demo_runs_end_to_end_on_a_small_budget(tmp_path, capsys):
    text = "".join(f"The function returns the value of item {i} in the list; a pear salad, an apple pair\n"
                   for i in range(300))
    path = tmp_path / "c.txt"
    path.write_text(text)
    assert main(["demo", "--corpus", str(path), "--seconds", "3", "--hidden", "16", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    for expected in ("validation loss", "Kneser-Ney baseline", "temperature 0.5", "temperature 1.0",
                     "log P('the apple and pear salad')", "more probable"):
        assert expected in out
    assert (tmp_path / "run" / "model" / "checkpoint.json").exists()


def test_python_docstrings_are_prose_and_deterministic():
    a = corpora.python_docstrings(max_chars=20_000)
    assert len(a) == 20_000 and a == corpora.python_docstrings(max_chars=20_000)
    assert a.count(" the ") > 50 and ">>>" not in a


def test_fetch_checks_sha256_and_caches(tmp_path, monkeypatch):
    src = tmp_path / "src.txt"
    src.write_bytes(b"to be or not to be\n")
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    monkeypatch.setitem(corpora.KNOWN_CORPORA, "shakespeare",
                        {"url": src.as_uri(), "sha256": good, "filename": "ts.txt"})
    path = corpora.fetch("shakespeare", directory=tmp_path / "cache")
    assert path.read_bytes() == src.read_bytes()
    src.write_bytes(b"changed")                                   # cached copy is used, no new download
    assert corpora.fetch("shakespeare", directory=tmp_path / "cache") == path
    monkeypatch.setitem(corpora.KNOWN_CORPORA, "shakespeare",
                        {"url": src.as_uri(), "sha256": "0" * 64, "filename": "other.txt"})
    with pytest.raises(DataError, match="SHA-256"):
        corpora.fetch("shakespeare", directory=tmp_path / "cache")
    assert not (tmp_path / "cache" / "other.txt").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["ts.txt"]


def test_fetch_without_network_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(corpora.KNOWN_CORPORA, "shakespeare",
                        {"url": (tmp_path / "missing.txt").as_uri(), "sha256": "0" * 64, "filename": "x.txt"})
    with pytest.raises(DataError, match="could not download"):
        corpora.fetch("shakespeare", directory=tmp_path / "cache")
