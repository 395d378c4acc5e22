"""The agreement task, the experiment runners, and the training loop's clip/non-finite records."""

import math

import numpy as np
import pytest

import seqmodels as sm
from seqmodels.core.gradcheck import numerical_gradient, relative_error
from seqmodels.diagnostics import experiments as ex
from seqmodels.training.loop import TrainConfig, train


# ----------------------------------------------------------------------------- the task
def test_agreement_batch_structure():
    x, y = ex.agreement_batch(np.random.default_rng(0), 500, gap=7, attractor_rate=0.3)
    assert x.shape == (500, 9)
    assert np.array_equal(x[:, 0], np.where(y == 1, ex.PLURAL, ex.SINGULAR))
    assert np.all(x[:, -1] == ex.VERB)
    middle = x[:, 1:-1]
    assert not np.isin(middle, [ex.SINGULAR, ex.PLURAL, ex.VERB]).any()
    rate = np.isin(middle, ex.ATTRACTORS).mean()
    assert 0.26 < rate < 0.34                                  # 3500 draws at p = 0.3
    assert 0.4 < y.mean() < 0.6                                 # 500 fair coins
    x0, _ = ex.agreement_batch(np.random.default_rng(0), 50, gap=5, attractor_rate=0.0)
    assert not np.isin(x0, ex.ATTRACTORS).any()
    x1, _ = ex.agreement_batch(np.random.default_rng(0), 50, gap=5, attractor_rate=1.0)
    assert np.isin(x1[:, 1:-1], ex.ATTRACTORS).all()
    assert ex.agreement_batch(np.random.default_rng(0), 3, gap=0)[0].shape == (3, 2)
    with pytest.raises(sm.ConfigError):
        ex.agreement_batch(np.random.default_rng(0), 3, gap=2, attractor_rate=1.5)


def test_matched_hidden_sizes_count_the_real_parameters():
    sizes = ex.matched_hidden_sizes(2400)
    for cell, h in sizes.items():
        model = ex.AgreementModel(cell, h, seed=0)
        assert model.num_parameters() == ex.count_parameters(cell, len(ex.VOCAB), h)
        assert abs(model.num_parameters() - 2400) / 2400 < 0.05
    assert sizes["rnn"] > sizes["sgru"] > sizes["gru"] > sizes["lstm"]
    layer = ex.AgreementModel("irnn", 5, seed=0).layer
    np.testing.assert_array_equal(layer.params["W_a"][:, :5], np.eye(5))
    assert layer.cell.activation == "relu"


@pytest.mark.parametrize("cell", ["rnn", "sgru", "lstm"])
def test_agreement_model_gradients(cell):
    model = ex.AgreementModel(cell, 3, dtype=np.float64, seed=1)
    x, y = ex.agreement_batch(np.random.default_rng(2), 4, gap=3)

    def loss():
        logits = model.logits(x)
        return float(-np.mean(logits[np.arange(4), y] - np.log(np.exp(logits).sum(1))))

    model.zero_grad()
    value, n = model.train_batch((x, y))
    assert value == pytest.approx(loss(), rel=1e-12) and n == 4
    for key, p in model.params.items():
        assert relative_error(model.grads[key], numerical_gradient(loss, p)) < 1e-6, key


def test_readout_dout_is_the_unit_verb_direction():
    model = ex.AgreementModel("gru", 4, dtype=np.float64, seed=0)
    x, _ = ex.agreement_batch(np.random.default_rng(0), 2, gap=3)
    d = model.readout_dout(x)
    W = model.head.params["W_y"]
    w = (W[1] - W[0]) / np.linalg.norm(W[1] - W[0])
    np.testing.assert_allclose(d[:, -1], np.tile(w / 2, (2, 1)), rtol=1e-12)
    assert np.all(d[:, :-1] == 0)


def test_irnn_learns_a_short_gap():
    res, model = ex.train_agreement("irnn", 5, 16, steps=300, seed=0)
    assert res.accuracy > 0.95 and res.steps < 300          # stopped early at 99 % running accuracy


def test_run_agreement_quick_report():
    report = ex.run_agreement(["rnn", "lstm"], [2, 4], target_params=300, steps=5, curve_gap=3)
    assert report.curve_gap == 2
    assert [(r.cell, r.gap) for r in report.results] == [("rnn", 2), ("rnn", 4), ("lstm", 2), ("lstm", 4)]
    with_curves = [r for r in report.results if r.curve_init is not None]
    assert [r.gap for r in with_curves] == [2, 2] and len(with_curves[0].curve_init) == 4
    assert list(report.gates) == ["lstm"] and sorted(report.gates["lstm"][0].gates) == ["c", "f", "o", "u"]
    table = ex.agreement_table(report)
    assert "tanh RNN" in table and "G=4" in table
    assert report.accuracy("lstm", 4) == report.results[-1].accuracy


