"""Recurrent language models: train on any text, score sentences, sample novel text.

    x<1> = <EOS> (start),  x<t> = y<t-1>,   ŷ<t> = softmax(W_y a[L]<t> + b_y)
    log P(y<1>, ..., y<Ty>) = Σ_t log ŷ<t>[y<t>]          (the notes' product of conditionals)
    perplexity = exp(-(1/N) Σ log P)

Text is split into lines; every line ends with ``<EOS>`` (a newline at character level). Two ways to
train: ``mode="stream"`` treats the corpus as one long sequence cut into windows, carrying the state
from window to window (truncated BPTT; for books), ``mode="lines"`` treats every line as its own
sequence starting from a zero state (for lists of names or sentences), batched by length.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..cells import fast
from ..core import blas
from ..core.errors import ConfigError, DataError, check_choice, check_positive_int, check_probability
from ..core.functional import inverted_dropout, softmax_cross_entropy
from ..core.init import as_generator
from ..layers import Dense, Embedding, Stack, Stepper, make_recurrent
from ..sampling import TokenSampler
from ..text import SequenceBatcher, StreamBatcher, Vocabulary
from ..text.batching import one_pass
from ..training.loop import History, TrainConfig
from .base import Model

CELLS = ("lstm", "gru", "rnn")
MODES = ("stream", "lines")


class LogProb(NamedTuple):
    """``total`` = log P(sequence) (natural log); ``per_token`` log P(y<t> | y<1..t-1>) for each token."""

    total: float
    tokens: list
    per_token: np.ndarray

    @property
    def perplexity(self) -> float:
        return math.exp(-self.total / max(len(self.tokens), 1))


#: sampling this many rows or fewer runs the per-step products on one BLAS thread: a matrix-vector product
#: split over two threads waits on both (measured: 67 vs 53 µs per token at batch 1, H = 256)
SMALL_BATCH = 16


class LanguageModel(Model):
    """An RNN language model: (one-hot or embedding) -> L recurrent layers -> softmax over the vocabulary.

    Args:
        vocab: the :class:`~seqmodels.text.Vocabulary` (character or word level).
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"``; ``cell_options`` go to the layer (``peephole``,
            ``variant``, ``reset_after``, ``activation``, ``init``, ``forget_bias``).
        hidden_size, num_layers: size of each recurrent layer, number of layers.
        embedding_dim: None feeds one-hot vectors (as a column lookup); else a learned embedding.
        dropout: between layers and before the output layer, while training.
        mode: ``"stream"`` (one long text, truncated BPTT) or ``"lines"`` (one sequence per line).

    >>> import seqmodels as sm
    >>> vocab = sm.text.Vocabulary.from_text("the cat sat on the mat", level="char")
    >>> lm = sm.LanguageModel(vocab, hidden_size=16, seed=0)
    >>> round(lm.perplexity("the cat"), 1) > 1
    True
    """

    kind = "language_model"

    def __init__(self, vocab: Vocabulary, cell: str = "lstm", hidden_size: int = 128, num_layers: int = 1, *,
                 embedding_dim: int | None = None, dropout: float = 0.0, mode: str = "stream",
                 dtype=np.float32, seed=0, **cell_options):
        if not isinstance(vocab, Vocabulary):
            raise ConfigError(f"vocab: expected a seqmodels.text.Vocabulary, got {type(vocab).__name__}")
        if len(vocab) <= 3:
            raise ConfigError("vocab: has no tokens besides <PAD>, <UNK>, <EOS>; build it from a non-empty corpus")
        check_choice("cell", cell, CELLS)
        check_choice("mode", mode, MODES)
        self.vocab = vocab
        self.cell, self.mode = cell, mode
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.embedding_dim = None if embedding_dim is None else check_positive_int("embedding_dim", embedding_dim)
        self.dropout = check_probability("dropout", dropout)
        self.cell_options = dict(cell_options)
        self.dtype = np.dtype(dtype)
        self.seed = seed if isinstance(seed, int) else None
        rng = as_generator(seed)
        V = len(vocab)
        self.embedding = None
        if self.embedding_dim is not None:
            self.embedding = Embedding(V, self.embedding_dim, dtype=dtype, seed=rng)
        layers, size = [], self.embedding_dim or V
        for _ in range(self.num_layers):
            layers.append(make_recurrent(cell, size, self.hidden_size, dtype=dtype, seed=rng, **cell_options))
            size = self.hidden_size
        self.rnn = Stack(layers, dropout=self.dropout, seed=rng)
        self.head = Dense(self.hidden_size, V, dtype=dtype, seed=rng)
        self._register(embedding=self.embedding, rnn=self.rnn, head=self.head)
        self._carry = None
        self._drop_rng = rng

    # ----------------------------------------------------------------- config
    def config(self) -> dict:
        return dict(cell=self.cell, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    embedding_dim=self.embedding_dim, dropout=self.dropout, mode=self.mode,
                    dtype=str(self.dtype), cell_options=self.cell_options)

    def meta(self) -> dict:
        return {"vocabulary": self.vocab.to_dict()}

    @classmethod
    def from_config(cls, config: dict, meta: dict) -> "LanguageModel":
        cfg = dict(config)
        options = cfg.pop("cell_options", {}) or {}
        vocab = Vocabulary.from_dict(meta["vocabulary"], source="checkpoint vocabulary")
        return cls(vocab, **cfg, **options)

    # ---------------------------------------------------------------- forward
    def forward(self, ids, lengths=None, state=None):
        """ids (B, T) -> logits (B, T, V), final state (one entry per layer), cache.

        With an embedding and fewer tokens in the vocabulary than positions in the batch (character
        models), the embedding is folded into the first layer's input product: ``W_x E[w]`` is row w of
        the (V, 4H) table ``E W_xᵀ`` — the same function, V rows computed instead of B·T."""
        h, state, cache = self._features(ids, lengths, state)
        logits, _, c_head = self.head.forward(h)
        return logits, state, (*cache, c_head)

    def _features(self, ids, lengths=None, state=None):
        """ids (B, T) -> the output layer's input (B, T, H) (after dropout), final state, cache."""
        ids = np.asarray(ids)
        fold = self.embedding is not None and ids.ndim == 2 and len(self.vocab) < ids.size
        if fold:
            h, state, c_rnn = self.rnn.forward(ids, lengths, state, embedding=self.embedding.params["W_e"])
            c_emb = "folded"
        else:
            if self.embedding is not None:
                x, _, c_emb = self.embedding.forward(ids, lengths)
            else:
                x, c_emb = ids, None                          # one-hot, looked up inside the first layer
            h, state, c_rnn = self.rnn.forward(x, lengths, state)
        mask = None
        if self.training:
            h, mask = inverted_dropout(h, self.dropout, self._drop_rng)
        return h, state, (c_emb, c_rnn, mask)

    def backward(self, dlogits, cache) -> None:
        *cache, c_head = cache
        dh, _ = self.head.backward(dlogits, c_head)
        self._features_backward(dh, cache)

    def _features_backward(self, dh, cache) -> None:
        c_emb, c_rnn, mask = cache
        if mask is not None:
            dh = dh * mask
        dx, _ = self.rnn.backward(dh, c_rnn)
        if c_emb == "folded":
            self.embedding.grads["W_e"] += dx                  # the first layer returned dL/dE itself
        elif self.embedding is not None:
            self.embedding.backward(dx, c_emb)

    # --------------------------------------------------------------- training
    def reset_state(self) -> None:
        """Forget the state carried between stream windows (called at the start of every pass)."""
        self._carry = None

    def train_batch(self, batch) -> tuple[float, int]:
        """Forward, mean cross-entropy per token, backward (accumulating grads): (loss, tokens).

        The output layer, the softmax and their backward run as one fused pass
        (:meth:`Dense.softmax_cross_entropy <seqmodels.layers.dense.Dense.softmax_cross_entropy>`): the
        same numbers as ``forward``, :func:`~seqmodels.core.functional.softmax_cross_entropy` and
        ``backward`` in turn."""
        if len(batch) == 2:                                   # stream window: carry the state
            x, y = batch
            lengths = None
            h, state, cache = self._features(x, state=self._carry)
            self._carry = state
            n = np.asarray(y).size
        else:
            x, y, lengths = batch
            h, _, cache = self._features(x, lengths)
            n = int(np.asarray(lengths).sum())
        loss, dh = self.head.softmax_cross_entropy(h, y, lengths=lengths, reduction="mean")
        self._features_backward(dh, cache)
        return float(loss), n

    def evaluate(self, data) -> float:
        """Mean loss (nats) per predicted token over a batcher (no gradients, dropout off)."""
        was = self.training
        self.eval()
        total, count, carry = 0.0, 0, None
        try:
            for batch in one_pass(data):
                if len(batch) == 2:
                    x, y = batch
                    logits, carry, _ = self.forward(x, state=carry)
                    loss, _ = softmax_cross_entropy(logits, y, reduction="sum")
                    count += y.size
                else:
                    x, y, lengths = batch
                    logits, _, _ = self.forward(x, lengths)
                    loss, _ = softmax_cross_entropy(logits, y, lengths=lengths, reduction="sum")
                    count += int(lengths.sum())
                total += float(loss)
        finally:
            self.train(was)
        return total / max(count, 1)

    def encode_corpus(self, text: str, *, unk: str | None = None) -> list[np.ndarray]:
        """Each line of ``text`` as ids ending with <EOS> (empty lines kept as a lone <EOS> in streams)."""
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines = lines[:-1]
        return [self.vocab.encode(line, add_eos=True, unk=unk) for line in lines]

    def batcher(self, text_or_ids, *, batch_size: int = 32, seq_len: int = 64, shuffle: bool = True,
                seed: int = 0):
        """The batcher for this model's mode: stream windows, or length-bucketed lines."""
        if self.mode == "stream":
            ids = text_or_ids if isinstance(text_or_ids, np.ndarray) else self.stream_ids(text_or_ids)
            return StreamBatcher(ids, batch_size, seq_len, random_offset=shuffle, seed=seed)
        lines = [np.concatenate([[self.vocab.eos_id], s]) for s in self.encode_corpus(text_or_ids)
                 if s.size > 1]
        if not lines:
            raise DataError("the corpus has no non-empty lines to train on")
        return SequenceBatcher(lines, batch_size, shuffle=shuffle, seed=seed, pad_id=self.vocab.pad_id)

    def stream_ids(self, text: str) -> np.ndarray:
        """The whole text as one id stream: <EOS> first, then each line followed by <EOS>."""
        parts = [np.array([self.vocab.eos_id], np.int32)] + self.encode_corpus(text, unk="map")
        return np.concatenate(parts).astype(np.int32)

    def fit(self, train_text, valid_text=None, *, batch_size: int = 32, seq_len: int = 64,
            config: TrainConfig | None = None, checkpoint_dir=None, progress=True, seed: int = 0,
            resume=None, on_eval=None, on_step=None, checkpoint_meta=None, **train_options) -> History:
        """Train on ``train_text`` (a str; or a batcher), validating on ``valid_text``.

        ``train_options`` fill a :class:`~seqmodels.training.loop.TrainConfig` (optimizer, lr, clip,
        clip_value, steps, epochs, eval_every, checkpoint_every, patience, schedule ...). With
        ``checkpoint_dir`` a checkpoint (weights, optimiser, data position, carried state, RNG, history)
        is written every ``checkpoint_every`` steps and at the end; ``resume`` (a loaded checkpoint from
        :meth:`load` with ``return_checkpoint=True``) continues that run exactly. ``on_eval(step, loss)``
        follows each validation, ``on_step(step, record)`` each step; ``checkpoint_meta`` is stored in
        every checkpoint (the command line's data settings).
        """
        config = config or TrainConfig(**train_options)
        data = train_text if hasattr(train_text, "load_state") else self.batcher(
            train_text, batch_size=batch_size, seq_len=seq_len, seed=seed)
        valid = None
        if valid_text is not None:
            valid = valid_text if hasattr(valid_text, "load_state") else self.batcher(
                valid_text, batch_size=batch_size, seq_len=seq_len, shuffle=False)
        return self.run_training(data, (lambda: self.evaluate(valid)) if valid is not None else None, config,
                                 checkpoint_dir=checkpoint_dir, resume=resume, progress=progress, on_eval=on_eval,
                                 on_step=on_step, checkpoint_meta=checkpoint_meta)

    def _rngs(self) -> dict:
        return {"dropout": self._drop_rng, "stack": self.rnn.rng}

    def _training_arrays(self) -> dict:
        """The state carried from window to window (stream mode), so a resumed run continues it."""
        if self._carry is None:
            return {}
        return {"carry": {f"{i}.{j}": np.ascontiguousarray(a) for i, s in enumerate(self._carry)
                          for j, a in enumerate(s if isinstance(s, tuple) else (s,))}}

    def restore_training(self, ck, optimizer, data) -> History:
        history = super().restore_training(ck, optimizer, data)
        carry = ck.extra.get("carry")
        if carry:
            self._carry = tuple(layer.join_state([carry[f"{i}.{j}"] for j in range(len(layer.cell.state_names))])
                                for i, layer in enumerate(self.rnn.layers))
        return history

    # ---------------------------------------------------------------- scoring
    def log_prob(self, text, *, add_eos: bool = True) -> LogProb:
        """log P(text) = Σ_t log P(y<t> | y<1..t-1>), starting from <EOS>; with the per-token breakdown.

        ``text`` is a string (tokenized like the corpus) or a list of tokens. Characters the vocabulary
        lacks raise a :class:`DataError` at character level; unknown words become <UNK>.
        """
        tokens = self.vocab.tokenize(text) if isinstance(text, str) else list(text)
        ids = self.vocab.encode(tokens, add_eos=add_eos)
        names = tokens + (["<EOS>"] if add_eos else [])
        if ids.size == 0:
            return LogProb(0.0, [], np.zeros(0))
        x = np.concatenate([[self.vocab.eos_id], ids[:-1]])[None, :]
        was = self.training
        self.eval()
        try:
            logits, _, _ = self.forward(x)
        finally:
            self.train(was)
        z = logits[0].astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        per = logp[np.arange(ids.size), ids]
        return LogProb(float(per.sum()), names, per)

    def perplexity(self, texts) -> float:
        """exp(mean negative log-probability per token) over one text or a list of texts."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        total, count = 0.0, 0
        for t in texts:
            r = self.log_prob(t)
            total += r.total
            count += len(r.tokens)
        return math.exp(-total / max(count, 1))

    # --------------------------------------------------------------- sampling
    def sample(self, num: int = 1, max_len: int = 200, *, prime: str = "", temperature: float = 1.0,
               top_k: int | None = None, greedy: bool = False, reject_unk: bool = True,
               stop_at_eos: bool | None = None, seed=None) -> list[str]:
        """Generate ``num`` texts by feeding each sampled token back in (all ``num`` in one batch).

        Starts from <EOS> followed by ``prime``; stops a row at <EOS> (default in ``lines`` mode; in
        ``stream`` mode <EOS> is a line break and sampling runs to ``max_len``) or after ``max_len`` tokens.
        ``reject_unk`` never emits <UNK>. The returned texts do not repeat the prime.
        """
        ids, lengths = self.sample_ids(num, max_len, prime=prime, temperature=temperature, top_k=top_k,
                                       greedy=greedy, reject_unk=reject_unk, stop_at_eos=stop_at_eos, seed=seed)
        return [self._decode_stream(row[:n]) for row, n in zip(ids, lengths)]

    def sample_ids(self, num: int = 1, max_len: int = 200, *, prime: str = "", temperature: float = 1.0,
                   top_k: int | None = None, greedy: bool = False, reject_unk: bool = True,
                   stop_at_eos: bool | None = None, seed=None) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`sample`, returning ids (num, max_len) and each row's length (the <EOS> excluded)."""
        num = check_positive_int("num", num)
        max_len = check_positive_int("max_len", max_len)
        stop_at_eos = self.mode == "lines" if stop_at_eos is None else stop_at_eos
        banned = [self.vocab.pad_id] + ([self.vocab.unk_id] if reject_unk else [])
        draw = TokenSampler(as_generator(seed), temperature=temperature, top_k=top_k, greedy=greedy, banned=banned)
        try:
            prime_ids = self.vocab.encode(prime) if prime else np.zeros(0, np.int32)   # unknown words: <UNK>
        except DataError as e:
            raise DataError(f"prime: {e}") from None
        was = self.training
        self.eval()
        try:
            start = np.concatenate([[self.vocab.eos_id], prime_ids]).astype(np.int64)
            x = np.repeat(start[None, :], num, axis=0)
            logits, state, _ = self.forward(x)
            last = logits[:, -1]
            out = np.zeros((num, max_len), np.int64)
            length = np.full(num, max_len)
            with blas.blas_threads(1 if num <= SMALL_BATCH else None):
                done = num == 1 and self._generate_compiled(state, last, draw, out, length, stop_at_eos)
                if not done:
                    self._generate(self._stepper(state, num, num * max_len), last, draw, out, length, stop_at_eos)
        finally:
            self.train(was)
        return out, length

    def _generate_compiled(self, state, last, draw, out, length, stop_at_eos) -> bool:
        """One LSTM sequence in one compiled call (``seqmodels[fast]``): the same network, the same draws
        from the same uniforms as :meth:`_generate`, without Python per token. False when it does not
        apply (no numba, not an LSTM, top-k, a vocabulary larger than the tokens to generate, ...)."""
        if fast.compiled(self.dtype) is None or self.cell != "lstm" or not self._table_pays(out.shape[1]):
            return False
        from ..cells import fast_sampling
        E = None if self.embedding is None else self.embedding.params["W_e"]
        table = self.rnn.layers[0].input_table(E, scaled=True)
        got = fast_sampling.lstm_sample(self.rnn.layers, table, self.head.params["W_y"],
                                  self.head.params["b_y"], state, last, draw, self.vocab.eos_id, stop_at_eos,
                                  out.shape[1])
        if got is None:
            return False
        out[0], length[0] = got
        return True

    def _generate(self, step, last, draw, out, length, stop_at_eos) -> None:
        """The sampling loop: draw, record, feed back; rows stop at <EOS> when ``stop_at_eos``."""
        num, max_len = out.shape
        done = np.zeros(num, bool)
        for t in range(max_len):
            ids = draw(last)
            out[:, t] = ids
            if stop_at_eos:
                newly = (ids == self.vocab.eos_id) & ~done
                length[newly] = t
                done |= newly
                if done.all():
                    break
            last = step(ids)

    def _step(self, ids: np.ndarray, state):
        """One step of the whole network for (B,) ids: logits (B, V) and the new state."""
        x = ids if self.embedding is None else self.embedding.params["W_e"][ids]
        new = []
        for layer, s in zip(self.rnn.layers, state):
            s = layer.step(x, s)
            new.append(s)
            x = s[0] if isinstance(s, tuple) else s
        logits = x @ self.head.params["W_y"].T + self.head.params["b_y"]
        return logits, tuple(new)

    def _table_pays(self, tokens: int) -> bool:
        """Whether generating ``tokens`` ids should look the first layer's input up in a (V, G*H) table:
        always for one-hot input (the table is ``W_xᵀ`` itself), with an embedding when V <= tokens."""
        return self.embedding is None or len(self.vocab) <= tokens

    def _stepper(self, state, batch: int, tokens: int):
        """The network one step at a time for sampling ``tokens`` ids in total: (B,) ids -> logits (B, V).

        Each layer runs in a :class:`~seqmodels.layers.stepper.Stepper`; the first one looks its input
        projection up in a (V, G*H) table (embedding and ``W_x`` folded: the same numbers, one pass over
        ``W_x`` fewer per token) when building the table costs less than the products it replaces."""
        E = None if self.embedding is None else self.embedding.params["W_e"]
        table = self._table_pays(tokens)
        steppers = [Stepper(layer, batch, s, embedding=E if i == 0 else None)
                    for i, (layer, s) in enumerate(zip(self.rnn.layers, state))]
        W_yT, b_y = np.ascontiguousarray(self.head.params["W_y"].T), self.head.params["b_y"]
        out = np.empty((batch, b_y.shape[0]), dtype=b_y.dtype)

        def step(ids):
            x = ids if table else E[ids]
            for stepper in steppers:
                s = stepper(x)
                x = s[0] if isinstance(s, tuple) else s
            np.matmul(x, W_yT, out=out)
            np.add(out, b_y, out=out)
            return out
        return step

    def _decode_stream(self, ids: np.ndarray) -> str:
        """Decode ids, turning <EOS> into line breaks."""
        eos = self.vocab.eos_id
        pieces, start = [], 0
        for i in np.flatnonzero(ids == eos).tolist() + [ids.size]:
            pieces.append(self.vocab.decode(ids[start:i], stop_at_eos=False))
            start = i + 1
        return "\n".join(pieces)
