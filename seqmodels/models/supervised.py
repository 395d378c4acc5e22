"""What the tagger and the classifier share: embedding -> (bi)RNN encoder, batching, fit, checkpoints.

    e<t> = E[x<t>]                               word embedding                       (B, T, E)
    a<t> = [a→<t>; a←<t>]                        (bi)RNN stack, H' = 2H (or H)        (B, T, H')

:class:`SupervisedRNN` holds the word vocabulary, the encoder, dropout (on the embeddings, between
layers and before the head) and word dropout, length-bucketed batches (:class:`LabeledBatcher`), ``fit``
on the shared training loop, resumable checkpoints and batched inference. Subclasses add the head:
``forward(ids, lengths) -> (logits, cache)``, ``backward(dlogits, cache)`` and
``loss(logits, y, lengths, reduction) -> (loss, dlogits, count)``.
"""

from __future__ import annotations

import numpy as np

from ..core.functional import inverted_dropout
from ..core.errors import ConfigError, DataError, DTypeError, ShapeError, check_choice
from ..core.errors import check_positive_int, check_probability
from ..core.init import as_generator
from ..layers import Bidirectional, Embedding, Stack, make_recurrent
from ..text import SequenceBatcher, Vocabulary
from ..text.batching import one_pass, pad_sequences
from ..training.loop import TrainConfig
from .base import Model

CELLS = ("lstm", "gru", "rnn")
#: Shapes of unknown words (``unk_shapes=True``): each gets its own <UNK> token, e.g. ``<unk:Xx>``.
SHAPES = ("x", "Xx", "XX", "d", "p", "@", "#", "url")
SHAPE_TOKENS = tuple(f"<unk:{s}>" for s in SHAPES)


def word_shape(word: str) -> str:
    """The shape class of a word: URL, @mention, #hashtag, has a digit, punctuation only, ALL CAPS,
    Capitalised, lower.

    >>> [word_shape(w) for w in ["Paris", "NASA", "iphone", "@bob", "#tbt", "4u", "...", "http://x.io"]]
    ['Xx', 'XX', 'x', '@', '#', 'd', 'p', 'url']
    """
    if word.startswith(("http:", "https:", "www.")):
        return "url"
    if len(word) > 1 and word[0] in "@#":
        return word[0]
    if any(ch.isdigit() for ch in word):
        return "d"
    if not any(ch.isalpha() for ch in word):
        return "p"
    if word.isupper() and len(word) > 1:
        return "XX"
    return "Xx" if word[0].isupper() else "x"


class LabeledBatcher(SequenceBatcher):
    """Length-bucketed, resumable batches of labelled id sequences.

    Yields ``(x, y, lengths)``: ``x`` (B, T) int64 ids padded with ``pad_id``; ``y`` (B, T) per-step
    labels (padded with 0) when every label is a 1-D array as long as its sequence, else (B,) one label
    per sequence; ``lengths`` (B,). Batching, shuffling and ``state``/``load_state`` are those of
    :class:`~seqmodels.text.SequenceBatcher`.

    >>> b = LabeledBatcher([[5, 6], [7]], [[1, 0], [2]], batch_size=2, shuffle=False)
    >>> [(x.tolist(), y.tolist(), n.tolist()) for x, y, n in b]
    [([[7, 0], [5, 6]], [[2, 0], [1, 0]], [1, 2])]
    """

    def __init__(self, seqs, labels, batch_size: int, shuffle: bool = True, seed: int = 0, *,
                 pad_id: int = 0, bucket: bool = True):
        seqs = [np.asarray(s, np.int64) for s in seqs]
        if len(seqs) != len(labels):
            raise ShapeError(f"labels: expected {len(seqs)} (one per sequence), got {len(labels)}")
        empty = next((i for i, s in enumerate(seqs) if s.size == 0), None)
        if empty is not None:
            raise DataError(f"sequence {empty} is empty: every example needs at least one token")
        self.labels = [np.asarray(y, np.int64) for y in labels]
        self.per_step = all(y.ndim == 1 for y in self.labels)
        if self.per_step:
            bad = next((i for i, (s, y) in enumerate(zip(seqs, self.labels)) if s.size != y.size), None)
            if bad is not None:
                raise ShapeError(f"labels[{bad}]: {self.labels[bad].size} labels for {seqs[bad].size} tokens")
        super().__init__([np.append(s, pad_id) for s in seqs], batch_size, shuffle, seed, bucket, pad_id=pad_id)

    def _batch(self, epoch: int, k: int):
        idx = self.batches(epoch)[k]
        x, lengths = pad_sequences([self.seqs[i][:-1] for i in idx], pad_id=self.pad_id)
        if self.per_step:
            y, _ = pad_sequences([self.labels[i] for i in idx], pad_id=0)
        else:
            y = np.array([int(self.labels[i]) for i in idx], np.int64)
        return x, y, lengths


