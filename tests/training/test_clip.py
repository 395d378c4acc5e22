"""Tests for seqmodels.training.clip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from seqmodels.core.errors import ConfigError, DTypeError
from seqmodels.training.clip import ClipStats, clip, clip_by_global_norm, clip_by_value, global_norm


def grads_case(seed=0, scale=1.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    fused = (rng.standard_normal((6, 5)) * scale).astype(dtype)
    return fused, {"W": fused[:4], "V": fused[4:, :3], "b": fused[4:, 3:]}


def flat(grads):
    return np.concatenate([np.ravel(g).astype(np.float64) for g in grads.values()])


def test_global_norm_reference():
    _, g = grads_case()
    assert global_norm(g) == pytest.approx(np.linalg.norm(flat(g)), rel=1e-14)
    assert global_norm(list(g.values())) == global_norm(g)
    assert global_norm({"a": np.zeros(3)}) == 0.0
    assert global_norm({"a": np.array([3.0]), "b": np.array([[4.0]])}) == 5.0


def test_global_norm_does_not_overflow():
    g32 = {"a": np.full(100, 1e30, np.float32)}          # squares overflow float32
    assert global_norm(g32) == pytest.approx(1e31, rel=1e-6)
    g64 = {"a": np.full(100, 1e200), "b": np.array([-1e200])}   # squares overflow float64
    assert global_norm(g64) == pytest.approx(1e200 * math.sqrt(101), rel=1e-12)


def test_global_norm_non_finite():
    assert math.isnan(global_norm({"a": np.array([1.0, np.nan])}))
    assert global_norm({"a": np.array([1.0, -np.inf])}) == math.inf


def test_clip_by_value_in_place_returns_pre_clip_norm():
    fused, g = grads_case(1, scale=3.0)
    expected = np.clip(fused, -2.0, 2.0)
    norm = np.linalg.norm(flat(g))
    ids = [id(a) for a in g.values()]
    assert clip_by_value(g, 2.0) == pytest.approx(norm, rel=1e-14)
    assert [id(a) for a in g.values()] == ids
    np.testing.assert_array_equal(fused, expected)     # through the views


def test_clip_by_global_norm_scales_only_above_threshold():
    fused, g = grads_case(2, scale=3.0)
    original, norm = fused.copy(), np.linalg.norm(flat(g))
    assert clip_by_global_norm(g, 2 * norm) == pytest.approx(norm, rel=1e-14)
    np.testing.assert_array_equal(fused, original)
    assert clip_by_global_norm(g, 1.5) == pytest.approx(norm, rel=1e-14)
    np.testing.assert_allclose(fused, original * (1.5 / norm), rtol=1e-14)
    assert global_norm(g) == pytest.approx(1.5, rel=1e-14)


def test_clip_by_global_norm_leaves_non_finite_untouched():
    g = {"a": np.array([1.0, np.inf, 3.0])}
    assert clip_by_global_norm(g, 1.0) == math.inf
    np.testing.assert_array_equal(g["a"], [1.0, np.inf, 3.0])


def test_clip_stats_value_mode():
    g = {"a": np.array([0.5, -2.0, 1.0]), "b": np.array([[3.0, -1.0]])}
    before = math.sqrt(0.25 + 4 + 1 + 9 + 1)
    stats = clip(g, "value", 1.0)
    assert isinstance(stats, ClipStats)
    assert stats.n_clipped == 2                        # |g| == limit is not clipped
    assert stats.norm_before == pytest.approx(before, rel=1e-14)
    assert stats.norm_after == pytest.approx(math.sqrt(0.25 + 1 + 1 + 1 + 1), rel=1e-14)
    assert stats.finite
    np.testing.assert_array_equal(g["a"], [0.5, -1.0, 1.0])
    assert clip(g, "value", 1.0) == (stats.norm_after, stats.norm_after, 0, True)


def test_clip_stats_norm_mode():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([-4.0])}
    assert clip(g, "norm", 10.0) == (5.0, 5.0, 0, True)
    stats = clip(g, "norm", 1.0)
    assert stats == (5.0, 1.0, 2, True)                 # the zero element is not counted
    np.testing.assert_allclose(g["a"], [0.6, 0.0], rtol=1e-15)
    assert global_norm(g) == pytest.approx(1.0, rel=1e-14)


def test_clip_none_mode_and_non_finite():
    g = {"a": np.array([30.0, -40.0])}
    assert clip(g, None) == (50.0, 50.0, 0, True)
    np.testing.assert_array_equal(g["a"], [30.0, -40.0])
    for mode in ("value", "norm", None):
        bad = {"a": np.array([30.0, np.nan]), "b": np.array([np.inf])}
        stats = clip(bad, mode, 1.0)
        assert not stats.finite and stats.n_clipped == 0 and math.isnan(stats.norm_before)
        np.testing.assert_array_equal(bad["a"], [30.0, np.nan])
        np.testing.assert_array_equal(bad["b"], [np.inf])


@pytest.mark.parametrize("threshold", [None, 0, -1.0, float("nan"), float("inf"), "big"])
def test_invalid_threshold(threshold):
    for mode in ("value", "norm"):
        with pytest.raises(ConfigError, match="threshold"):
            clip({"a": np.zeros(1)}, mode, threshold)
    if threshold is not None:
        with pytest.raises(ConfigError, match="limit"):
            clip_by_value({"a": np.zeros(1)}, threshold)
        with pytest.raises(ConfigError, match="max_norm"):
            clip_by_global_norm({"a": np.zeros(1)}, threshold)


def test_invalid_mode_and_grads():
    with pytest.raises(ConfigError, match="mode.*'clamp'"):
        clip({"a": np.zeros(1)}, "clamp", 1.0)
    with pytest.raises(DTypeError, match="grads"):
        global_norm({"a": np.zeros(1, np.int32)})
    with pytest.raises(DTypeError, match="grads"):
        global_norm({"a": [1.0]})


def test_matches_torch_clip_utilities():
    torch = pytest.importorskip("torch")
    fused, g = grads_case(3, scale=5.0)
    tensors = [torch.zeros(a.shape, dtype=torch.float64, requires_grad=True) for a in g.values()]
    for t, a in zip(tensors, g.values()):
        t.grad = torch.tensor(a.copy())
    ref_norm = torch.nn.utils.clip_grad_norm_(tensors, 2.0).item()
    assert clip_by_global_norm(g, 2.0) == pytest.approx(ref_norm, rel=1e-12)
    for t, a in zip(tensors, g.values()):               # torch divides by (norm + 1e-6)
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-6)
    torch.nn.utils.clip_grad_value_(tensors, 0.1)
    clip_by_value(g, 0.1)
    for t, a in zip(tensors, g.values()):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-6)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.integers(1, 20), elements=st.floats(-1e6, 1e6)),
       st.floats(1e-3, 1e3), st.sampled_from(["value", "norm"]))
def test_clip_bounds_property(a, threshold, mode):
    g = {"a": a.copy()}
    stats = clip(g, mode, threshold)
    if mode == "value":
        assert np.abs(g["a"]).max() <= threshold
        assert stats.n_clipped == int(np.sum(np.abs(a) > threshold))
        np.testing.assert_array_equal(g["a"], np.clip(a, -threshold, threshold))
    else:
        assert global_norm(g) <= threshold * (1 + 1e-12)
        assert global_norm(g) == pytest.approx(min(stats.norm_before, threshold), rel=1e-12)
    assert stats.norm_before == pytest.approx(np.linalg.norm(a), rel=1e-12)


def test_float32_norm_is_accurate_and_handles_huge_values():
    rng = np.random.default_rng(3)
    g = [rng.standard_normal(300_007).astype(np.float32), rng.standard_normal((7, 5)).astype(np.float32)]
    exact = np.sqrt(sum(float((a.astype(np.float64) ** 2).sum()) for a in g))
    assert global_norm(g) == pytest.approx(exact, rel=1e-6)
    assert global_norm([np.array([3e20, 4e20], np.float32)]) == pytest.approx(5e20, rel=1e-6)   # squares beyond float32


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("compiled", [True, False])
def test_float32_norm_same_on_every_path(threads, compiled):
    """The compiled float64 sum of squares (split over seqmodels' threads when big) and the NumPy dots give
    the exact norm to float32 accuracy or better; NaN and inf still come through."""
    from seqmodels.cells import fast
    from seqmodels.core import accel
    if compiled and accel.kernels(np.float32) is None:
        pytest.skip("numba not installed: the compiled path does not exist")
    rng = np.random.default_rng(4)
    g = {"W": rng.standard_normal(1_000_003).astype(np.float32) * 3, "b": rng.standard_normal(17).astype(np.float32)}
    exact = np.sqrt(sum(float((a.astype(np.float64) ** 2).sum()) for a in g.values()))
    before = accel.set_threads(threads)
    try:
        with fast.enabled(compiled):
            assert global_norm(g) == pytest.approx(exact, rel=1e-7 if compiled else 1e-6)
            assert global_norm([np.array([3e20, 4e20], np.float32)]) == pytest.approx(5e20, rel=1e-6)
            g["W"][500_000] = np.inf
            assert global_norm(g) == np.inf
            g["W"][7] = np.nan
            assert np.isnan(global_norm(g))
    finally:
        accel.set_threads(before)
