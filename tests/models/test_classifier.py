"""Classifier: gradient checks for every pooling, pooling semantics, learning, facade, errors."""

import numpy as np
import pytest

from seqmodels.core.errors import ConfigError, DataError, DTypeError, ShapeError
from seqmodels.core.gradcheck import numerical_gradient, relative_error
from seqmodels.models.base import Model
from seqmodels.models.classifier import Classifier
from seqmodels.text import Vocabulary

VOCAB = Vocabulary(list("abcde"), level="word", lowercase=False)
CLASSES = ["neg", "neu", "pos"]
LENGTHS = np.array([4, 2, 3, 1])


def _batch(rng):
    x = rng.integers(3, len(VOCAB), (4, 4))
    x[np.arange(4)[None] >= LENGTHS[:, None]] = VOCAB.pad_id
    return x, rng.integers(0, 3, 4), LENGTHS


def _model(pooling, bidirectional=True, cell="lstm", layers=1, seed=1):
    m = Classifier(VOCAB, CLASSES, cell, 3, layers, bidirectional=bidirectional, pooling=pooling, embedding_dim=3,
                   dtype=np.float64, seed=seed)
    r = np.random.default_rng(seed + 10)
    for p in m.params.values():
        p[...] = 0.5 * r.standard_normal(p.shape)
    return m


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional, cell, layers", [(True, "lstm", 2), (False, "gru", 1), (True, "rnn", 1)])
def test_gradients_through_the_loss(pooling, bidirectional, cell, layers, rng):
    model = _model(pooling, bidirectional, cell, layers)
    batch = _batch(rng)
    model.zero_grad()
    model.train_batch(batch)
    errors = {k: relative_error(model.grads[k], numerical_gradient(lambda: model.batch_loss(batch), p))
              for k, p in model.params.items()}
    assert max(errors.values()) < 1e-6, errors


def test_last_pooling_is_both_final_states():
    """'last' of a bidirectional layer = [forward state after the last word; backward state after the first]."""
    model = _model("last", True, "lstm")
    ids = np.array([[3, 4, 5, 6], [7, 3, 0, 0]])
    lengths = np.array([4, 2])
    h, _ = model.encode(ids, lengths)
    pooled, _ = model.pool(h, lengths)
    e = model.embedding.params["W_e"][ids]
    bi = model.rnn.layers[0]
    _, state, _ = bi.forward(e, lengths)                       # BiState(forward=LSTMState, backward=...)
    np.testing.assert_allclose(pooled, np.concatenate([state.forward.a, state.backward.a], axis=1), atol=1e-12)
    # and for one direction, the hidden state after each text's own last word
    uni = _model("last", False, "gru")
    h, _ = uni.encode(ids, lengths)
    _, (a_final,), _ = uni.rnn.forward(uni.embedding.params["W_e"][ids], lengths)
    np.testing.assert_allclose(uni.pool(h, lengths)[0], a_final, atol=1e-12)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_padding_does_not_leak_into_pooling(pooling):
    """A padded batch gives each text exactly its logits when classified alone."""
    model = _model(pooling, True, "lstm").eval()
    texts = [[3, 4, 5, 6], [7, 3], [5]]
    batch_ids = np.array([[3, 4, 5, 6], [7, 3, 0, 0], [5, 0, 0, 0]])
    logits, _ = model.forward(batch_ids, np.array([4, 2, 1]))
    for b, t in enumerate(texts):
        alone, _ = model.forward(np.array([t]), np.array([len(t)]))
        np.testing.assert_allclose(logits[b], alone[0], atol=1e-12)


def test_mean_and_max_pooling_by_hand(rng):
    model = _model("mean")
    h = rng.standard_normal((2, 3, 4))
    lengths = np.array([3, 2])
    s, _ = model.pool(h, lengths)
    np.testing.assert_allclose(s, [h[0].mean(axis=0), h[1, :2].mean(axis=0)])
    model.pooling = "max"
    s, cache = model.pool(h, lengths)
    np.testing.assert_allclose(s, [h[0].max(axis=0), h[1, :2].max(axis=0)])
    dh = model.pool_backward(np.ones((2, 4)), cache)
    assert dh[1, 2].sum() == 0                                   # the padded step gets no gradient
    np.testing.assert_array_equal(dh.sum(axis=1), np.ones((2, 4)))


