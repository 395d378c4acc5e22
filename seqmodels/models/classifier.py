"""Sequence classification, many-to-one: one label per text (sentiment, the notes' movie reviews).

    a<t> = (bi)RNN stack over the word embeddings            (B, T, H'), H' = 2H or H
    s    = pool(a<1..Tx>)                                    (B, H')
    ŷ    = softmax(W_y s + b_y)                              (B, C);  L = -mean_b log ŷ_b[y_b]

Pooling over the valid steps t < T_b of each text only:

* ``"last"``: ``a<T_b>``, the state after the last word; for a bidirectional layer
  ``[a→<T_b>; a←<1>]``, the final states of both directions (the backward one ends at the first word);
* ``"mean"``: ``(1/T_b) Σ_t a<t>``;
* ``"max"``: the element-wise maximum over t (the gradient flows to the step that attained it).
"""

from __future__ import annotations

import numpy as np

from ..core.errors import ConfigError, DataError, DTypeError, ShapeError, check_choice
from ..core.functional import softmax, softmax_cross_entropy
from ..layers import Dense
from ..text import Vocabulary
from ..training.loop import TrainConfig
from .metrics import classification_scores
from .supervised import LabeledBatcher, SupervisedRNN, _check_labels

POOLINGS = ("last", "mean", "max")


