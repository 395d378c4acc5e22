"""Tests for seqmodels.core.functional: references computed independently (plain formulas in
float64 / math, central differences, PyTorch when installed)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from seqmodels.core import functional as F
from seqmodels.core.errors import ConfigError, DTypeError, SeqModelsError, ShapeError


def rng(seed=0):
    return np.random.default_rng(seed)


def central_diff(f, x, eps=1e-6):
    """d f(x) / dx by central differences, element by element, in float64."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        hi = f(x)
        x[i] = old - eps
        lo = f(x)
        x[i] = old
        g[i] = (hi - lo) / (2 * eps)
    return g


@pytest.fixture
def strict():
    """Turn numpy floating-point warnings (except underflow to 0) into errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            yield


# --------------------------------------------------------------------------- sigmoid family


def test_sigmoid_matches_definition():
    x = np.linspace(-30, 30, 601)
    expected = np.array([1.0 / (1.0 + math.exp(-v)) for v in x])
    np.testing.assert_allclose(F.sigmoid(x), expected, rtol=1e-14, atol=0)


def test_sigmoid_keeps_relative_precision_in_both_tails():
    for v in (-50.0, -300.0, -700.0):
        assert F.sigmoid(np.array([v]))[0] == pytest.approx(math.exp(v), rel=1e-13)
    # 1 - σ(40) is below float64 resolution; σ(40) must round to exactly 1
    assert F.sigmoid(np.array([40.0]))[0] == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_extremes_without_warnings(strict, dtype):
    x = np.array([-1e4, -100.0, 0.0, 100.0, 1e4], dtype=dtype)
    y = F.sigmoid(x)
    assert y.dtype == dtype
    assert y[0] == 0.0 and y[2] == 0.5 and y[-1] == 1.0
    assert np.all(np.isfinite(y))
    assert F.log_sigmoid(x).dtype == dtype


def test_sigmoid_out_and_in_place():
    x = rng().standard_normal((3, 4))
    expected = 1.0 / (1.0 + np.exp(-x))
    out = np.empty_like(x)
    assert F.sigmoid(x, out=out) is out
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    F.sigmoid(x, out=x)
    np.testing.assert_allclose(x, expected, rtol=1e-14)
    with pytest.raises(ShapeError, match="out"):
        F.sigmoid(x, out=np.empty((4, 3)))


def test_sigmoid_scalar_and_int_input():
    assert F.sigmoid(0) == 0.5
    assert F.sigmoid(np.array([0, 2])).dtype == np.float64
    with pytest.raises(DTypeError, match="x"):
        F.sigmoid(np.array(["a"]))


def test_log_sigmoid_reference_and_extremes(strict):
    x = np.linspace(-30, 30, 301)
    expected = np.array([-math.log1p(math.exp(-v)) for v in x])
    np.testing.assert_allclose(F.log_sigmoid(x), expected, rtol=1e-13, atol=1e-300)
    out = F.log_sigmoid(np.array([-1e4, 40.0, 1e4]))
    assert out[0] == -1e4
    assert out[1] == pytest.approx(-math.exp(-40.0), rel=1e-12)   # log(1 - tiny) ≈ -tiny
    assert out[2] == 0.0


@pytest.mark.parametrize(
    "forward, backward, from_output",
    [
        (F.sigmoid, F.sigmoid_backward, True),
        (np.tanh, F.tanh_backward, True),
        (F.log_sigmoid, F.log_sigmoid_backward, False),
    ],
)
def test_elementwise_backward_matches_central_differences(forward, backward, from_output):
    x = rng(1).standard_normal((3, 4)) * 3
    dout = rng(2).standard_normal((3, 4))
    num = central_diff(lambda z: float(np.sum(dout * forward(z))), x)
    got = backward(dout, forward(x) if from_output else x)
    np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- softmax family


def test_softmax_matches_naive_and_sums_to_one():
    x = rng().standard_normal((2, 3, 5)) * 4
    naive = np.exp(x) / np.exp(x).sum(-1, keepdims=True)
    np.testing.assert_allclose(F.softmax(x), naive, rtol=1e-13)
    np.testing.assert_allclose(F.softmax(x, axis=0), np.exp(x) / np.exp(x).sum(0), rtol=1e-13)
    np.testing.assert_allclose(F.log_softmax(x), np.log(naive), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(F.log_softmax(x, axis=1), np.log(np.exp(x) / np.exp(x).sum(1, keepdims=True)),
                               rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_family_stable_at_large_logits(strict, dtype):
    x = np.array([[1e4, -1e4, 1e4], [-1e4, -1e4, -1e4]], dtype=dtype)
    p = F.softmax(x)
    assert p.dtype == dtype
    np.testing.assert_allclose(p, [[0.5, 0, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    logp = F.log_softmax(x)
    np.testing.assert_allclose(logp, [[-math.log(2), -2e4 - math.log(2), -math.log(2)],
                                      [-math.log(3)] * 3], rtol=1e-6)
    np.testing.assert_allclose(F.logsumexp(x), [1e4 + math.log(2), -1e4 + math.log(3)], rtol=1e-7)


def test_logsumexp_reference_shapes_and_infinities():
    x = rng(3).standard_normal((4, 6)) * 10
    ref = np.array([math.log(math.fsum(math.exp(v) for v in row)) for row in x])
    np.testing.assert_allclose(F.logsumexp(x), ref, rtol=1e-13)
    assert F.logsumexp(x, axis=0, keepdims=True).shape == (1, 6)
    assert F.logsumexp(x, axis=1).shape == (4,)
    np.testing.assert_allclose(F.logsumexp(x, axis=0), np.log(np.exp(x).sum(0)), rtol=1e-13)
    rows = np.array([[-np.inf, -np.inf], [-np.inf, 0.0], [np.inf, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(F.logsumexp(rows), [-np.inf, 0.0, np.inf])
        np.testing.assert_array_equal(F.softmax(rows[1:2]), [[0.0, 1.0]])


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_family_backward_matches_central_differences(axis):
    x = rng(4).standard_normal((3, 4)) * 2
    dout = rng(5).standard_normal((3, 4))
    num = central_diff(lambda z: float(np.sum(dout * F.softmax(z, axis))), x)
    np.testing.assert_allclose(F.softmax_backward(dout, F.softmax(x, axis), axis), num, rtol=1e-6, atol=1e-9)
    num = central_diff(lambda z: float(np.sum(dout * F.log_softmax(z, axis))), x)
    np.testing.assert_allclose(F.log_softmax_backward(dout, F.log_softmax(x, axis), axis), num,
                               rtol=1e-6, atol=1e-9)
    dred = dout.sum(axis=axis)
    num = central_diff(lambda z: float(np.sum(dred * F.logsumexp(z, axis))), x)
    np.testing.assert_allclose(F.logsumexp_backward(dred, x, axis), num, rtol=1e-6, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (3, 5), elements=st.floats(-300, 300)), st.floats(-1e3, 1e3))
def test_softmax_shift_invariance(x, c):
    np.testing.assert_allclose(F.softmax(x + c), F.softmax(x), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(F.log_softmax(x + c) , F.log_softmax(x), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(F.logsumexp(x + c), F.logsumexp(x) + c, rtol=1e-12, atol=1e-9)


# ------------------------------------------------------------------------------------ masks


def test_length_mask_and_errors():
    np.testing.assert_array_equal(F.length_mask(np.array([0, 2, 3]), 3),
                                  [[0, 0, 0], [1, 1, 0], [1, 1, 1]])
    with pytest.raises(ShapeError, match=r"lengths\[1\] = 4"):
        F.length_mask(np.array([1, 4]), 3)
    with pytest.raises(ShapeError, match="lengths"):
        F.length_mask(np.array([-1]), 3)
    with pytest.raises(DTypeError, match="lengths"):
        F.length_mask(np.array([1.0]), 3)
    with pytest.raises(ShapeError, match=r"\(B,\)"):
        F.length_mask(np.array([[1]]), 3)


# --------------------------------------------------------------------- softmax cross-entropy


def naive_ce(logits, targets, valid):
    """-Σ log(exp(z_y) / Σ exp(z)) over valid positions, in plain Python (moderate logits only)."""
    total = 0.0
    for idx in np.ndindex(targets.shape):
        if valid[idx]:
            z = logits[idx]
            total -= math.log(math.exp(z[targets[idx]]) / math.fsum(math.exp(v) for v in z))
    return total


def ce_case(seed=0, B=3, T=4, V=5):
    r = rng(seed)
    logits = r.standard_normal((B, T, V)) * 3
    targets = r.integers(0, V, size=(B, T))
    lengths = np.array([T, 2, 0])[:B]
    return logits, targets, lengths


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_ce_loss_and_gradient_with_lengths(reduction):
    logits, targets, lengths = ce_case()
    valid = np.arange(4) < lengths[:, None]
    loss, d = F.softmax_cross_entropy(logits, targets, lengths=lengths, reduction=reduction)
    expected = naive_ce(logits, targets, valid) / (valid.sum() if reduction == "mean" else 1)
    assert isinstance(loss, float)
    assert loss == pytest.approx(expected, rel=1e-12)
    num = central_diff(lambda z: F.softmax_cross_entropy(z, targets, lengths=lengths, reduction=reduction)[0],
                       logits)
    np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-9)
    assert np.all(d[~valid] == 0)


def test_ce_mask_equals_lengths_and_combines_with_them():
    logits, targets, lengths = ce_case(1)
    by_len = F.softmax_cross_entropy(logits, targets, lengths=lengths)
    by_mask = F.softmax_cross_entropy(logits, targets, mask=np.arange(4) < lengths[:, None])
    assert by_len[0] == by_mask[0]
    np.testing.assert_array_equal(by_len[1], by_mask[1])
    mask = np.ones((3, 4), bool)
    mask[0, 0] = False
    both = F.softmax_cross_entropy(logits, targets, lengths=lengths, mask=mask)
    valid = (np.arange(4) < lengths[:, None]) & mask
    assert both[0] == pytest.approx(naive_ce(logits, targets, valid), rel=1e-12)


def test_ce_ignores_garbage_at_excluded_positions(strict):
    logits, targets, lengths = ce_case(2)
    clean = F.softmax_cross_entropy(logits, targets, lengths=lengths)
    dirty_logits, dirty_targets = logits.copy(), targets.copy()
    dirty_logits[1, 2:] = np.nan
    dirty_logits[2] = np.inf
    dirty_targets[1, 2:] = -1
    dirty_targets[2] = 99
    dirty = F.softmax_cross_entropy(dirty_logits, dirty_targets, lengths=lengths)
    assert dirty[0] == clean[0]
    np.testing.assert_array_equal(dirty[1], clean[1])


def test_ce_ignore_index():
    logits, targets, _ = ce_case(3)
    targets[0, 1] = targets[2, 3] = 0
    pad = F.softmax_cross_entropy(logits, targets, ignore_index=0, reduction="mean")
    masked = F.softmax_cross_entropy(logits, targets, mask=targets != 0, reduction="mean")
    assert pad[0] == masked[0]
    np.testing.assert_array_equal(pad[1], masked[1])
    t = targets.copy()
    t[0, 0] = -100                                  # an out-of-range pad id is fine when ignored
    F.softmax_cross_entropy(logits, t, ignore_index=-100)


def test_ce_many_to_one():
    r = rng(4)
    logits, targets = r.standard_normal((5, 3)), r.integers(0, 3, 5)
    mask = np.array([True, True, False, True, True])
    loss, d = F.softmax_cross_entropy(logits, targets, mask=mask, reduction="mean")
    assert loss == pytest.approx(naive_ce(logits, targets, mask) / 4, rel=1e-12)
    num = central_diff(lambda z: F.softmax_cross_entropy(z, targets, mask=mask, reduction="mean")[0], logits)
    np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ce_stable_at_1e4(strict, dtype):
    r = rng(5)
    logits = r.choice([-1e4, 1e4], size=(4, 6, 7)).astype(dtype)
    targets = r.integers(0, 7, size=(4, 6))
    loss, d = F.softmax_cross_entropy(logits, targets)
    assert d.dtype == dtype and math.isfinite(loss) and np.all(np.isfinite(d))
    # exact value: k logits at the maximum 1e4 -> log p = (z_y - 1e4) - log k
    k = (logits == 1e4).sum(-1)
    z_y = np.take_along_axis(logits.astype(np.float64), targets[..., None], -1)[..., 0]
    assert loss == pytest.approx(float(np.sum(-(z_y - 1e4) + np.log(k))), rel=1e-7)
    np.testing.assert_allclose(d.sum(-1), 0, atol=1e-6)


def test_ce_no_valid_positions_gives_zero():
    logits, targets, _ = ce_case()
    loss, d = F.softmax_cross_entropy(logits, targets, lengths=np.zeros(3, int), reduction="mean")
    assert loss == 0.0 and not d.any()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(-50, 50))
def test_ce_properties(seed, shift):
    logits, targets, lengths = ce_case(seed)
    loss, d = F.softmax_cross_entropy(logits, targets, lengths=lengths)
    assert loss >= 0
    np.testing.assert_allclose(d.sum(-1), 0, atol=1e-12)    # Σ_v (p_v - onehot_v) = 0
    loss2, d2 = F.softmax_cross_entropy(logits + shift, targets, lengths=lengths)
    assert loss2 == pytest.approx(loss, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(d2, d, atol=1e-9)


def test_ce_against_torch():
    torch = pytest.importorskip("torch")
    logits, targets, lengths = ce_case(6, B=3, T=6, V=9)
    valid = np.arange(6) < lengths[:, None]
    for reduction in ("sum", "mean"):
        z = torch.tensor(logits.reshape(-1, 9), requires_grad=True)
        y = torch.tensor(np.where(valid, targets, -100).reshape(-1))
        ref = torch.nn.functional.cross_entropy(z, y, ignore_index=-100, reduction=reduction)
        ref.backward()
        loss, d = F.softmax_cross_entropy(logits, targets, lengths=lengths, reduction=reduction)
        assert loss == pytest.approx(ref.item(), rel=1e-12)
        np.testing.assert_allclose(d.reshape(-1, 9), z.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_ce_validation_errors():
    logits, targets, lengths = ce_case()
    with pytest.raises(DTypeError, match="targets.*float64"):
        F.softmax_cross_entropy(logits, targets.astype(float))
    with pytest.raises(ShapeError, match=r"targets: expected shape \(3, 4\)"):
        F.softmax_cross_entropy(logits, targets[:, :3])
    bad = targets.copy()
    bad[0, 1] = 5
    with pytest.raises(ShapeError, match=r"\[0, 5\).*got 5 at index \(0, 1\)"):
        F.softmax_cross_entropy(logits, bad)
    bad[0, 1] = -1
    with pytest.raises(ShapeError, match="got -1"):
        F.softmax_cross_entropy(logits, bad)
    bad = targets.copy()
    bad[1, 3] = 7                                   # beyond lengths[1] = 2: allowed
    F.softmax_cross_entropy(logits, bad, lengths=lengths)
    with pytest.raises(ShapeError, match=r"lengths\[0\] = 5"):
        F.softmax_cross_entropy(logits, targets, lengths=np.array([5, 1, 1]))
    with pytest.raises(ShapeError, match="lengths"):
        F.softmax_cross_entropy(logits, targets, lengths=np.array([1, 1]))
    with pytest.raises(DTypeError, match="lengths"):
        F.softmax_cross_entropy(logits, targets, lengths=np.array([1.0, 1, 1]))
    with pytest.raises(DTypeError, match="mask"):
        F.softmax_cross_entropy(logits, targets, mask=np.ones((3, 4)))
    with pytest.raises(ShapeError, match="mask"):
        F.softmax_cross_entropy(logits, targets, mask=np.ones((3, 5), bool))
    with pytest.raises(ShapeError, match="lengths"):
        F.softmax_cross_entropy(logits[:, 0], targets[:, 0], lengths=np.array([1, 1, 1]))
    with pytest.raises(ShapeError, match="logits"):
        F.softmax_cross_entropy(logits[0, 0], targets[0, 0])
    with pytest.raises(ConfigError, match="reduction.*'avg'"):
        F.softmax_cross_entropy(logits, targets, reduction="avg")
    with pytest.raises(DTypeError, match="ignore_index"):
        F.softmax_cross_entropy(logits, targets, ignore_index=0.5)


# ---------------------------------------------------------------------- sigmoid cross-entropy


def naive_bce(x, y):
    s = 1.0 / (1.0 + np.exp(-x))
    return -y * np.log(s) - (1 - y) * np.log(1 - s)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_bce_sequence_multilabel_loss_and_gradient(reduction):
    r = rng(7)
    x, y = r.standard_normal((3, 4, 2)) * 3, r.uniform(0, 1, (3, 4, 2))
    lengths = np.array([4, 1, 0])
    valid = np.arange(4) < lengths[:, None]                  # (B, T): 5 valid time steps
    loss, d = F.sigmoid_cross_entropy(x, y, lengths=lengths, reduction=reduction)
    expected = naive_bce(x, y)[valid].sum() / (5 if reduction == "mean" else 1)
    assert loss == pytest.approx(expected, rel=1e-12)
    num = central_diff(lambda z: F.sigmoid_cross_entropy(z, y, lengths=lengths, reduction=reduction)[0], x)
    np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-9)
    assert not d[~valid].any()


def test_bce_positions_per_shape():
    r = rng(8)
    x, y = r.standard_normal((4, 3)), (r.uniform(size=(4, 3)) > 0.5)
    el = naive_bce(x, y.astype(float))
    assert F.sigmoid_cross_entropy(x, y, reduction="mean")[0] == pytest.approx(el.mean(), rel=1e-12)
    assert F.sigmoid_cross_entropy(x, y, reduction="mean", multilabel=True)[0] == pytest.approx(
        el.sum() / 4, rel=1e-12)
    mask = np.array([True, False, True, True])
    loss = F.sigmoid_cross_entropy(x, y, mask=mask, reduction="mean", multilabel=True)[0]
    assert loss == pytest.approx(el[mask].sum() / 3, rel=1e-12)
    loss = F.sigmoid_cross_entropy(x[:, 0], y[:, 0], reduction="mean")[0]
    assert loss == pytest.approx(el[:, 0].mean(), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_stable_at_1e4(strict, dtype):
    x = np.array([1e4, -1e4, 1e4, -1e4], dtype=dtype)
    y = np.array([0.0, 1.0, 1.0, 0.0])
    loss, d = F.sigmoid_cross_entropy(x, y)
    assert loss == 2e4
    assert d.dtype == dtype
    np.testing.assert_array_equal(d, [1.0, -1.0, 0.0, 0.0])


def test_bce_against_torch():
    torch = pytest.importorskip("torch")
    r = rng(9)
    x, y = r.standard_normal((3, 5, 4)) * 4, r.uniform(size=(3, 5, 4))
    xt = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(xt, torch.tensor(y), reduction="sum")
    ref.backward()
    loss, d = F.sigmoid_cross_entropy(x, y)
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(d, xt.grad.numpy(), rtol=1e-12, atol=1e-15)
    loss_mean, d_mean = F.sigmoid_cross_entropy(x, y, reduction="mean")
    assert loss_mean == pytest.approx(ref.item() / 15, rel=1e-12)   # per time step, summed over K
    np.testing.assert_allclose(d_mean, xt.grad.numpy() / 15, rtol=1e-12, atol=1e-15)


def test_bce_validation_errors():
    x, y = np.zeros((2, 3)), np.zeros((2, 3))
    for value in (1.5, -0.1, np.nan):
        bad = y.copy()
        bad[1, 2] = value
        with pytest.raises(ShapeError, match=r"\[0, 1\].*\(1, 2\)"):
            F.sigmoid_cross_entropy(x, bad)
    bad = y.copy()
    bad[1, 2] = 7.0                                  # excluded by lengths: allowed
    F.sigmoid_cross_entropy(x, bad, lengths=np.array([3, 2]))
    with pytest.raises(ShapeError, match="targets"):
        F.sigmoid_cross_entropy(x, y[:, :2])
    with pytest.raises(DTypeError, match="targets"):
        F.sigmoid_cross_entropy(x, np.array([["a"] * 3] * 2))
    with pytest.raises(ConfigError, match="multilabel"):
        F.sigmoid_cross_entropy(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), multilabel=False)
    with pytest.raises(ConfigError, match="multilabel"):
        F.sigmoid_cross_entropy(np.zeros(3), np.zeros(3), multilabel=True)
    with pytest.raises(ShapeError, match="mask"):
        F.sigmoid_cross_entropy(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), mask=np.ones((2, 3, 4), bool))
    with pytest.raises(ShapeError, match="lengths"):
        F.sigmoid_cross_entropy(np.zeros(3), np.zeros(3), lengths=np.array([1, 1, 1]))
    with pytest.raises(ShapeError, match="lengths"):
        F.sigmoid_cross_entropy(x, y, lengths=np.array([4, 1]))
    with pytest.raises(ConfigError, match="reduction"):
        F.sigmoid_cross_entropy(x, y, reduction="none")
    assert issubclass(ShapeError, SeqModelsError)
