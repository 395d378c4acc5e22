"""Property tests over random shapes: batch 1, T = 1, lengths containing 0."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from seqmodels.core.gradcheck import check_layer

from .helpers import CELLS, make, random_state


@st.composite
def problems(draw):
    name = draw(st.sampled_from(sorted(CELLS)))
    B = draw(st.integers(1, 3))
    T = draw(st.integers(1, 4))
    D = draw(st.integers(1, 3))
    H = draw(st.integers(1, 3))
    lengths = np.array(draw(st.lists(st.integers(0, T), min_size=B, max_size=B)))
    reverse = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return name, B, T, D, H, lengths, reverse, seed


@settings(max_examples=40, deadline=None)
@given(problems())
def test_gradients_hold_for_any_shape(problem):
    name, B, T, D, H, lengths, reverse, seed = problem
    rng = np.random.default_rng(seed)
    layer = make(name, D, H, seed=seed, reverse=reverse)
    x = rng.standard_normal((B, T, D))
    s0 = random_state(layer, B, rng)
    errors = check_layer(layer, x, lengths, s0)
    assert max(errors.values()) < 1e-6, errors


@settings(max_examples=40, deadline=None)
@given(problems())
def test_padding_contract_for_any_shape(problem):
    name, B, T, D, H, lengths, reverse, seed = problem
    rng = np.random.default_rng(seed)
    layer = make(name, D, H, seed=seed, reverse=reverse)
    x = rng.standard_normal((B, T, D))
    s0 = random_state(layer, B, rng)
    out, final, cache = layer.forward(x, lengths, s0)
    mask = np.arange(T)[None, :] < lengths[:, None]
    assert not out[~mask].any()
    x2 = x.copy()
    x2[~mask] = rng.standard_normal(x2[~mask].shape) * 100    # garbage in the padding changes nothing
    out2, final2, _ = layer.forward(x2, lengths, s0)
    np.testing.assert_array_equal(out, out2)
    zero = lengths == 0
    s0s = s0 if isinstance(s0, tuple) else (s0,)
    fs = final if isinstance(final, tuple) else (final,)
    for a, b in zip(fs, s0s):
        np.testing.assert_array_equal(a[zero], b[zero])
