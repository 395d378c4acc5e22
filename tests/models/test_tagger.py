"""Tagger: gradient checks through the loss, padding, learning (bi- vs unidirectional), facade, errors."""

import numpy as np
import pytest

from seqmodels.core.errors import ConfigError, DataError, DTypeError, ShapeError
from seqmodels.core.gradcheck import numerical_gradient, relative_error
from seqmodels.data.readers import Sentence
from seqmodels.models.base import Model
from seqmodels.models.tagger import Tagger
from seqmodels.text import Vocabulary

TAGS = ["O", "B-x", "I-x", "B-y"]
VOCAB = Vocabulary(list("abcde"), level="word", lowercase=False)
LENGTHS = np.array([4, 2, 3, 1])


def _batch(rng, n_tags=4):
    x = rng.integers(3, len(VOCAB), (4, 4))
    valid = np.arange(4)[None] < LENGTHS[:, None]
    x[~valid] = VOCAB.pad_id
    return x, rng.integers(0, n_tags, (4, 4)), LENGTHS


def _randomise(model, seed=5, scale=0.5):
    r = np.random.default_rng(seed)
    for p in model.params.values():
        p[...] = scale * r.standard_normal(p.shape)


def _gradcheck(model, batch):
    model.zero_grad()
    model.train_batch(batch)
    return {k: relative_error(model.grads[k], numerical_gradient(lambda: model.batch_loss(batch), p))
            for k, p in model.params.items()}


@pytest.mark.parametrize("cell, layers, bidirectional, output", [
    ("lstm", 2, True, "softmax"), ("gru", 1, False, "softmax"), ("rnn", 1, True, "softmax"),
    ("lstm", 1, True, "sigmoid"), ("gru", 2, False, "sigmoid"),
])
def test_gradients_through_the_loss(cell, layers, bidirectional, output, rng):
    model = Tagger(VOCAB, TAGS, cell, 3, layers, bidirectional=bidirectional, embedding_dim=3, output=output,
                   dtype=np.float64, seed=1)
    _randomise(model)
    errors = _gradcheck(model, _batch(rng))
    assert set(errors) == set(model.params)
    assert max(errors.values()) < 1e-6, errors


def test_padded_positions_never_matter(rng):
    model = Tagger(VOCAB, TAGS, "lstm", 4, 1, embedding_dim=3, dtype=np.float64, seed=0)
    x, y, lengths = _batch(rng)
    loss1, _ = model.train_batch((x, y, lengths))
    g1 = {k: v.copy() for k, v in model.grads.items()}
    pad = np.arange(4)[None] >= lengths[:, None]
    x2, y2 = x.copy(), y.copy()
    x2[pad], y2[pad] = 4, 3                      # garbage ids and tags past each length
    model.zero_grad()
    loss2, _ = model.train_batch((x2, y2, lengths))
    assert loss1 == pytest.approx(loss2, abs=1e-12)
    for k in g1:
        np.testing.assert_allclose(model.grads[k], g1[k], atol=1e-12, err_msg=k)


def test_mean_loss_matches_a_hand_computed_cross_entropy(rng):
    model = Tagger(VOCAB, TAGS, "gru", 3, 1, embedding_dim=3, dtype=np.float64, seed=2)
    x, y, lengths = _batch(rng)
    logits, _ = model.forward(x, lengths)
    total = 0.0
    for b in range(4):
        for t in range(lengths[b]):
            z = logits[b, t]
            total += np.log(np.exp(z).sum()) - z[y[b, t]]
    assert model.batch_loss((x, y, lengths)) == pytest.approx(total / lengths.sum(), rel=1e-12)


