"""Sequence tagging, many-to-many with Tx = Ty: one label per word (named entities, the notes' example).

    e<t> = E[x<t>]                               word embedding                       (B, T, E)
    a<t> = [a→<t>; a←<t>]                        (bi)RNN stack, H' = 2H (or H)        (B, T, H')
    ŷ<t> = softmax(W_y a<t> + b_y)               K tags; L = -Σ_{t < T_b} log ŷ<t>[y<t>]
    ŷ<t> = σ(w_y · a<t> + b_y)                   output="sigmoid", the notes' binary form:
                                                 "is word t part of a name?" (y<t> = 1 for tags != O)

The loss is the mean over the real (unpadded) words of the batch. A bidirectional layer lets ŷ<t> see
the words after t as well ("Teddy bears are on sale" vs "Teddy Roosevelt was a president"). The
encoder, batching and training are those of :class:`~seqmodels.models.supervised.SupervisedRNN`.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import ConfigError, DataError, DTypeError, ShapeError, check_choice
from ..core.functional import sigmoid, sigmoid_cross_entropy, softmax, softmax_cross_entropy
from ..layers import Dense
from ..text import Vocabulary
from ..training.loop import TrainConfig
from .metrics import entity_scores, is_bio, split_tag, token_accuracy
from .supervised import SHAPE_TOKENS, LabeledBatcher, SupervisedRNN, _check_labels

OUTPUTS = ("softmax", "sigmoid")
NAME = "name"   # entity type of the sigmoid tagger's output: B-name / I-name


class Tagger(SupervisedRNN):
    """Embedding -> (bi)RNN stack -> a dense layer per word: softmax over ``tags`` (or one sigmoid).

    Args:
        vocab: word-level :class:`~seqmodels.text.Vocabulary` (:meth:`from_data` builds it with <UNK>,
            ``min_count`` and optional lower-casing).
        tags: the fixed tag list (e.g. ``["O", "B-person", "I-person", ...]``).
        cell, hidden_size, num_layers: the recurrent layers (``"lstm"``, ``"gru"``, ``"rnn"``); extra
            keyword arguments are cell options (``peephole``, ``variant``, ...).
        bidirectional: each layer reads both directions (output 2H per word).
        embedding_dim: size of the learned word vectors.
        dropout: on the embeddings, between layers and before the output layer, while training.
        word_dropout: probability of replacing a training word by <UNK> (teaches the <UNK> vector).
        unk_shapes: unknown words become ``<unk:shape>`` tokens (see
            :func:`~seqmodels.models.supervised.word_shape`); the vocabulary must contain them
            (:meth:`from_data` adds them).
        output: ``"softmax"`` (one of K tags) or ``"sigmoid"`` (the binary "part of a name?" form:
            predictions are ``B-name``/``I-name``/``O``, targets are 1 for every tag but ``O``).

    Inputs are token lists; ``fit``/``evaluate`` take sentences (objects with ``tokens`` and ``tags``,
    such as :func:`~seqmodels.data.read_conll`'s, or ``(tokens, tags)`` pairs) or, scikit-learn style,
    ``X`` (token lists) and ``y`` (tag lists).

    >>> from seqmodels.models.tagger import Tagger
    >>> train = [(["Paris", "is", "big"], ["B-loc", "O", "O"]), (["I", "love", "Rome"], ["O", "O", "B-loc"])]
    >>> tagger = Tagger.from_data(train, hidden_size=8, embedding_dim=8, seed=0)
    >>> tagger.tags
    ['O', 'B-loc']
    >>> _ = tagger.fit(train, epochs=30, progress=False)
    >>> tagger.predict([["Rome", "is", "big"]])[0][1:]
    ['O', 'O']
    """

    kind = "tagger"

    def __init__(self, vocab: Vocabulary, tags, cell: str = "lstm", hidden_size: int = 100, num_layers: int = 1, *,
                 bidirectional: bool = True, embedding_dim: int = 100, dropout: float = 0.0,
                 word_dropout: float = 0.0, output: str = "softmax", unk_shapes: bool = False, dtype=np.float32,
                 seed=0, **cell_options):
        check_choice("output", output, OUTPUTS)
        self.tags = _check_labels("tags", tags)
        if any(not isinstance(t, str) for t in self.tags):
            raise DTypeError(f"tags: expected str tags, got {self.tags!r}")
        if output == "sigmoid" and "O" not in self.tags:
            raise ConfigError(f"output='sigmoid' predicts 'tag != O', but 'O' is not among the tags {self.tags}")
        self.output = output
        rng = self._build_encoder(vocab, cell, hidden_size, num_layers, bidirectional, embedding_dim, dropout,
                                  word_dropout, dtype, seed, cell_options, unk_shapes)
        self.head = Dense(self.features, len(self.tags) if output == "softmax" else 1, dtype=dtype, seed=rng)
        self._register(embedding=self.embedding, rnn=self.rnn, head=self.head)
        self._tag_index = {t: i for i, t in enumerate(self.tags)}
        self.bio = is_bio(self.tags)

    @classmethod
    def from_data(cls, sentences, y=None, *, min_count: int = 1, max_vocab: int | None = None,
                  lowercase: bool = False, unk_shapes: bool = True, **kwargs) -> "Tagger":
        """A tagger whose vocabulary (words seen ``min_count`` times) and tag list come from training data.

        Tags are sorted with ``O`` first. With ``unk_shapes`` the vocabulary also gets one <UNK> token per
        word shape (``<unk:Xx>``, ``<unk:XX>``, ``<unk:@>`` ...), so an unknown capitalised word stays
        distinguishable from an unknown lower-case one. ``kwargs`` go to the constructor.
        """
        pairs = _tagged(sentences, y, "sentences")
        words = ([w.lower() for w in toks] if lowercase else toks for toks, _, _ in pairs)
        vocab = Vocabulary.build(words, level="word", min_count=min_count, max_size=max_vocab,
                                 lowercase=lowercase, punctuation="keep")
        if unk_shapes:
            vocab = Vocabulary([t for t in vocab.tokens[3:] if t not in SHAPE_TOKENS] + list(SHAPE_TOKENS),
                               level="word", lowercase=lowercase, punctuation="keep")
        seen = {t for _, tags, _ in pairs for t in tags}
        return cls(vocab, sorted(seen, key=lambda t: (t != "O", t)), unk_shapes=unk_shapes, **kwargs)

    def config(self) -> dict:
        return dict(self._encoder_config(), output=self.output)

    def meta(self) -> dict:
        return {"vocabulary": self.vocab.to_dict(), "tags": self.tags}

    @classmethod
    def from_config(cls, config: dict, meta: dict) -> "Tagger":
        cfg = dict(config)
        options = cfg.pop("cell_options", {}) or {}
        vocab = Vocabulary.from_dict(meta["vocabulary"], source="checkpoint vocabulary")
        return cls(vocab, meta["tags"], **cfg, **options)

    # ---------------------------------------------------------------- network
    def forward(self, ids, lengths):
        """ids (B, T), lengths (B,) -> logits (B, T, K) (softmax) or (B, T) (sigmoid), cache."""
        h, c_enc = self.encode(ids, lengths)
        h, mask = self._drop(h)
        logits, _, c_head = self.head.forward(h, lengths)
        return (logits[..., 0] if self.output == "sigmoid" else logits), (c_enc, mask, c_head)

    def backward(self, dlogits, cache) -> None:
        c_enc, mask, c_head = cache
        dh, _ = self.head.backward(dlogits[..., None] if self.output == "sigmoid" else dlogits, c_head)
        self.encode_backward(dh if mask is None else dh * mask, c_enc)

    def loss(self, logits, y, lengths, reduction: str = "mean"):
        """(loss, dlogits, words): cross-entropy over the real words (y: (B, T) tag ids)."""
        if self.output == "softmax":
            loss, d = softmax_cross_entropy(logits, y, lengths=lengths, reduction=reduction)
        else:
            target = (y != self._tag_index["O"]).astype(logits.dtype)
            loss, d = sigmoid_cross_entropy(logits, target, lengths=lengths, reduction=reduction)
        return loss, d, int(np.sum(lengths))

    # ---------------------------------------------------------------- data
    def encode_pairs(self, pairs):
        """(token id arrays, tag id arrays); a tag the tagger does not know raises a DataError naming it."""
        ids, tag_ids = [], []
        for tokens, tags, where in pairs:
            try:
                tag_ids.append(np.array([self._tag_index[t] for t in tags], np.int64))
            except KeyError:
                bad = next(t for t in tags if t not in self._tag_index)
                raise DataError(f"{where}: tag {bad!r} was never seen in training; the tagger knows "
                                f"{self.tags}") from None
            ids.append(self.token_ids(tokens))
        return ids, tag_ids

    def batcher(self, sentences, y=None, *, batch_size: int = 32, shuffle: bool = True, seed: int = 0):
        """A :class:`LabeledBatcher` over sentences (or X, y)."""
        ids, tags = self.encode_pairs(_tagged(sentences, y, "sentences"))
        return LabeledBatcher(ids, tags, batch_size, shuffle, seed, pad_id=self.vocab.pad_id)

    def fit(self, X, y=None, valid=None, *, batch_size: int = 32, seed: int = 0, config: TrainConfig | None = None,
            checkpoint_dir=None, progress=True, resume=None, on_eval=None, checkpoint_meta=None,
            **train_options) -> "Tagger":
        """Train; returns ``self`` (the run's :class:`History` is ``self.history``).

        ``fit(train_sentences, valid_sentences)`` or ``fit(X, y, valid=(X_valid, y_valid))``. Training
        options (epochs, steps, lr, optimizer, clip, eval_every, patience, ...) fill a
        :class:`TrainConfig`; validation reports the mean cross-entropy per word. ``checkpoint_dir`` gets
        a resumable checkpoint (with ``checkpoint_meta`` added to its JSON); ``resume`` is a checkpoint from
        ``Tagger.load(dir, return_checkpoint=True)``. ``progress`` is a bool or a
        :class:`~seqmodels.training.progress.Progress`; ``on_eval(step, valid_loss)`` runs after each validation.
        """
        if y is not None and _is_sentences(X):
            if valid is not None:
                raise ConfigError("fit: pass validation sentences once (second argument or valid=)")
            X, y, valid = X, None, y
        data = self.batcher(X, y, batch_size=batch_size, seed=seed)
        vdata = None
        if valid is not None:
            vx, vy = (valid, None) if y is None else _xy_pair(valid)
            vdata = self.batcher(vx, vy, batch_size=batch_size, shuffle=False)
        return self._fit(data, vdata, config=config, checkpoint_dir=checkpoint_dir, progress=progress,
                         resume=resume, on_eval=on_eval, checkpoint_meta=checkpoint_meta,
                         train_options=train_options)

    # ---------------------------------------------------------------- inference
    def predict_proba(self, X) -> list[np.ndarray]:
        """Per sentence: (T, K) tag probabilities (columns in ``tags`` order), or (T,) P(part of a name)."""
        seqs = [self.token_ids(t) for t in _token_lists(X)]
        out: list = [None] * len(seqs)
        for i, s in enumerate(seqs):
            if s.size == 0:
                out[i] = np.zeros((0, len(self.tags)) if self.output == "softmax" else (0,), self.dtype)
        keep = [i for i, s in enumerate(seqs) if s.size]
        for idx, logits, n in self._infer([seqs[i] for i in keep]):
            probs = softmax(logits) if self.output == "softmax" else sigmoid(logits)
            for row, b in enumerate(idx):
                out[keep[b]] = probs[row, :n[row]]
        return out

    def predict(self, X) -> list[list[str]]:
        """The most probable tag of every word (sigmoid: ``B-name``/``I-name`` runs where P > 0.5)."""
        result = []
        for p in self.predict_proba(X):
            if self.output == "softmax":
                result.append([self.tags[k] for k in p.argmax(axis=-1)])
            else:
                on = p > 0.5
                result.append(["O" if not o else ("I-" if t and on[t - 1] else "B-") + NAME
                               for t, o in enumerate(on)])
        return result

    def evaluate(self, X, y=None) -> dict:
        """Entity precision/recall/F1 (conlleval, when the tags are BIO) and token accuracy.

        The sigmoid tagger is scored against the gold tags with their types replaced by ``name``, and
        also gets the word-level ``word_precision``/``word_recall``/``word_f1`` of "part of a name".
        """
        pairs = _tagged(X, y, "sentences")
        self.encode_pairs(pairs)                              # unknown tags -> DataError
        pred = self.predict([p[0] for p in pairs])
        gold = [list(p[1]) for p in pairs]
        if self.output == "sigmoid":
            gold = [[_binary_tag(t, s[i - 1] if i else "O") for i, t in enumerate(s)] for s in gold]
        if self.bio or self.output == "sigmoid":
            scores = entity_scores(gold, pred)
        else:
            scores = {"token_accuracy": token_accuracy(gold, pred), "tokens": sum(map(len, gold))}
        if self.output == "sigmoid":
            g = np.array([t != "O" for s in gold for t in s])
            p = np.array([t != "O" for s in pred for t in s])
            tp = int((g & p).sum())
            wp, wr = tp / max(int(p.sum()), 1), tp / max(int(g.sum()), 1)
            scores.update(word_precision=wp, word_recall=wr, word_f1=2 * wp * wr / (wp + wr) if wp + wr else 0.0)
        scores["sentences"] = len(pairs)
        return scores

    def score(self, X, y=None) -> float:
        """Entity F1 (BIO tags) or token accuracy (other tag sets)."""
        s = self.evaluate(X, y)
        return s["f1"] if "f1" in s else s["token_accuracy"]


def _binary_tag(tag: str, prev: str) -> str:
    """A gold tag as the sigmoid tagger sees it: BIO types become ``name``; other non-O tags form runs."""
    if tag == "O":
        return "O"
    if is_bio([tag]):
        return f"{split_tag(tag)[0]}-{NAME}"
    return ("I-" if prev != "O" else "B-") + NAME


def _is_pair(item) -> bool:
    return isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], (list, tuple))


def _is_sentences(X) -> bool:
    """True for a list of sentences (objects with tokens/tags, or (tokens, tags) pairs)."""
    if not isinstance(X, (list, tuple)) or not X:
        return False
    first = X[0]
    return hasattr(first, "tokens") and hasattr(first, "tags") or _is_pair(first)


def _xy_pair(valid):
    if not (isinstance(valid, (tuple, list)) and len(valid) == 2):
        raise ConfigError("valid: with fit(X, y) pass valid=(X_valid, y_valid)")
    return valid[0], valid[1]


def _token_lists(X) -> list:
    if isinstance(X, str):
        raise DTypeError("X: expected a list of token lists, got a str; use [text.split()]")
    return [item.tokens if hasattr(item, "tokens") else item[0] if _is_pair(item) else item for item in X]


def _tagged(X, y, what: str) -> list[tuple[list, list, str]]:
    """(tokens, tags, where) triples from sentences or from X, y; ``where`` names the sentence (and line)."""
    if isinstance(X, str):
        raise DTypeError(f"{what}: expected a list of sentences or of token lists, got a str")
    X = list(X)
    if y is None:
        if X and not _is_sentences(X):
            raise DTypeError(f"{what}: expected sentences (tokens + tags, e.g. from read_conll) or X and y; "
                             f"got items like {X[0]!r:.60}")
        items = [(s.tokens, s.tags, getattr(s, "line", None)) if hasattr(s, "tokens") else (s[0], s[1], None)
                 for s in X]
    else:
        y = list(y)
        if len(y) != len(X):
            raise ShapeError(f"y: expected {len(X)} tag lists (one per sentence in X), got {len(y)}")
        items = [(x, t, None) for x, t in zip(X, y)]
    out = []
    for i, (tokens, tags, line) in enumerate(items):
        where = f"sentence {i + 1}" + (f" (line {line})" if line else "")
        if isinstance(tokens, str):
            raise DTypeError(f"{where}: expected a list of tokens, got the string {tokens[:40]!r}")
        if len(tokens) == 0:
            raise DataError(f"{where}: empty sentence (no tokens); every sentence needs at least one word")
        if len(tokens) != len(tags):
            raise ShapeError(f"{where}: {len(tokens)} tokens but {len(tags)} tags")
        out.append((list(tokens), list(tags), where))
    if not out:
        raise DataError(f"{what}: no sentences")
    return out