# ------------------------------------------------------------------- clip statistics
class Recorder:
    """Wraps a model: keeps a copy of every step's parameters and unclipped gradients."""

    def __init__(self, model, poison_step=None):
        self.model, self.poison_step = model, poison_step
        self.params, self.grads = model.params, model.grads
        self.seen_params, self.seen_grads = [], []

    def zero_grad(self):
        self.model.zero_grad()

    def train_batch(self, batch):
        loss, n = self.model.train_batch(batch)
        if len(self.seen_grads) + 1 == self.poison_step:
            next(iter(self.grads.values())).flat[0] = np.nan
        self.seen_params.append({k: v.copy() for k, v in self.params.items()})
        self.seen_grads.append({k: v.copy() for k, v in self.grads.items()})
        return loss, n


def batches(n, gap=6):
    rng = np.random.default_rng(3)
    return [ex.agreement_batch(rng, 8, gap) for _ in range(n)]


@pytest.mark.parametrize("mode,threshold", [(None, 5.0), ("value", 0.05), ("norm", 0.5)])
def test_recorded_clip_statistics_match_a_direct_computation(mode, threshold):
    model = ex.AgreementModel("rnn", 8, dtype=np.float64, seed=0, init_scale=2.0)
    rec = Recorder(model)
    lr = 0.3
    hist = train(rec, batches(12), TrainConfig(optimizer="sgd", lr=lr, clip=mode, clip_value=threshold, epochs=1),
                 progress=False)
    assert [s for s, *_ in hist.grad_norm] == list(range(1, 13))
    clipped_any = False
    for k, (step, before, after, n_clipped) in enumerate(hist.grad_norm):
        g = np.concatenate([v.ravel() for v in rec.seen_grads[k].values()])
        norm = math.sqrt(float(np.sum(g * g)))
        assert before == pytest.approx(norm, rel=1e-12)
        if mode is None:
            want_after, want_n, used = norm, 0, g
        elif mode == "value":
            used = np.clip(g, -threshold, threshold)
            want_after, want_n = float(np.linalg.norm(used)), int(np.sum(np.abs(g) > threshold))
        else:
            scale = min(1.0, threshold / norm)
            used = g * scale
            want_after, want_n = min(norm, threshold), (int(np.count_nonzero(g)) if norm > threshold else 0)
        assert after == pytest.approx(want_after, rel=1e-12) and n_clipped == want_n
        clipped_any |= want_n > 0
        if k + 1 < len(rec.seen_params):                      # SGD applied exactly the clipped gradient
            p0 = np.concatenate([v.ravel() for v in rec.seen_params[k].values()])
            p1 = np.concatenate([v.ravel() for v in rec.seen_params[k + 1].values()])
            np.testing.assert_allclose(p1, p0 - lr * used, rtol=1e-12, atol=1e-14)
    assert clipped_any == (mode is not None)
    assert hist.nonfinite == []


def test_nonfinite_gradient_is_recorded_and_skipped():
    model = ex.AgreementModel("rnn", 6, dtype=np.float64, seed=0)
    rec = Recorder(model, poison_step=3)
    hist = train(rec, batches(5), TrainConfig(optimizer="sgd", lr=0.1, clip="norm", epochs=1), progress=False)
    assert len(hist.nonfinite) == 1 and hist.nonfinite[0][0] == 3 and math.isnan(hist.nonfinite[0][2])
    assert math.isnan(hist.grad_norm[2][1]) and hist.grad_norm[2][3] == 0
    for k in rec.seen_params[2]:                               # step 3 left the weights as they were
        np.testing.assert_array_equal(rec.seen_params[3][k], rec.seen_params[2][k])
    assert not np.array_equal(rec.seen_params[1]["rnn.W_a"], rec.seen_params[2]["rnn.W_a"])


def test_run_exploding_shares_the_start_and_clips_as_told():
    runs = ex.run_exploding(hidden=8, gap=6, steps=15, init_scale=2.5, lr=0.5, seed=0)
    assert [r.name for r in runs] == ["none", "value ±5", "norm 5"]
    first = [r.history.grad_norm[0][1] for r in runs]
    assert first[0] == pytest.approx(first[1], rel=1e-6) and first[0] == pytest.approx(first[2], rel=1e-6)
    assert all(n == 0 and b == a for _, b, a, n in runs[0].history.grad_norm)
    assert all(a <= 5.0 * (1 + 1e-6) for _, b, a, n in runs[2].history.grad_norm if math.isfinite(a))
    s = runs[2].summary()
    assert s["steps"] == 15 and s["clipped_steps"] == sum(1 for _, b, a, n in runs[2].history.grad_norm if b > 5)
    with pytest.raises(sm.ConfigError, match="settings"):
        ex.run_exploding(steps=1, settings=("sometimes",))
