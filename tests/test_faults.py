"""Faults during training, end to end: `python -m seqmodels train` killed with SIGKILL at random moments
always leaves a checkpoint that loads and resumes; a killed-and-resumed run ends with the same weights,
bit for bit, as an uninterrupted one (float64, one BLAS thread); the same seed reproduces a run and its
samples; Ctrl-C saves and exits with 130; a non-finite loss or gradient never reaches the weights or a
checkpoint."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from seqmodels.cli.main import main
from seqmodels.core.errors import NonFiniteError
from seqmodels.io import load_checkpoint
from seqmodels.models.language_model import LanguageModel
from seqmodels.text import Vocabulary
from seqmodels.training.loop import History, TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
CORPUS = "".join(f"the {a} sat on the {b}\n" for a in ("cat", "dog", "cow") for b in ("mat", "log", "rug")) * 6
TINY = ["--hidden", "8", "--layers", "1", "--seq-len", "10", "--batch-size", "4", "--no-progress",
        "--valid-fraction", "0"]
EXACT = ["--hidden", "8", "--layers", "2", "--dropout", "0.2", "--seq-len", "10", "--batch-size", "4",
         "--no-progress", "--valid-fraction", "0", "--float64", "--seed", "3", "--checkpoint-every", "1"]
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "SEQMODELS_FAST": "0",  # no JIT compile pauses
       "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(CORPUS)
    return path


def _default_sigint() -> None:
    # a shell without job control starts background jobs with SIGINT ignored, and children inherit that;
    # give the training process the SIGINT a user's terminal would deliver
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "seqmodels", "train", *map(str, args)], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def mtime(path: Path):
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:                                          # between the renames of a save
        return None


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60, changed_from=None) -> None:
    """Until ``path`` exists (and its mtime differs from ``changed_from``): a new checkpoint was saved."""
    t0 = time.monotonic()
    while mtime(path) in (None, changed_from):
        if proc.poll() is not None or time.monotonic() - t0 > timeout:
            raise AssertionError(f"{path} never appeared or changed: {proc.communicate()[1]}")
        time.sleep(0.01)


def weights(run: Path) -> dict:
    return {k: v.copy() for k, v in LanguageModel.load(run / "model").params.items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)           # bit for bit


# ------------------------------------------------------------------------------- SIGKILL
def kill_at_random_moments(tmp_path, corpus, kills: int, seed: int) -> None:
    run, rng, last = tmp_path / "run", np.random.default_rng(seed), 0
    for i in range(kills):
        args = ["--out", run, *TINY, "--checkpoint-every", "1", "--steps", "100000"] if i == 0 else \
            ["--resume", run, "--steps", "100000", "--no-progress"]
        before = mtime(run / "model" / "checkpoint.json")
        proc = start(corpus, *args)
        wait_for(run / "model" / "checkpoint.json", proc, changed_from=before)   # training is under way
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        code, err = finish(proc)
        assert code == -signal.SIGKILL and "Traceback" not in err, err
        model, ck = LanguageModel.load(run / "model", return_checkpoint=True)   # falls back to .model.old
        assert ck.meta["step"] > last and ck.meta["history"]["step"] == ck.meta["step"]
        assert all(np.isfinite(p).all() for p in model.params.values())
        last = ck.meta["step"]
    assert main(["train", str(corpus), "--resume", str(run), "--steps", str(last + 3), "--no-progress"]) == 0
    _, ck = LanguageModel.load(run / "model", return_checkpoint=True)
    assert ck.meta["step"] == last + 3 and last > 0


def test_sigkill_at_random_moments_leaves_a_loadable_resumable_checkpoint(tmp_path, corpus):
    kill_at_random_moments(tmp_path, corpus, kills=3, seed=0)


@pytest.mark.slow
def test_sigkill_at_random_moments_many_times(tmp_path, corpus):
    kill_at_random_moments(tmp_path, corpus, kills=25, seed=1)


# ------------------------------------------------------------------------------- exact resume, determinism
@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus):
    """Two uninterrupted 20-step float64 runs with the same seed."""
    runs = [tmp_path_factory.mktemp("ref") / "run" for _ in range(2)]
    procs = [start(corpus, "--out", run, *EXACT, "--steps", "20") for run in runs]
    for proc in procs:
        code, err = finish(proc)
        assert code == 0, err
    return runs


def test_same_seed_same_weights_and_samples(reference, capsys):
    a, b = reference
    for name in ("model.safetensors", "optim.safetensors"):
        assert (a / "model" / name).read_bytes() == (b / "model" / name).read_bytes(), name
    assert (a / "samples.txt").read_text() == (b / "samples.txt").read_text()
    outs = []
    for run in (a, b, a):
        assert main(["sample", str(run), "--num", "3", "--length", "40", "--seed", "5"]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] == outs[2]
    assert main(["sample", str(a), "--num", "3", "--length", "40", "--seed", "6"]) == 0
    assert capsys.readouterr().out != outs[0]                          # the seed does matter


def test_a_different_seed_gives_different_weights(reference, corpus, tmp_path):
    args = [a if a != "3" else "4" for a in EXACT]
    code, err = finish(start(corpus, "--out", tmp_path / "run", *args, "--steps", "20"))
    assert code == 0, err
    assert not np.array_equal(weights(tmp_path / "run")["head.W_y"], weights(reference[0])["head.W_y"])


def test_stop_then_resume_equals_uninterrupted_bit_for_bit(reference, corpus, tmp_path):
    run = tmp_path / "run"
    code, err = finish(start(corpus, "--out", run, *EXACT, "--steps", "9"))
    assert code == 0, err
    code, err = finish(start(corpus, "--resume", run, "--steps", "20", "--no-progress"))
    assert code == 0, err
    assert_same_weights(weights(run), weights(reference[0]))


def test_sigkill_then_resume_equals_uninterrupted_bit_for_bit(reference, corpus, tmp_path):
    run = tmp_path / "run"
    proc = start(corpus, "--out", run, *EXACT, "--steps", "20")
    wait_for(run / "model" / "checkpoint.json", proc)
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    killed_at = load_checkpoint(run / "model").meta["step"]
    code, err = finish(start(corpus, "--resume", run, "--no-progress"))
    assert code == 0, err
    assert_same_weights(weights(run), weights(reference[0]))
    assert 1 <= killed_at <= 20


# ------------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, corpus):
    run = tmp_path / "run"
    proc = start(corpus, "--out", run, *TINY, "--steps", "1000000")
    assert proc.stderr.readline().startswith("seqmodels train:")       # printed just before training starts
    time.sleep(0.5)
    assert not (run / "model").exists()                                # --checkpoint-every 0: nothing yet
    proc.send_signal(signal.SIGINT)
    for _ in range(3):                                                 # like pressing Ctrl-C again if the
        try:                                                           # first press was lost on a loaded box
            proc.wait(timeout=30)
            break
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
    code, err = finish(proc)
    assert code == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "interrupted" in line]
    assert len(lines) == 1 and f"--resume {run}" in lines[0], err
    step = load_checkpoint(run / "model").meta["step"]
    assert step > 0 and f"step {step}" in lines[0]
    LanguageModel.load(run / "model")


def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path, corpus):
    run = tmp_path / "run"
    proc = start(corpus, "--out", run, *TINY, "--steps", "1000000")
    assert proc.stderr.readline().startswith("seqmodels train:")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and f"--resume {run}" in err
    step = load_checkpoint(run / "model").meta["step"]
    assert step > 0
    LanguageModel.load(run / "model")


def test_resuming_after_ctrl_c_completes_with_exit_0(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    assert main(["train", str(corpus), "--out", str(run), *TINY, "--steps", "3"]) == 0
    model, ck = LanguageModel.load(run / "model", return_checkpoint=True)
    ck.meta["history"]["interrupted"] = True                            # what Ctrl-C at step 3 leaves
    model.save(run / "model", meta=ck.meta, extra_arrays=ck.extra)
    capsys.readouterr()
    assert main(["train", str(corpus), "--resume", str(run), "--steps", "5", "--no-progress"]) == 0
    assert "interrupted" not in capsys.readouterr().err
    assert load_checkpoint(run / "model").meta["history"]["interrupted"] is False


# ------------------------------------------------------------------------------- non-finite guard
def small_model(dtype=np.float64) -> LanguageModel:
    vocab = Vocabulary.from_text(CORPUS, level="char", lines_as_sequences=True, order="sorted")
    return LanguageModel(vocab, "lstm", 8, dtype=dtype, seed=0)


def poisoned(model, at_call: int, what: str):
    """Make ``model.train_batch`` report a NaN loss, or leave an inf in one gradient, on call ``at_call``."""
    real, calls = model.train_batch, [0]

    def train_batch(batch):
        calls[0] += 1
        loss, n = real(batch)
        if calls[0] == at_call:
            if what == "loss":
                return float("nan"), n
            model.grads["head.W_y"][0, 0] = np.inf
        return loss, n
    model.train_batch = train_batch


@pytest.mark.parametrize("what", ["loss", "gradient"])
def test_skip_leaves_the_weights_unchanged_and_records_the_step(what):
    model = small_model()
    poisoned(model, 3, what)
    data = model.batcher(CORPUS, batch_size=4, seq_len=10)
    seen = [{k: v.copy() for k, v in model.params.items()}]
    history = train(model, data, TrainConfig(steps=5, lr=1e-2), progress=False,
                    on_step=lambda step, rec: seen.append({k: v.copy() for k, v in model.params.items()}))
    assert_same_weights(seen[3], seen[2])                             # step 3 was skipped
    assert not np.array_equal(seen[4]["head.W_y"], seen[3]["head.W_y"])   # training went on
    assert not np.array_equal(seen[2]["head.W_y"], seen[1]["head.W_y"])
    assert [s for s, _, _ in history.nonfinite] == [3] and history.step == 5
    _, loss, norm = history.nonfinite[0]
    assert math.isnan(loss) and math.isfinite(norm) and norm > 0 if what == "loss" else \
        math.isfinite(loss) and norm == math.inf
    assert all(np.isfinite(p).all() for p in model.params.values())


def test_stop_names_step_loss_and_norm_and_writes_no_checkpoint_afterwards(tmp_path):
    model = small_model()
    poisoned(model, 3, "loss")
    saved = []
    real_save = model.save_training
    model.save_training = lambda d, opt, data, history, *a, **k: (saved.append(history.step),
                                                                   real_save(d, opt, data, history, *a, **k))
    with pytest.raises(NonFiniteError, match=r"non-finite loss at step 3: loss=nan, gradient norm=\d") as e:
        model.fit(CORPUS, batch_size=4, seq_len=10, steps=6, lr=1e-2, nonfinite="stop",
                  checkpoint_dir=tmp_path / "ck", checkpoint_every=1, progress=False)
    assert "the weights were not updated" in str(e.value)
    assert saved == [1, 2]
    back, ck = LanguageModel.load(tmp_path / "ck", return_checkpoint=True)
    assert ck.meta["step"] == 2
    for k, v in back.params.items():
        np.testing.assert_array_equal(v, model.params[k], err_msg=k)   # the stopped step changed nothing


def test_stop_through_the_command_line_is_one_line_and_exit_code_7(tmp_path, corpus, monkeypatch, capsys):
    real, calls = LanguageModel.train_batch, [0]

    def train_batch(self, batch):
        calls[0] += 1
        loss, n = real(self, batch)
        return (float("inf"), n) if calls[0] == 4 else (loss, n)

    monkeypatch.setattr(LanguageModel, "train_batch", train_batch)
    run = tmp_path / "run"
    code = main(["train", str(corpus), "--out", str(run), *TINY, "--steps", "8", "--checkpoint-every", "1",
                 "--nonfinite", "stop"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 7 and err[-1].startswith("seqmodels train: error: non-finite loss at step 4: loss=inf")
    assert "gradient norm=" in err[-1] and not any("Traceback" in line for line in err)
    assert load_checkpoint(run / "model").meta["step"] == 3
    assert History.from_dict(load_checkpoint(run / "model").meta["history"]).nonfinite == []