class SupervisedRNN(Model):
    """Embedding -> (bi)RNN stack shared by the tagger and the classifier (subclasses add the head)."""

    def _build_encoder(self, vocab, cell, hidden_size, num_layers, bidirectional, embedding_dim, dropout,
                       word_dropout, dtype, seed, cell_options, unk_shapes=False) -> np.random.Generator:
        if not isinstance(vocab, Vocabulary):
            raise ConfigError(f"vocab: expected a seqmodels.text.Vocabulary, got {type(vocab).__name__}; "
                              f"build one with {type(self).__name__}.from_data(...)")
        check_choice("cell", cell, CELLS)
        self.vocab, self.cell = vocab, cell
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.bidirectional = bool(bidirectional)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.dropout = check_probability("dropout", dropout)
        self.word_dropout = check_probability("word_dropout", word_dropout)
        self.cell_options = dict(cell_options)
        self.dtype = np.dtype(dtype)
        self.seed = seed if isinstance(seed, int) else None
        rng = as_generator(seed)
        self.embedding = Embedding(len(vocab), self.embedding_dim, padding_id=vocab.pad_id, dtype=dtype, seed=rng)
        layers, size = [], self.embedding_dim
        for _ in range(self.num_layers):
            layer = make_recurrent(cell, size, self.hidden_size, dtype=dtype, seed=rng, **cell_options)
            layers.append(Bidirectional(layer, seed=rng) if self.bidirectional else layer)
            size = layers[-1].output_size if self.bidirectional else self.hidden_size
        self.rnn = Stack(layers, dropout=self.dropout, seed=rng)
        self.features = size                                   # H' = 2H or H
        self._rng = rng
        self._set_unk_shapes(unk_shapes)
        return rng

    def _set_unk_shapes(self, on: bool) -> None:
        """Unknown words -> the <unk:shape> token of their shape (the vocabulary must hold SHAPE_TOKENS)."""
        self.unk_shapes, self._unk_of = bool(on), None
        if not on:
            return
        missing = [t for t in SHAPE_TOKENS if t not in self.vocab]
        if missing:
            raise ConfigError(f"unk_shapes=True needs the tokens {list(SHAPE_TOKENS)} in the vocabulary, missing "
                              f"{missing}; build it with from_data(..., unk_shapes=True)")
        self._shape_id = {s: self.vocab.token_to_id(t) for s, t in zip(SHAPES, SHAPE_TOKENS)}
        tokens = self.vocab.tokens
        self._unk_of = np.array([self._shape_id[word_shape(t)] if i >= 3 else self.vocab.unk_id
                                 for i, t in enumerate(tokens)], np.int64)   # word dropout: id -> its shape
        self._unk_of[list(self._shape_id.values())] = list(self._shape_id.values())

    def _encoder_config(self) -> dict:
        return dict(cell=self.cell, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    bidirectional=self.bidirectional, embedding_dim=self.embedding_dim, dropout=self.dropout,
                    word_dropout=self.word_dropout, dtype=str(self.dtype), cell_options=self.cell_options,
                    **({"unk_shapes": True} if self.unk_shapes else {}))

    # ----------------------------------------------------------------- encoder
    def _drop(self, h):
        """Inverted dropout while training: (h * mask, mask), mask None when off."""
        return inverted_dropout(h, self.dropout if self.training else 0.0, self._rng)

    def encode(self, ids, lengths):
        """ids (B, T), lengths (B,) -> encoder outputs (B, T, H') and the cache for :meth:`encode_backward`."""
        e, _, c_emb = self.embedding.forward(ids, lengths)
        e, m_emb = self._drop(e)
        h, _, c_rnn = self.rnn.forward(e, lengths)
        return h, (c_emb, m_emb, c_rnn)

    def encode_backward(self, dh, cache) -> None:
        c_emb, m_emb, c_rnn = cache
        de, _ = self.rnn.backward(dh, c_rnn)
        if m_emb is not None:
            de = de * m_emb
        self.embedding.backward(de, c_emb)

    def token_ids(self, tokens) -> np.ndarray:
        """Ids of a token list (lower-cased when the vocabulary is); unknown words -> <UNK> (or its shape)."""
        if isinstance(tokens, str):
            raise DTypeError(f"tokens: expected a list of str tokens, got the string {tokens[:40]!r}; "
                             "split it first (e.g. text.split())")
        tokens = list(tokens)
        ids = self.vocab.encode([t.lower() for t in tokens] if self.vocab.lowercase else tokens, unk="map")
        ids = ids.astype(np.int64)
        if self._unk_of is not None:
            for i in np.flatnonzero(ids == self.vocab.unk_id).tolist():
                ids[i] = self._shape_id[word_shape(tokens[i])]
        return ids

    # ----------------------------------------------------------------- training
    def train_batch(self, batch) -> tuple[float, int]:
        """Forward, mean loss, backward (gradients of the mean loss accumulate in ``grads``)."""
        x, y, lengths = batch
        if self.word_dropout > 0:                            # replace words by <UNK> (or its shape) at random
            hit = (self._rng.random(x.shape) < self.word_dropout) & (x != self.vocab.pad_id)
            x = np.where(hit, self.vocab.unk_id if self._unk_of is None else self._unk_of[x], x)
        logits, cache = self.forward(x, lengths)
        loss, dlogits, n = self.loss(logits, y, lengths, "mean")
        self.backward(dlogits, cache)
        return loss, n

    def batch_loss(self, batch, reduction: str = "mean") -> float:
        """The training loss of one batch (no word dropout, no backward); for gradient checks."""
        x, y, lengths = batch
        logits, _ = self.forward(x, lengths)
        return self.loss(logits, y, lengths, reduction)[0]

    def mean_loss(self, data) -> float:
        """Mean loss per predicted unit over a batcher, in eval mode."""
        was = self.training
        self.eval()
        total = count = 0
        try:
            for batch in one_pass(data):
                logits, _ = self.forward(batch[0], batch[2])
                loss, _, n = self.loss(logits, batch[1], batch[2], "sum")
                total, count = total + loss, count + n
        finally:
            self.train(was)
        return total / max(count, 1)

    def _fit(self, data, valid, *, config, checkpoint_dir, progress, resume, on_eval, checkpoint_meta,
             train_options):
        validation_loss = (lambda: self.mean_loss(valid)) if valid is not None else None
        self.history = self.run_training(data, validation_loss, config or TrainConfig(**train_options),
                                         checkpoint_dir=checkpoint_dir, resume=resume, progress=progress,
                                         on_eval=on_eval, checkpoint_meta=checkpoint_meta)
        return self

    def _rngs(self) -> dict:
        return {"model": self._rng, "stack": self.rnn.rng}

    def _infer(self, id_seqs, batch_size: int = 128):
        """Yield (indices, outputs, lengths) for batches of similar length, in eval mode."""
        lengths = np.array([len(s) for s in id_seqs])
        order = np.argsort(lengths, kind="stable")
        was = self.training
        self.eval()
        try:
            for start in range(0, order.size, batch_size):
                idx = order[start:start + batch_size]
                x, n = pad_sequences([id_seqs[i] for i in idx], pad_id=self.vocab.pad_id)
                yield idx, self.forward(x, n)[0], n
        finally:
            self.train(was)


def _check_labels(name: str, labels) -> list:
    labels = list(labels)
    if not labels:
        raise ConfigError(f"{name}: expected at least one label, got none")
    for lab in labels:
        if not isinstance(lab, (str, int)) or isinstance(lab, bool) or lab == "":
            raise DTypeError(f"{name}: expected non-empty str (or int) labels, got {lab!r}")
    if len(set(labels)) != len(labels):
        dup = next(lab for lab in labels if labels.count(lab) > 1)
        raise ConfigError(f"{name}: label {dup!r} appears more than once")
    return labels