# ------------------------------------------------------------------------------ learning
def _keyword_texts(n, seed):
    """Label = the keyword ('good' / 'bad') hidden among filler words at a random place."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        words = list(rng.choice(["the", "film", "was", "a", "plot", "and"], int(rng.integers(2, 8))))
        key = str(rng.choice(["good", "bad"]))
        words.insert(int(rng.integers(0, len(words) + 1)), key)
        texts.append(" ".join(words))
        labels.append("pos" if key == "good" else "neg")
    return texts, labels


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_learns_a_keyword_anywhere(pooling):
    X, y = _keyword_texts(200, 0)
    Xt, yt = _keyword_texts(100, 1)
    clf = Classifier.from_data(X, y, pooling=pooling, hidden_size=8, embedding_dim=8, seed=0)
    clf.fit(X, y, epochs=10, batch_size=16, lr=1e-2, progress=False)
    assert clf.score(Xt, yt) > 0.97


def test_facade_evaluate_and_probabilities():
    X, y = _keyword_texts(120, 0)
    clf = Classifier.from_data(X, y, hidden_size=8, embedding_dim=8, seed=0)
    assert clf.classes == ["neg", "pos"]
    assert clf.fit(X, y, valid=(X[:20], y[:20]), epochs=10, lr=1e-2, progress=False) is clf
    assert len(clf.history.val_loss) == 1
    probs = clf.predict_proba(["good film", "bad plot", "the film"])
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert probs[0, 1] > 0.9 and probs[1, 0] > 0.9
    Xt = ["good", "bad", "film good", "bad film"]
    yt = ["pos", "pos", "neg", "neg"]                           # half of these are mislabelled on purpose
    pred = clf.predict(Xt)
    assert pred == ["pos", "neg", "pos", "neg"]
    s = clf.evaluate(Xt, yt)
    assert s["accuracy"] == 0.5 and s["confusion"] == [[1, 1], [1, 1]]
    assert s["per_class"]["pos"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    # token lists are accepted as they are (lower-cased like the vocabulary)
    assert clf.predict([["GOOD", "film"]]) == ["pos"]


def test_save_load_round_trip(tmp_path):
    X, y = _keyword_texts(30, 0)
    clf = Classifier.from_data(X, y, pooling="max", num_layers=2, cell="gru", hidden_size=4, embedding_dim=4)
    clf.fit(X, y, epochs=1, progress=False)
    clf.save(tmp_path / "c")
    for loaded in (Classifier.load(tmp_path / "c"), Model.load(tmp_path / "c")):
        assert isinstance(loaded, Classifier) and loaded.classes == clf.classes and loaded.pooling == "max"
        np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_integer_labels():
    clf = Classifier.from_data(["a b", "c d"], [1, 0], hidden_size=3, embedding_dim=2)
    assert clf.classes == [0, 1]
    clf.fit(["a b", "c d"], [1, 0], epochs=1, progress=False)
    assert clf.predict(["a"])[0] in (0, 1)


# ------------------------------------------------------------------------------ errors
def test_errors():
    clf = Classifier.from_data(["good", "bad"], ["pos", "neg"], hidden_size=3, embedding_dim=2)
    with pytest.raises(DataError, match="example 2: label 'neutral' was never seen in training"):
        clf.evaluate(["good", "meh"], ["pos", "neutral"])
    with pytest.raises(DataError, match="example 2: empty text"):
        clf.predict(["good", " ... "[:1]])
    with pytest.raises(DataError, match="example 1: empty text"):
        Classifier.from_data(["", "x"], ["a", "b"])
    with pytest.raises(DataError, match="sequence 0 is empty"):
        clf.forward(np.zeros((1, 2), np.int64), np.array([0]))
    with pytest.raises(DTypeError, match="single str"):
        clf.predict("good")
    with pytest.raises(ShapeError, match="expected 2 labels"):
        clf.fit(["good", "bad"], ["pos"], progress=False)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        Classifier(VOCAB, ["only"])
    with pytest.raises(ConfigError, match="pooling"):
        Classifier(VOCAB, CLASSES, pooling="attention")
    with pytest.raises(ConfigError, match=r"valid: expected \(X_valid, y_valid\)"):
        clf.fit(["good"], ["pos"], valid=["good"], progress=False)
