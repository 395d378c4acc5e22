"""Builders shared by the layer tests: every cell variant, float64, randomised weights."""

import numpy as np

import seqmodels as sm

CELLS = {
    "rnn-tanh": lambda d, h, **kw: sm.RNN(d, h, "tanh", **kw),
    "rnn-relu-identity": lambda d, h, **kw: sm.RNN(d, h, "relu", init="identity", **kw),
    "gru-full": lambda d, h, **kw: sm.GRU(d, h, "full", **kw),
    "gru-simplified": lambda d, h, **kw: sm.GRU(d, h, "simplified", **kw),
    "gru-reset-after": lambda d, h, **kw: sm.GRU(d, h, "full", reset_after=True, **kw),
    "lstm": lambda d, h, **kw: sm.LSTM(d, h, **kw),
    "lstm-peephole": lambda d, h, **kw: sm.LSTM(d, h, peephole=True, **kw),
}


def make(name, d=3, h=4, seed=0, scale=0.5, **kw):
    """A float64 layer whose every parameter (peepholes and biases too) is random and non-zero."""
    layer = CELLS[name](d, h, dtype=np.float64, seed=seed, **kw)
    randomise(layer, seed, scale)
    return layer


def randomise(layer, seed=0, scale=0.5):
    rng = np.random.default_rng(seed + 100)
    for p in layer.params.values():
        p[...] = scale * rng.standard_normal(p.shape)
    return layer


def random_state(layer, batch, rng):
    z = layer.zero_state(batch)
    return _fill(z, rng)


def _fill(s, rng):
    if s is None:
        return None
    if isinstance(s, np.ndarray):
        return rng.standard_normal(s.shape)
    parts = [_fill(p, rng) for p in s]
    return type(s)(*parts) if hasattr(s, "_fields") else type(s)(parts)