class Classifier(SupervisedRNN):
    """Embedding -> (bi)RNN stack -> pooling over time -> softmax over ``classes``.

    Args:
        vocab: word-level :class:`~seqmodels.text.Vocabulary`; raw strings are split with its tokenizer
            (``vocab.tokenize``), token lists are used as they are (lower-cased if the vocabulary is).
        classes: the labels, in output order (str or int).
        pooling: ``"last"``, ``"mean"`` or ``"max"`` (see the module docstring).
        cell, hidden_size, num_layers, bidirectional, embedding_dim, dropout, word_dropout, cell options:
            as for :class:`~seqmodels.models.tagger.Tagger`.

    >>> from seqmodels.models.classifier import Classifier
    >>> texts, labels = ["good fun", "bad boring", "fun and good", "boring , bad"], ["pos", "neg", "pos", "neg"]
    >>> clf = Classifier.from_data(texts, labels, hidden_size=8, embedding_dim=8, seed=0)
    >>> clf.fit(texts, labels, epochs=40, progress=False).predict(["good", "so boring"])
    ['pos', 'neg']
    """

    kind = "classifier"

    def __init__(self, vocab: Vocabulary, classes, cell: str = "lstm", hidden_size: int = 100,
                 num_layers: int = 1, *, bidirectional: bool = True, pooling: str = "last", embedding_dim: int = 100,
                 dropout: float = 0.0, word_dropout: float = 0.0, dtype=np.float32, seed=0, **cell_options):
        check_choice("pooling", pooling, POOLINGS)
        self.classes = _check_labels("classes", classes)
        if len(self.classes) < 2:
            raise ConfigError(f"classes: expected at least 2 classes, got {self.classes}")
        self.pooling = pooling
        rng = self._build_encoder(vocab, cell, hidden_size, num_layers, bidirectional, embedding_dim, dropout,
                                  word_dropout, dtype, seed, cell_options)
        self.head = Dense(self.features, len(self.classes), dtype=dtype, seed=rng)
        self._register(embedding=self.embedding, rnn=self.rnn, head=self.head)
        self._class_index = {c: i for i, c in enumerate(self.classes)}

    @classmethod
    def from_data(cls, texts, labels, *, min_count: int = 1, max_vocab: int | None = None, lowercase: bool = True,
                  punctuation: str = "tokens", **kwargs) -> "Classifier":
        """A classifier whose vocabulary and (sorted) class list come from the training texts and labels."""
        proto = Vocabulary(level="word", lowercase=lowercase, punctuation=punctuation)
        token_lists = [_tokens(proto, t, i) for i, t in enumerate(_texts(texts))]
        vocab = Vocabulary.build(token_lists, level="word", min_count=min_count, max_size=max_vocab,
                                 lowercase=lowercase, punctuation=punctuation)
        return cls(vocab, sorted(set(_labels(labels, len(token_lists)))), **kwargs)

    def config(self) -> dict:
        return dict(self._encoder_config(), pooling=self.pooling)

    def meta(self) -> dict:
        return {"vocabulary": self.vocab.to_dict(), "classes": self.classes}

    @classmethod
    def from_config(cls, config: dict, meta: dict) -> "Classifier":
        cfg = dict(config)
        options = cfg.pop("cell_options", {}) or {}
        vocab = Vocabulary.from_dict(meta["vocabulary"], source="checkpoint vocabulary")
        return cls(vocab, meta["classes"], **cfg, **options)

    # ---------------------------------------------------------------- network
    def forward(self, ids, lengths):
        """ids (B, T), lengths (B,) all >= 1 -> logits (B, C), cache."""
        lengths = np.asarray(lengths)
        if lengths.size and lengths.min() < 1:
            raise DataError(f"sequence {int(np.argmin(lengths))} is empty: a classifier needs at least one word")
        h, c_enc = self.encode(ids, lengths)
        s, c_pool = self.pool(h, lengths)
        s, mask = self._drop(s)
        logits, _, c_head = self.head.forward(s)
        return logits, (c_enc, c_pool, mask, c_head)

    def backward(self, dlogits, cache) -> None:
        c_enc, c_pool, mask, c_head = cache
        ds, _ = self.head.backward(dlogits, c_head)
        self.encode_backward(self.pool_backward(ds if mask is None else ds * mask, c_pool), c_enc)

    def pool(self, h, lengths):
        """Encoder outputs (B, T, H') -> one vector per text (B, H'), over the valid steps only."""
        B, T, F = h.shape
        rows, last = np.arange(B), lengths - 1
        valid = np.arange(T)[None, :] < lengths[:, None]                       # (B, T)
        if self.pooling == "last":
            fw = F // 2 if self.bidirectional else F                             # forward half
            s = np.concatenate([h[rows, last, :fw], h[:, 0, fw:]], axis=1)      # [a→<T_b>; a←<1>]
            return s, ("last", h.shape, lengths, fw)
        if self.pooling == "mean":
            s = (h * valid[..., None]).sum(axis=1) / lengths[:, None].astype(h.dtype)
            return s, ("mean", h.shape, lengths, valid)
        masked = np.where(valid[..., None], h, -np.inf)
        arg = masked.argmax(axis=1)                                              # (B, H') step of the max
        return np.take_along_axis(h, arg[:, None, :], axis=1)[:, 0], ("max", h.shape, lengths, arg)

    def pool_backward(self, ds, cache):
        """d pooled (B, H') -> d encoder outputs (B, T, H')."""
        kind, shape, lengths, extra = cache
        dh = np.zeros(shape, ds.dtype)
        rows = np.arange(shape[0])
        if kind == "last":
            fw = extra
            dh[rows, lengths - 1, :fw] = ds[:, :fw]
            dh[:, 0, fw:] += ds[:, fw:]
        elif kind == "mean":
            dh[...] = (ds / lengths[:, None].astype(ds.dtype))[:, None, :] * extra[..., None]
        else:
            np.put_along_axis(dh, extra[:, None, :], ds[:, None, :], axis=1)
        return dh

    def loss(self, logits, y, lengths, reduction: str = "mean"):
        """(loss, dlogits, texts): cross-entropy of the class ids ``y`` (B,)."""
        loss, d = softmax_cross_entropy(logits, y, reduction=reduction)
        return loss, d, int(y.shape[0])

    # ---------------------------------------------------------------- data
    def text_ids(self, X) -> list[np.ndarray]:
        """Ids of each text (a str, split by the vocabulary's tokenizer, or a token list); empty -> DataError."""
        out = []
        for i, x in enumerate(_texts(X)):
            ids = self.vocab.encode(x, unk="map").astype(np.int64) if isinstance(x, str) else self.token_ids(x)
            if ids.size == 0:
                raise DataError(f"example {i + 1}: empty text (no tokens after tokenizing {x!r:.40}); "
                                "every text needs at least one word")
            out.append(ids)
        return out

    def class_ids(self, y, n: int) -> np.ndarray:
        """Class indices of the labels; a label the classifier does not know raises a DataError naming it."""
        out = np.empty(n, np.int64)
        for i, lab in enumerate(_labels(y, n)):
            if lab not in self._class_index:
                raise DataError(f"example {i + 1}: label {lab!r} was never seen in training; the classifier "
                                f"knows {self.classes}")
            out[i] = self._class_index[lab]
        return out

    def batcher(self, X, y, *, batch_size: int = 32, shuffle: bool = True, seed: int = 0) -> LabeledBatcher:
        ids = self.text_ids(X)
        return LabeledBatcher(ids, self.class_ids(y, len(ids)), batch_size, shuffle, seed, pad_id=self.vocab.pad_id)

    def fit(self, X, y, valid=None, *, batch_size: int = 32, seed: int = 0, config: TrainConfig | None = None,
            checkpoint_dir=None, progress=True, resume=None, on_eval=None, checkpoint_meta=None,
            **train_options) -> "Classifier":
        """Train on texts ``X`` and labels ``y``; returns ``self`` (the :class:`History` is ``self.history``).

        ``valid=(X_valid, y_valid)`` is scored (mean cross-entropy per text) every ``eval_every`` steps and
        at the end; other options as for :meth:`Tagger.fit <seqmodels.models.tagger.Tagger.fit>`.
        """
        data = self.batcher(X, y, batch_size=batch_size, seed=seed)
        vdata = None
        if valid is not None:
            if not (isinstance(valid, (tuple, list)) and len(valid) == 2):
                raise ConfigError("valid: expected (X_valid, y_valid)")
            vdata = self.batcher(valid[0], valid[1], batch_size=batch_size, shuffle=False)
        return self._fit(data, vdata, config=config, checkpoint_dir=checkpoint_dir, progress=progress,
                         resume=resume, on_eval=on_eval, checkpoint_meta=checkpoint_meta,
                         train_options=train_options)

    # ---------------------------------------------------------------- inference
    def predict_proba(self, X) -> np.ndarray:
        """(N, C) class probabilities, columns in ``classes`` order."""
        seqs = self.text_ids(X)
        out = np.zeros((len(seqs), len(self.classes)), self.dtype)
        for idx, logits, _ in self._infer(seqs):
            out[idx] = softmax(logits)
        return out

    def predict(self, X) -> list:
        """The most probable class of each text."""
        return [self.classes[k] for k in self.predict_proba(X).argmax(axis=1)]

    def evaluate(self, X, y) -> dict:
        """Accuracy, per-class precision/recall/F1, macro averages and the confusion matrix (rows true)."""
        n = len(_texts(X))
        self.class_ids(y, n)                                   # unknown labels -> DataError
        return classification_scores(list(y), self.predict(X), self.classes)

    def score(self, X, y) -> float:
        """Accuracy."""
        return self.evaluate(X, y)["accuracy"]


def _texts(X) -> list:
    if isinstance(X, str):
        raise DTypeError("X: expected a list of texts, got a single str; wrap it in a list")
    X = list(X)
    if not X:
        raise DataError("X: no texts")
    return X


def _labels(y, n: int) -> list:
    if isinstance(y, str):
        raise DTypeError("y: expected a list of labels, got a single str")
    y = list(y)
    if len(y) != n:
        raise ShapeError(f"y: expected {n} labels (one per text), got {len(y)}")
    return y


def _tokens(vocab: Vocabulary, text, i: int) -> list[str]:
    tokens = vocab.tokenize(text) if isinstance(text, str) else [
        t.lower() if vocab.lowercase else t for t in text]
    if not tokens:
        raise DataError(f"example {i + 1}: empty text (no tokens); every text needs at least one word")
    return tokens
