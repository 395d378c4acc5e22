"""Bad input raises ValueError/TypeError subclasses whose message names the argument and the value."""

import numpy as np
import pytest

import seqmodels as sm
from seqmodels.core.errors import ConfigError, DTypeError, NonFiniteError, ShapeError


@pytest.fixture
def lstm():
    return sm.LSTM(3, 4, seed=0)


def test_wrong_rank(lstm):
    with pytest.raises(ShapeError, match=r"x: expected a 3-d array.*\(5, 3\).*x\[None\]"):
        lstm.forward(np.zeros((5, 3)))
    assert issubclass(ShapeError, ValueError)


def test_wrong_feature_size(lstm):
    with pytest.raises(ShapeError, match=r"expected 3 features.*\(2, 5, 4\)"):
        lstm.forward(np.zeros((2, 5, 4)))


def test_non_numeric_input(lstm):
    with pytest.raises(DTypeError, match="numeric"):
        lstm.forward(np.array([[["a", "b", "c"]]]))
    assert issubclass(DTypeError, TypeError)


def test_nan_input_named(lstm):
    x = np.zeros((2, 3, 3))
    x[1, 2, 0] = np.nan
    with pytest.raises(NonFiniteError, match=r"x: contains NaN.*\(1, 2, 0\)"):
        lstm.forward(x)


@pytest.mark.parametrize("lengths, err, pattern", [
    (np.array([3, 4]), ShapeError, r"lengths: expected values in \[0, 3\].*\[3, 4\]"),
    (np.array([3, -1]), ShapeError, r"lengths: expected values in \[0, 3\]"),
    (np.array([3]), ShapeError, r"lengths: expected shape \(2,\)"),
    (np.array([2.5, 1.0]), DTypeError, "lengths: expected integers"),
    (np.array(["a", "b"]), DTypeError, "lengths: expected an integer array"),
])
def test_bad_lengths(lstm, lengths, err, pattern):
    with pytest.raises(err, match=pattern):
        lstm.forward(np.zeros((2, 3, 3)), lengths)


def test_whole_float_lengths_are_accepted(lstm):
    out = lstm.forward(np.ones((2, 3, 3)), np.array([3.0, 1.0]))[0]
    assert not out[1, 1:].any()


def test_bad_state(lstm):
    with pytest.raises(ShapeError, match=r"state.a: expected shape \(2, 4\)"):
        lstm.forward(np.zeros((2, 3, 3)), state=(np.zeros((2, 5)), np.zeros((2, 4))))
    with pytest.raises(ShapeError, match="expected an \\(a, c\\) pair"):
        lstm.forward(np.zeros((2, 3, 3)), state=np.zeros((2, 4)))
    with pytest.raises(ShapeError, match="expected one"):
        sm.GRU(3, 4).forward(np.zeros((2, 3, 3)), state=(np.zeros((2, 4)),))


@pytest.mark.parametrize("make, pattern", [
    (lambda: sm.RNN(3, 4, activation="sigmoid"), r"activation: expected one of 'tanh', 'relu', got 'sigmoid'"),
    (lambda: sm.GRU(3, 4, variant="minimal"), r"variant: expected one of 'full', 'simplified', got 'minimal'"),
    (lambda: sm.GRU(3, 4, variant="simplified", reset_after=True), "reset_after=True needs variant='full'"),
    (lambda: sm.RNN(3, 4, init="zeros"), r"init: expected one of .*got 'zeros'"),
    (lambda: sm.LSTM(3, 0), r"hidden_size: expected an integer >= 1, got 0"),
    (lambda: sm.LSTM(0, 3), r"input_size: expected an integer >= 1, got 0"),
    (lambda: sm.Bidirectional(sm.LSTM(3, 4), merge="avg"), r"merge: expected one of"),
    (lambda: sm.Stack([sm.LSTM(3, 4), sm.LSTM(5, 4)]), r"layers\[1\]: expects 5 input features.*produces 4"),
    (lambda: sm.Stack([sm.LSTM(3, 4)], dropout=1.0), r"dropout: expected a value in \[0, 1\)"),
    (lambda: sm.Stack([]), "at least one layer"),
    (lambda: sm.LSTM(3, 4, dtype=np.int32), "dtype: expected float32 or float64"),
])
def test_bad_configuration(make, pattern):
    with pytest.raises((ConfigError, DTypeError), match=pattern):
        make()


def test_hidden_size_must_be_an_integer():
    with pytest.raises(DTypeError, match="hidden_size: expected an integer, got 2.5"):
        sm.LSTM(3, 2.5)


def test_embedding_ids_out_of_range():
    emb = sm.Embedding(5, 2)
    with pytest.raises(ShapeError, match=r"ids: expected token ids in \[0, 5\), got 7"):
        emb.forward(np.array([[1, 7]]))
    with pytest.raises(DTypeError, match="integer token ids"):
        emb.forward(np.array([[1.0]]))


def test_params_assignment_checks_shape(lstm):
    with pytest.raises(ShapeError, match=r"params\['W_f'\]: expected shape \(4, 7\), got \(7, 4\)"):
        lstm.params["W_f"] = np.zeros((7, 4))
    with pytest.raises(KeyError, match="no parameter named 'W_z'"):
        lstm.params["W_z"] = np.zeros((4, 7))


@pytest.mark.parametrize("stacked", [False, True])
def test_a_wrong_dout_is_refused_even_when_every_length_is_zero(stacked):
    layer = sm.Stack([sm.LSTM(3, 4), sm.LSTM(4, 4)]) if stacked else sm.LSTM(3, 4)
    _, _, cache = layer.forward(np.ones((2, 5, 3), np.float32), lengths=np.array([0, 0]))
    with pytest.raises(ShapeError, match=r"dout: expected shape \(2, 5, 4\)"):
        layer.backward(np.ones((7, 7, 7), np.float32), cache)
