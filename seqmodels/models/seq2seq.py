"""The encoder–decoder (many-to-many, Tx ≠ Ty): machine translation with two RNNs.

    encoder:  e<t> = E_src[x<t>],   s = final state of Stack_enc(e<1..Tx>)   (one state per layer)
    bridge:   s0[l] = s[l]                                  (unidirectional encoder)
              a0[l] = tanh(W_a[l] [a→[l]; a←[l]] + b_a[l]),  c0[l] = W_c[l] [c→[l]; c←[l]] + b_c[l]
                                                            (bidirectional encoder, bridge="dense")
              s0[l] = s→[l] + s←[l]                          (bidirectional encoder, bridge="sum")
    decoder:  y_in = (<EOS>, y<1>, ..., y<Ty-1>)  (teacher forcing; <EOS> doubles as the start token)
              ŷ<t> = softmax(W_y a_dec<t> + b_y),  a_dec = Stack_dec(E_tgt[y_in]) from s0
    loss:     L = -(1/N) Σ_{b, t < len_b} log ŷ<t>[y<t>],   targets end with <EOS>

The gradient of L w.r.t. s0 (the decoder's ``dstate0``) flows back through the bridge into the
encoder (``backward(None, cache, dstate=...)``): the encoder is trained only through its final state.

Decoding: greedy (batched argmax) or beam search of width k, which keeps the k most probable prefixes
and sets aside those ending in <EOS> with the score ``log P(Y|X) / lp(|Y|)`` (|Y| counts the <EOS>;
``lp = ((5 + |Y|) / 6)^α``, GNMT, or ``|Y|^α``, "simple"). A sentence stops once it has k finished
hypotheses and no live prefix can beat the worst of them (its best possible score is ``logP / lp(max_len)``).

>>> import seqmodels as sm
>>> from seqmodels.models.seq2seq import Seq2Seq
>>> src = sm.text.Vocabulary.from_text("abc"); tgt = sm.text.Vocabulary.from_text("xyz")
>>> model = Seq2Seq(src, tgt, hidden_size=8, embedding_dim=4, seed=0)
>>> len(model.translate(["abc", "cab"], max_len=5))
2
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

import numpy as np

from ..core.errors import ConfigError, DataError, DTypeError, check_choice, check_positive_int, check_probability
from ..core.functional import log_softmax, softmax_cross_entropy
from ..core.init import as_generator
from ..core.params import ParamDict
from ..layers import Bidirectional, BiState, Dense, Embedding, Layer, LSTMState, Stack, make_recurrent
from ..text import Vocabulary, bucket_by_length, pad_sequences
from ..text.batching import ResumableBatcher, epoch_rng
from ..training.loop import History, TrainConfig
from .base import Model
from .bleu import corpus_bleu, exact_match

CELLS = ("lstm", "gru", "rnn")
BRIDGES = ("dense", "sum")
PENALTIES = ("gnmt", "simple")


class Hypothesis(NamedTuple):
    """A decoded sentence: target ids (no <EOS>), log P(ids [+ <EOS>] | source), the ranking score."""

    ids: np.ndarray
    log_prob: float
    score: float
    finished: bool


def length_penalty(n, alpha: float, kind: str = "gnmt"):
    """``((5 + n) / 6)^α`` (GNMT) or ``n^α`` (simple); n = output tokens including <EOS>."""
    return ((5.0 + n) / 6.0) ** alpha if kind == "gnmt" else float(n) ** alpha


class PairBatcher(ResumableBatcher):
    """Length-bucketed batches of (source, target) id pairs for teacher forcing (resumable).

    Targets must end with <EOS>. Yields ``(src (B, Tx), src_len (B,), tgt_in (B, Ty), tgt_out (B, Ty),
    tgt_len (B,))`` with ``tgt_in = [<EOS>] + tgt_out[:-1]``; batches group similar source lengths
    (:func:`~seqmodels.text.bucket_by_length`), reshuffled each epoch from ``default_rng([seed, epoch])``.
    """

    def __init__(self, sources, targets, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 pad_id: int = 0, eos_id: int = 2, pool_batches: int = 50):
        if len(sources) != len(targets):
            raise DataError(f"got {len(sources)} sources but {len(targets)} targets; expected one target per source")
        if not sources:
            raise DataError("no sentence pairs: expected at least one (source, target) pair")
        self.src = [np.asarray(s, np.int64) for s in sources]
        self.tgt = [np.asarray(t, np.int64) for t in targets]
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.shuffle, self.seed, self.pool_batches = bool(shuffle), int(seed), pool_batches
        self.pad_id, self.eos_id = pad_id, eos_id
        self.src_len = np.array([s.size for s in self.src], np.int64)
        self._len = -(-len(self.src) // self.batch_size)
        self._plan_epoch, self._plan = None, []
        self.epoch, self.position = 0, 0

    def __len__(self) -> int:
        return self._len

    def _batch(self, epoch: int, k: int):
        if self._plan_epoch != epoch:
            rng = epoch_rng(self.seed, epoch) if self.shuffle else None
            self._plan_epoch = epoch
            self._plan = bucket_by_length(self.src_len, self.batch_size, rng, pool_batches=self.pool_batches)
        idx = self._plan[k]
        src, src_len = pad_sequences([self.src[i] for i in idx], pad_id=self.pad_id)
        tgt_out, tgt_len = pad_sequences([self.tgt[i] for i in idx], pad_id=self.pad_id)
        tgt_in = np.roll(tgt_out, 1, axis=1)
        tgt_in[:, 0] = self.eos_id
        tgt_in[np.arange(tgt_out.shape[1]) >= tgt_len[:, None]] = self.pad_id
        return src, src_len, tgt_in, tgt_out, tgt_len


def _parts(state) -> tuple:
    return tuple(state) if isinstance(state, tuple) else (state,)


def _join(parts):
    return LSTMState(*parts) if len(parts) == 2 else parts[0]


def _take(states, idx):
    """Rows ``idx`` of every array in a per-layer state tuple."""
    return tuple(_join([p[idx] for p in _parts(s)]) for s in states)


def _encode(texts, vocab: Vocabulary, name: str, eos: bool) -> list[np.ndarray]:
    if isinstance(texts, str):
        raise DTypeError(f"{name}: expected a list of str, got one str; wrap it in a list")
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise DTypeError(f"{name}[{i}]: expected a str, got {type(t).__name__}")
        out.append(vocab.encode(t, add_eos=eos, unk="map").astype(np.int64))
        if out[-1].size == int(eos):
            raise DataError(f"{name}[{i}] is empty ({t!r}): expected at least one token")
    return out


class _Bridge(Layer):
    """Bidirectional encoder's final states ``BiState(s→, s←)`` per layer -> the decoder's initial states."""

    def __init__(self, mode: str, num_layers: int, parts: tuple, hidden: int, *, dtype, seed):
        super().__init__()
        self.mode, self.parts, self.dtype = mode, parts, np.dtype(dtype)
        self.dense = {f"{l}.{p}": Dense(2 * hidden, hidden, "tanh" if p == "a" else None, dtype=dtype, seed=seed)
                      for l in range(num_layers) for p in parts} if mode == "dense" else {}
        self.params = ParamDict.merged({k: d.params for k, d in self.dense.items()})
        self.grads = ParamDict.merged({k: d.grads for k, d in self.dense.items()})

    def forward(self, finals, lengths=None, state=None):
        out, caches = [], []
        for l, bi in enumerate(finals):
            new = []
            for p, sf, sb in zip(self.parts, _parts(bi.forward), _parts(bi.backward)):
                if self.mode == "sum":
                    new.append(sf + sb)                       # s0 = s→ + s←
                else:
                    y, _, c = self.dense[f"{l}.{p}"].forward(np.concatenate([sf, sb], axis=1))
                    new.append(y)                             # s0 = g(W [s→; s←] + b)
                    caches.append(c)
            out.append(_join(new))
        return tuple(out), None, caches

    def backward(self, dstates, cache, dstate=None):
        caches, d_fin = list(cache), []
        for l, ds in enumerate(dstates):
            df, db = [], []
            for p, d in zip(self.parts, _parts(ds)):
                dx = np.concatenate([d, d], 1) if self.mode == "sum" else \
                    self.dense[f"{l}.{p}"].backward(d, caches.pop(0))[0]
                df.append(dx[:, :dx.shape[1] // 2]), db.append(dx[:, dx.shape[1] // 2:])
            d_fin.append(BiState(_join(df), _join(db)))
        return tuple(d_fin), None


class Seq2Seq(Model):
    """Encoder–decoder translator (see the module docstring for the equations).

    Args:
        src_vocab, tgt_vocab: :class:`~seqmodels.text.Vocabulary` of each side (char or word level).
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"`` (both sides); ``cell_options`` go to every layer.
        hidden_size, num_layers: of the encoder and of the decoder (the same, state for state).
        bidirectional_encoder: each encoder layer reads both ways; ``bridge`` maps its two final states
            to the decoder's: ``"dense"`` (learned, tanh for ``a``, linear for an LSTM's ``c``) or ``"sum"``.
        embedding_dim: size of both embeddings. dropout: between layers and before the output layer.
    """

    kind = "seq2seq"

    def __init__(self, src_vocab: Vocabulary, tgt_vocab: Vocabulary, cell: str = "lstm", hidden_size: int = 128,
                 num_layers: int = 1, *, bidirectional_encoder: bool = False, bridge: str = "dense",
                 embedding_dim: int = 64, dropout: float = 0.0, dtype=np.float32, seed=0, **cell_options):
        for name, v in (("src_vocab", src_vocab), ("tgt_vocab", tgt_vocab)):
            if not isinstance(v, Vocabulary):
                raise ConfigError(f"{name}: expected a seqmodels.text.Vocabulary, got {type(v).__name__}")
            if len(v) <= 3:
                raise ConfigError(f"{name}: has no tokens besides <PAD>, <UNK>, <EOS>; build it from data")
        check_choice("cell", cell, CELLS)
        check_choice("bridge", bridge, BRIDGES)
        self.src_vocab, self.tgt_vocab, self.cell, self.bridge_mode = src_vocab, tgt_vocab, cell, bridge
        self.hidden_size = H = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.embedding_dim = E = check_positive_int("embedding_dim", embedding_dim)
        self.bidirectional_encoder = bool(bidirectional_encoder)
        self.dropout = check_probability("dropout", dropout)
        self.cell_options, self.dtype = dict(cell_options), np.dtype(dtype)
        rng = as_generator(seed)
        mk = lambda n_in: make_recurrent(cell, n_in, H, dtype=dtype, seed=rng, **cell_options)  # noqa: E731
        self.src_embedding = Embedding(len(src_vocab), E, padding_id=src_vocab.pad_id, dtype=dtype, seed=rng)
        enc, size = [], E
        for _ in range(self.num_layers):
            enc.append(Bidirectional(mk(size), seed=rng) if self.bidirectional_encoder else mk(size))
            size = enc[-1].output_size if self.bidirectional_encoder else H
        self.encoder = Stack(enc, dropout=self.dropout, seed=rng)
        parts = ("a", "c") if cell == "lstm" else ("a",)               # the state's arrays
        self.bridge = _Bridge(bridge, self.num_layers, parts, H, dtype=dtype, seed=rng) if bidirectional_encoder \
            else None
        self.tgt_embedding = Embedding(len(tgt_vocab), E, padding_id=tgt_vocab.pad_id, dtype=dtype, seed=rng)
        self.decoder = Stack([mk(E if i == 0 else H) for i in range(self.num_layers)], self.dropout, seed=rng)
        self.head = Dense(H, len(tgt_vocab), dtype=dtype, seed=rng)
        self._register(src_embedding=self.src_embedding, encoder=self.encoder, bridge=self.bridge,
                       tgt_embedding=self.tgt_embedding, decoder=self.decoder, head=self.head)
        self._drop_rng = rng

    # ----------------------------------------------------------------- config
    def config(self) -> dict:
        return dict(cell=self.cell, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    bidirectional_encoder=self.bidirectional_encoder, bridge=self.bridge_mode,
                    embedding_dim=self.embedding_dim, dropout=self.dropout, dtype=str(self.dtype),
                    cell_options=self.cell_options)

    def meta(self) -> dict:
        return {"src_vocabulary": self.src_vocab.to_dict(), "tgt_vocabulary": self.tgt_vocab.to_dict()}

    @classmethod
    def from_config(cls, config: dict, meta: dict) -> "Seq2Seq":
        cfg = dict(config)
        options = cfg.pop("cell_options", {}) or {}
        src = Vocabulary.from_dict(meta["src_vocabulary"], source="checkpoint source vocabulary")
        tgt = Vocabulary.from_dict(meta["tgt_vocabulary"], source="checkpoint target vocabulary")
        return cls(src, tgt, **cfg, **options)

    # --------------------------------------------------------------- encoding
    def encode_pairs(self, sources, targets) -> tuple[list, list]:
        """Source ids and target ids (ending with <EOS>); unknown tokens become <UNK>."""
        sources, targets = list(sources), list(targets)
        if len(sources) != len(targets):
            raise DataError(f"got {len(sources)} source sentences but {len(targets)} target sentences; "
                            "expected one target per source")
        return self.encode_sources(sources), _encode(targets, self.tgt_vocab, "targets", eos=True)

    def encode_sources(self, sources) -> list[np.ndarray]:
        """Source ids (no <EOS>); an empty source is a :class:`DataError` naming its index."""
        return _encode(sources, self.src_vocab, "sources", eos=False)

    def batcher(self, sources, targets, *, batch_size: int = 64, shuffle: bool = True, seed: int = 0):
        src, tgt = self.encode_pairs(sources, targets)
        return PairBatcher(src, tgt, batch_size, shuffle=shuffle, seed=seed, pad_id=self.tgt_vocab.pad_id,
                           eos_id=self.tgt_vocab.eos_id)

    # ---------------------------------------------------------------- forward
    def encode(self, src, src_len):
        """(B, Tx) ids -> the decoder's initial state (one entry per layer) and the cache."""
        x, _, c_emb = self.src_embedding.forward(src, src_len)
        _, finals, c_enc = self.encoder.forward(x, src_len)
        c_br = None
        if self.bridge is not None:
            finals, _, c_br = self.bridge.forward(finals)
        return finals, (c_emb, c_enc, c_br)

    def forward(self, src, src_len, tgt_in, tgt_len):
        """Teacher-forced logits (B, Ty, V_tgt) and the cache for :meth:`backward`."""
        h, cache = self._features(src, src_len, tgt_in, tgt_len)
        logits, _, c_head = self.head.forward(h.reshape(-1, self.hidden_size))   # 2-D: one large GEMM
        return logits.reshape(h.shape[:2] + (-1,)), (*cache, c_head)

    def _features(self, src, src_len, tgt_in, tgt_len):
        """The output layer's input (B, Ty, H), teacher-forced (after dropout), and its cache."""
        s0, c_src = self.encode(src, src_len)
        y, _, c_emb = self.tgt_embedding.forward(tgt_in, tgt_len)
        h, _, c_dec = self.decoder.forward(y, tgt_len, s0)
        mask = None
        if self.training and self.dropout > 0:                          # inverted dropout before the head
            mask = (self._drop_rng.random(h.shape) >= self.dropout).astype(h.dtype) / (1.0 - self.dropout)
            h = h * mask
        return h, (c_src, c_emb, c_dec, mask)

    def backward(self, dlogits, cache) -> None:
        *cache, c_head = cache
        dh, _ = self.head.backward(dlogits.reshape(-1, dlogits.shape[-1]), c_head)
        self._features_backward(dh.reshape(dlogits.shape[:2] + (-1,)), cache)

    def _features_backward(self, dh, cache) -> None:
        (c_semb, c_enc, c_br), c_emb, c_dec, mask = cache
        if mask is not None:
            dh = dh * mask
        dy, ds0 = self.decoder.backward(dh, c_dec)
        self.tgt_embedding.backward(dy, c_emb)
        if self.bridge is not None:
            ds0, _ = self.bridge.backward(ds0, c_br)
        dx, _ = self.encoder.backward(None, c_enc, dstate=ds0)      # only through the final state
        self.src_embedding.backward(dx, c_semb)

    def train_batch(self, batch) -> tuple[float, int]:
        """Mean cross-entropy per target token; leaves its gradients in ``grads``. The output layer,
        softmax and their backward run fused (:meth:`Dense.softmax_cross_entropy
        <seqmodels.layers.dense.Dense.softmax_cross_entropy>`: the numbers of ``forward``, the loss and
        ``backward`` in turn)."""
        src, src_len, tgt_in, tgt_out, tgt_len = batch
        h, cache = self._features(src, src_len, tgt_in, tgt_len)
        loss, dh = self.head.softmax_cross_entropy(h, tgt_out, lengths=tgt_len, reduction="mean")
        self._features_backward(dh, cache)
        return float(loss), int(tgt_len.sum())

    # ------------------------------------------------------------- training
    def loss(self, data) -> float:
        """Mean teacher-forced cross-entropy (nats per target token, <EOS> included) over a batcher."""
        was, total, count = self.training, 0.0, 0
        self.eval()
        try:
            for k in range(len(data)):
                src, src_len, tgt_in, tgt_out, tgt_len = data._batch(0, k)
                logits, _ = self.forward(src, src_len, tgt_in, tgt_len)
                total += softmax_cross_entropy(logits, tgt_out, lengths=tgt_len)[0]
                count += int(tgt_len.sum())
        finally:
            self.train(was)
        return total / max(count, 1)

    def fit(self, sources, targets, valid_sources=None, valid_targets=None, *, batch_size: int = 64,
            config: TrainConfig | None = None, checkpoint_dir=None, progress=True, seed: int = 0, resume=None,
            on_eval=None, checkpoint_meta: dict | None = None, **train_options) -> History:
        """Train on pairs (lists of str), validating (teacher-forced loss) on the valid pairs.

        ``train_options`` fill a :class:`~seqmodels.training.loop.TrainConfig`; ``checkpoint_dir`` saves all
        that ``resume`` (``Seq2Seq.load(dir, return_checkpoint=True)[1]``) needs to continue exactly (same
        data, batch size, seed); ``checkpoint_meta`` is stored too (e.g. how the data was made)."""
        config = config or TrainConfig(**train_options)
        data = self.batcher(sources, targets, batch_size=batch_size, seed=seed)
        valid = None if valid_sources is None else self.batcher(valid_sources, valid_targets,
                                                                batch_size=batch_size, shuffle=False)
        return self.run_training(data, (lambda: self.loss(valid)) if valid is not None else None, config,
                                 checkpoint_dir=checkpoint_dir, resume=resume, progress=progress, on_eval=on_eval,
                                 checkpoint_meta=checkpoint_meta)

    def _rngs(self) -> dict:
        return {"dropout": self._drop_rng, "encoder": self.encoder.rng, "decoder": self.decoder.rng}

    # --------------------------------------------------------------- decoding
    def _step(self, ids, state):
        """One decoder step for (N,) ids: log-probabilities (N, V) (float64, <PAD> impossible), new state."""
        x = self.tgt_embedding.params["W_e"][ids]
        new = []
        for layer, s in zip(self.decoder.layers, state):
            s = layer.step(x, s)
            new.append(s)
            x = _parts(s)[0]
        logp = log_softmax((x @ self.head.params["W_y"].T + self.head.params["b_y"]).astype(np.float64))
        logp[:, self.tgt_vocab.pad_id] = -np.inf
        return logp, tuple(new)

    def greedy_search(self, src_ids: list, max_len: int) -> list[Hypothesis]:
        """Argmax decoding of a batch of sources (lists of ids), up to ``max_len`` steps each."""
        state, _ = self.encode(*pad_sequences(src_ids))
        n, eos = len(src_ids), self.tgt_vocab.eos_id
        ids, out = np.full(n, eos), np.zeros((n, max_len), np.int64)
        total, done, length = np.zeros(n), np.zeros(n, bool), np.full(n, max_len)
        for t in range(max_len):
            logp, state = self._step(ids, state)
            ids = logp.argmax(axis=1)
            total += np.where(done, 0.0, logp[np.arange(n), ids])
            out[:, t] = ids
            newly = (ids == eos) & ~done
            length[newly], done = t, done | newly
            if done.all():
                break
        return [Hypothesis(out[i, :length[i]], float(total[i]), float(total[i]), bool(done[i])) for i in range(n)]

    def beam_search(self, src_ids: list, k: int, max_len: int, alpha: float = 0.0,
                    penalty: str = "gnmt") -> list[Hypothesis]:
        """Beam search of width ``k`` for each source, batched (sentences x beams rows)."""
        k, eos = check_positive_int("beam", k), self.tgt_vocab.eos_id
        s0, _ = self.encode(*pad_sequences(src_ids))
        n = len(src_ids)
        state = _take(s0, np.repeat(np.arange(n), k))
        live = np.arange(n)                                    # sentences still searched, in row order
        scores = np.full((n, k), -np.inf)
        scores[:, 0] = 0.0                                     # one start prefix per sentence
        hist = np.zeros((n, k, 0), np.int64)
        ids = np.full(n * k, eos)
        finished: list[list] = [[] for _ in range(n)]
        lp = [length_penalty(max(n, 1), alpha, penalty) for n in range(max_len + 1)]     # lp[|Y|]
        for t in range(max_len):
            logp, state = self._step(ids, state)
            V = logp.shape[1]
            total = (scores[:, :, None] + logp.reshape(len(live), k, V)).reshape(len(live), k * V)
            top = np.argpartition(-total, 2 * k - 1, axis=1)[:, :2 * k]
            top = np.take_along_axis(top, np.argsort(-np.take_along_axis(total, top, 1), 1, kind="stable"), 1)
            val = np.take_along_axis(total, top, 1)
            beam, tok = top // V, top % V
            is_eos = tok == eos
            for r, j in zip(*np.nonzero(is_eos[:, :k] & np.isfinite(val[:, :k]))):
                v = float(val[r, j])
                finished[live[r]].append(Hypothesis(hist[r, beam[r, j]], v, v / lp[t + 1], True))
            keep = np.argsort(is_eos, axis=1, kind="stable")[:, :k]   # the k best that do not end
            beam, tok, scores = (np.take_along_axis(a, keep, 1) for a in (beam, tok, val))
            hist = np.concatenate([np.take_along_axis(hist, beam[:, :, None], 1), tok[:, :, None]], axis=2)
            rows = (np.arange(len(live))[:, None] * k + beam).reshape(-1)
            state, ids = _take(state, rows), tok.reshape(-1)
            going = np.ones(len(live), bool)
            for r, s in enumerate(live):
                if len(finished[s]) >= k:
                    worst = sorted(h.score for h in finished[s])[-k]
                    going[r] = scores[r].max() / lp[max_len] > worst   # can a live prefix still win?
            if not going.all():
                live, scores, hist = live[going], scores[going], hist[going]
                sel = np.repeat(going, k)
                state, ids = _take(state, np.flatnonzero(sel)), ids[sel]
            if live.size == 0:
                break
        for r, s in enumerate(live):                              # max_len reached: unfinished prefixes
            for j in np.flatnonzero(np.isfinite(scores[r])):
                v = float(scores[r, j])
                finished[s].append(Hypothesis(hist[r, j], v, v / lp[max_len], False))
        return [max(f, key=lambda h: h.score) for f in finished]

    def decode(self, sources, *, beam: int = 1, max_len: int | None = None, alpha: float = 0.0,
               length_penalty: str = "gnmt", batch_size: int = 128) -> list[Hypothesis]:
        """Hypotheses for a list of source strings (greedy for ``beam=1``), in the input order.

        ``max_len`` (steps, <EOS> included) defaults to 2 × the source length + 10 per batch.
        """
        check_choice("length_penalty", length_penalty, PENALTIES)
        if not (isinstance(alpha, (int, float)) and alpha >= 0 and math.isfinite(alpha)):
            raise ConfigError(f"alpha: expected a finite number >= 0, got {alpha!r}")
        beam = check_positive_int("beam", beam)
        src = self.encode_sources(sources)
        out, was = {}, self.training
        self.eval()
        try:
            for idx in bucket_by_length([s.size for s in src], check_positive_int("batch_size", batch_size)):
                chunk = [src[i] for i in idx]
                steps = check_positive_int("max_len", max_len or 2 * max(s.size for s in chunk) + 10)
                out.update(zip(idx.tolist(), self.greedy_search(chunk, steps) if beam == 1 else
                               self.beam_search(chunk, beam, steps, alpha, length_penalty)))
        finally:
            self.train(was)
        return [out[i] for i in range(len(src))]

    def tokens(self, ids) -> list[str]:
        return [self.tgt_vocab.id_to_token(int(i)) for i in ids]

    def detokenize(self, tokens: list[str]) -> str:
        """Tokens -> text: joined with "" (char level) or " " with no spaces around ' and - (word level)."""
        if self.tgt_vocab.level == "char":
            return "".join(tokens)
        return re.sub(r" ?([-'’]) ?", r"\1", re.sub(r" ([.,])", r"\1", " ".join(tokens)))

    def translate(self, sources, beam: int = 1, max_len: int | None = None, alpha: float = 0.0, **options) -> list[str]:
        """Translate a list of strings (greedy for ``beam=1``, else beam search); see :meth:`decode`."""
        return [self.detokenize(self.tokens(h.ids)) for h in self.decode(sources, beam=beam, max_len=max_len,
                                                                         alpha=alpha, **options)]

    def evaluate(self, sources, targets, *, references=None, beam: int = 1, batch_size: int = 64,
                 **decode_options) -> dict:
        """``{"bleu", "exact_match", "loss", "n"}``: corpus BLEU-4 (in [0, 1]) and exact match of the
        decoded targets vs ``targets`` (or ``references``: one list of references per source) on target
        tokens, and the mean teacher-forced loss (nats per token) on the (source, target) pairs."""
        loss = self.loss(self.batcher(sources, targets, batch_size=batch_size, shuffle=False))
        hyps = [self.tokens(h.ids) for h in self.decode(sources, beam=beam, **decode_options)]
        multi = references is not None
        refs = [[self.tgt_vocab.tokenize(r) for r in g] for g in references] if multi else \
            [self.tgt_vocab.tokenize(t) for t in targets]
        return {"bleu": corpus_bleu(hyps, refs, multi_reference=multi).bleu,
                "exact_match": exact_match(hyps, refs, multi_reference=multi), "loss": loss, "n": len(hyps)}

    @staticmethod
    def build_vocabularies(sources, targets, *, level: str = "word", max_size: int | None = None,
                           min_count: int = 1, lowercase: bool | None = None) -> tuple[Vocabulary, Vocabulary]:
        """Source and target vocabularies of the same level from the training pairs."""
        proto = Vocabulary(level=level, lowercase=lowercase)
        sv, tv = (Vocabulary.build((proto.tokenize(t) for t in texts), level=level, max_size=max_size,
                                   min_count=min_count, lowercase=proto.lowercase) for texts in (sources, targets))
        return sv, tv