# ------------------------------------------------------------------------------ learning
def _lookahead(n, seed):
    """tag of word t = B-x when word t+1 is 'a': needs the right context."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        toks = list(rng.choice(list("abcd"), int(rng.integers(3, 9))))
        tags = ["B-x" if t + 1 < len(toks) and toks[t + 1] == "a" else "O" for t in range(len(toks))]
        out.append(Sentence(toks, tags, 0))
    return out


def test_bidirectional_learns_right_context_and_unidirectional_cannot():
    train, test = _lookahead(300, 0), _lookahead(100, 1)
    scores = {}
    for bi in (True, False):
        tagger = Tagger.from_data(train, hidden_size=12, embedding_dim=8, bidirectional=bi, seed=0)
        tagger.fit(train, epochs=25, batch_size=16, lr=1e-2, progress=False)
        scores[bi] = tagger.evaluate(test)
    assert scores[True]["f1"] > 0.97 and scores[True]["token_accuracy"] > 0.99
    # the future word is invisible left to right: about 1/4 of the non-final words are B-x
    assert scores[False]["f1"] < 0.5 and scores[False]["token_accuracy"] < 0.85


def test_sigmoid_tagger_learns_names():
    rng = np.random.default_rng(3)
    names, other = ["Ann", "Bob", "Rome"], ["the", "saw", "in", "a"]
    sents = []
    for _ in range(200):
        toks = list(rng.choice(names + other, int(rng.integers(2, 7))))
        sents.append((toks, ["B-per" if w in names[:2] else "B-loc" if w == "Rome" else "O" for w in toks]))
    tagger = Tagger.from_data(sents, output="sigmoid", hidden_size=8, embedding_dim=8, seed=0)
    tagger.fit(sents, epochs=15, lr=1e-2, progress=False)
    s = tagger.evaluate(sents)
    assert s["word_f1"] > 0.99 and s["word_precision"] > 0.99 and s["word_recall"] > 0.99
    # entities are untyped runs of "name" words, scored against the gold spans with types removed
    separate = [(["Ann", "saw", "Rome"], ["B-per", "O", "B-loc"]), (["in", "Bob"], ["O", "B-per"])]
    assert tagger.evaluate(separate)["f1"] == 1.0
    adjacent = tagger.evaluate([(["Ann", "Bob"], ["B-per", "B-per"])])
    assert adjacent["gold"] == 2 and adjacent["predicted"] == 1 and adjacent["f1"] == 0.0
    pred = tagger.predict([["Ann", "Bob", "saw", "Rome"]])[0]
    assert pred == ["B-name", "I-name", "O", "B-name"]    # adjacent names merge into one run
    p = tagger.predict_proba([["Ann", "saw"]])[0]
    assert p.shape == (2,) and p[0] > 0.5 > p[1]


# ------------------------------------------------------------------------------ facade, data, checkpoints
def test_sklearn_facade_and_vocabulary_options():
    X = [["Paris", "is", "nice"], ["I", "like", "paris"], ["Paris"]]
    y = [["B-loc", "O", "O"], ["O", "O", "B-loc"], ["B-loc"]]
    tagger = Tagger.from_data(X, y, min_count=2, lowercase=True, unk_shapes=False, hidden_size=6, embedding_dim=4,
                              seed=0)
    assert tagger.vocab.tokens[3:] == ["paris"]            # only 'paris' (lower-cased) is seen twice
    assert tagger.token_ids(["PARIS", "zzz"]).tolist() == [3, VOCAB.unk_id]
    assert tagger.fit(X, y, valid=(X[:2], y[:2]), epochs=40, lr=2e-2, progress=False) is tagger
    assert tagger.history.val_loss and tagger.history.step == 40
    assert tagger.predict(X) == y
    assert tagger.score(X, y) == 1.0
    probs = tagger.predict_proba(X)
    assert [p.shape for p in probs] == [(3, 2), (3, 2), (1, 2)]
    np.testing.assert_allclose([p.sum(axis=1) for p in probs[:1]], 1.0, rtol=1e-6)
    assert tagger.predict([[]]) == [[]]                    # an empty sentence has no tags


def test_unknown_words_keep_their_shape(tmp_path):
    X = [["Paris", "is", "nice"], ["I", "like", "Paris"]]
    tagger = Tagger.from_data(X, [["B-loc", "O", "O"], ["O", "O", "B-loc"]], min_count=2, hidden_size=4,
                              embedding_dim=4, word_dropout=0.5, seed=0)
    v = tagger.vocab
    ids = tagger.token_ids(["Paris", "Rome", "rome", "ROME", "@rome", "#rome", "r2d2", "!", "https://x.y"])
    assert [v.id_to_token(int(i)) for i in ids] == [
        "Paris", "<unk:Xx>", "<unk:x>", "<unk:XX>", "<unk:@>", "<unk:#>", "<unk:d>", "<unk:p>", "<unk:url>"]
    # word dropout replaces a known word by its shape's token, never by the plain <UNK>
    tagger._rng = np.random.default_rng(0)
    x = np.array([[v.token_to_id("Paris")] * 50])
    seen = set()
    orig = tagger.forward
    tagger.forward = lambda ids, lengths: (seen.update(ids.ravel().tolist()), orig(ids, lengths))[1]
    tagger.train_batch((x, np.ones((1, 50), np.int64), np.array([50])))
    assert seen == {v.token_to_id("Paris"), v.token_to_id("<unk:Xx>")}
    tagger.forward = orig
    tagger.save(tmp_path / "m")
    assert Tagger.load(tmp_path / "m").token_ids(["Rome"]).tolist() == [v.token_to_id("<unk:Xx>")]
    with pytest.raises(ConfigError, match="unk_shapes=True needs the tokens"):
        Tagger(VOCAB, TAGS, unk_shapes=True)


def test_non_bio_tags_are_scored_by_accuracy():
    sents = [(["the", "dog"], ["DET", "NOUN"]), (["a", "cat"], ["DET", "NOUN"])]
    tagger = Tagger.from_data(sents, hidden_size=4, embedding_dim=4, seed=0)
    tagger.fit(sents, epochs=60, lr=2e-2, progress=False)
    s = tagger.evaluate(sents)
    assert "f1" not in s and s["token_accuracy"] == 1.0 and tagger.score(sents) == 1.0


def test_save_load_round_trip(tmp_path):
    train = _lookahead(40, 0)
    tagger = Tagger.from_data(train, hidden_size=5, embedding_dim=4, num_layers=2, cell="gru", seed=0)
    tagger.fit(train, epochs=2, progress=False)
    tagger.save(tmp_path / "m")
    for loaded in (Tagger.load(tmp_path / "m"), Model.load(tmp_path / "m")):
        assert isinstance(loaded, Tagger) and loaded.tags == tagger.tags and loaded.vocab == tagger.vocab
        assert loaded.config() == tagger.config()
        for a, b in zip(loaded.predict_proba(train[:5]), tagger.predict_proba(train[:5])):
            np.testing.assert_array_equal(a, b)


def test_resume_continues_exactly(tmp_path):
    train, valid = _lookahead(60, 0), _lookahead(10, 1)
    kw = dict(hidden_size=5, embedding_dim=4, dropout=0.2, word_dropout=0.1, seed=0)
    full = Tagger.from_data(train, **kw).fit(train, valid, steps=12, eval_every=4, batch_size=8, progress=False)
    part = Tagger.from_data(train, **kw).fit(train, valid, steps=7, eval_every=4, batch_size=8, progress=False,
                                            checkpoint_dir=tmp_path / "ck")
    assert part.history.step == 7
    model, ck = Tagger.load(tmp_path / "ck", return_checkpoint=True)
    model.fit(train, valid, steps=12, eval_every=4, batch_size=8, progress=False, resume=ck)
    for k in full.params:
        np.testing.assert_array_equal(model.params[k], full.params[k], err_msg=k)
    assert [s for s, _ in model.history.val_loss] == [4, 7, 8, 12]   # 7: the end of the first run


# ------------------------------------------------------------------------------ errors
def test_unknown_tag_in_evaluation_names_tag_and_line():
    tagger = Tagger.from_data([(["a"], ["O"]), (["b"], ["B-x"])], hidden_size=3, embedding_dim=2)
    with pytest.raises(DataError, match=r"sentence 2 \(line 7\): tag 'B-zzz' was never seen in training"):
        tagger.evaluate([Sentence(["a"], ["O"], 5), Sentence(["b", "c"], ["O", "B-zzz"], 7)])
    with pytest.raises(DataError, match="sentence 1: tag 'I-q'"):
        tagger.fit([["a"]], [["I-q"]], progress=False)


def test_bad_inputs():
    ok = [(["a"], ["O"]), (["b"], ["B-x"])]
    tagger = Tagger.from_data(ok, hidden_size=3, embedding_dim=2)
    with pytest.raises(DataError, match="sentence 2: empty sentence"):
        tagger.fit([["a"], []], [["O"], []], progress=False)
    with pytest.raises(ShapeError, match="sentence 1: 2 tokens but 1 tags"):
        tagger.evaluate([["a", "b"]], [["O"]])
    with pytest.raises(ShapeError, match="expected 2 tag lists"):
        tagger.evaluate([["a"], ["b"]], [["O"]])
    with pytest.raises(DTypeError, match="split it first"):
        tagger.predict(["a sentence as a string"])
    with pytest.raises(DTypeError, match="got a str"):
        tagger.predict("a b")
    with pytest.raises(ConfigError, match="'O' is not among the tags"):
        Tagger(VOCAB, ["B-x", "I-x"], output="sigmoid")
    with pytest.raises(ConfigError, match="output"):
        Tagger(VOCAB, TAGS, output="crf")
    with pytest.raises(ConfigError, match="appears more than once"):
        Tagger(VOCAB, ["O", "O"])
    with pytest.raises(ConfigError, match="Vocabulary"):
        Tagger(["a", "b"], TAGS)
    with pytest.raises(DataError, match="no sentences"):
        Tagger.from_data([], [])
