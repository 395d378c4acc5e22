"""One-to-many: an RNN that models and composes polyphonic music as a piano roll (multi-hot frames).

A sequence is a piano roll ``y<1..T>``, ``y<t>`` in {0,1}^K (K notes, note k = MIDI ``k + note_offset``).
The input at step t is the previous frame; the first input is all zeros:

    x<1> = 0,   x<t> = y<t-1>,   a<t> = RNN(a<t-1>, x<t>),   ŷ<t> = σ(W_y a<t> + b_y)      (K sigmoids)
    NLL per time step = (1 / Σ_b T_b) Σ_b Σ_t Σ_k -[y log ŷ + (1 - y) log(1 - ŷ)]<t>_k

— the negative log-likelihood summed over notes and averaged over *all* time steps of all sequences
(Boulanger-Lewandowski et al. 2012; Chung et al. 2014 report it on JSB Chorales). Generation draws each
note of a frame independently, ``y<t>_k ~ Bernoulli(σ(z<t>_k / temperature))``, and feeds the frame back.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import ConfigError, DataError, ShapeError, check_choice, check_positive_int, check_probability
from ..core.functional import inverted_dropout, sigmoid, sigmoid_cross_entropy
from ..core.init import as_generator
from ..data.midi import notes_to_roll, roll_to_notes
from ..layers import Dense, Stack, make_recurrent
from ..sampling import check_temperature
from ..text.batching import ResumableBatcher, bucket_by_length, epoch_rng
from ..training.loop import History, TrainConfig
from .base import Model

CELLS = ("lstm", "gru", "rnn")


class RollBatcher(ResumableBatcher):
    """Batches of piano rolls for next-frame training, resumable like the text batchers.

    Yields ``(x, y, lengths)``: ``x`` (B, T, K) inputs (zeros, then each roll shifted by one step),
    ``y`` (B, T, K) the rolls, both zero-padded, in ``dtype``; ``lengths`` (B,) int64.
    """

    def __init__(self, rolls, batch_size: int, shuffle: bool = True, seed: int = 0, *, bucket: bool = True,
                 dtype=np.float32):
        self.rolls = list(rolls)
        if not self.rolls:
            raise DataError("rolls: expected at least one sequence, got none")
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.shuffle, self.seed, self.bucket, self.dtype = bool(shuffle), int(seed), bool(bucket), np.dtype(dtype)
        self.lengths = np.array([r.shape[0] for r in self.rolls], np.int64)
        self._len = -(-len(self.rolls) // self.batch_size)
        self._plan_epoch, self._plan = None, []
        self.epoch, self.position = 0, 0

    def __len__(self) -> int:
        return self._len

    @property
    def num_steps(self) -> int:
        """Time steps in one pass (the denominator of the NLL per time step)."""
        return int(self.lengths.sum())

    def batches(self, epoch: int) -> list[np.ndarray]:
        if self._plan_epoch != epoch:
            rng = epoch_rng(self.seed, epoch) if self.shuffle else None
            if self.bucket:
                plan = bucket_by_length(self.lengths, self.batch_size, rng)
            else:
                order = rng.permutation(len(self.rolls)) if rng is not None else np.arange(len(self.rolls))
                plan = [order[i:i + self.batch_size] for i in range(0, order.size, self.batch_size)]
            self._plan_epoch, self._plan = epoch, plan
        return self._plan

    def _batch(self, epoch: int, k: int):
        idx = self.batches(epoch)[k]
        lengths = self.lengths[idx]
        K = self.rolls[0].shape[1]
        y = np.zeros((idx.size, int(lengths.max()), K), self.dtype)
        for b, i in enumerate(idx):
            y[b, :lengths[b]] = self.rolls[i]
        x = np.zeros_like(y)
        x[:, 1:] = y[:, :-1]                                # x<1> = 0, x<t> = y<t-1>
        x[np.arange(x.shape[1]) >= lengths[:, None]] = 0    # padding stays zero
        return x, y, lengths.copy()


class SequenceGenerator(Model):
    """Piano-roll RNN: multi-hot frame in, one sigmoid per note out, predicting the next frame.

    Args:
        num_notes: K, the width of a frame (88 piano keys by default, or the data's range).
        cell, hidden_size, num_layers: the recurrent stack (``"lstm"``, ``"gru"`` or ``"rnn"``);
            ``cell_options`` go to the layers (``peephole``, ``variant``, ``activation``, ``init`` ...).
        note_offset: MIDI number of column 0 (21 = A0, the lowest piano key).
        dropout: between recurrent layers and before the output layer, while training.

    >>> import seqmodels as sm
    >>> gen = SequenceGenerator(num_notes=4, cell="gru", hidden_size=8, note_offset=60, seed=0)
    >>> rolls = [gen.encode([[60, 62], [61], []])]
    >>> round(gen.evaluate(rolls), 2) > 0, gen.generate(2, length=5, seed=1).shape
    (True, (2, 5, 4))
    """

    kind = "sequence_generator"

    def __init__(self, num_notes: int = 88, cell: str = "lstm", hidden_size: int = 128, num_layers: int = 1, *,
                 note_offset: int = 21, dropout: float = 0.0, dtype=np.float32, seed=0, **cell_options):
        check_choice("cell", cell, CELLS)
        self.num_notes = check_positive_int("num_notes", num_notes)
        if not isinstance(note_offset, int) or not (0 <= note_offset and note_offset + self.num_notes <= 128):
            raise ConfigError(f"note_offset: expected an int with 0 <= note_offset and note_offset + num_notes "
                              f"<= 128 (MIDI notes 0..127), got note_offset={note_offset!r}, "
                              f"num_notes={self.num_notes}")
        self.note_offset = note_offset
        self.cell = cell
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.dropout = check_probability("dropout", dropout)
        self.cell_options = dict(cell_options)
        self.dtype = np.dtype(dtype)
        rng = as_generator(seed)
        layers, size = [], self.num_notes
        for _ in range(self.num_layers):
            layers.append(make_recurrent(cell, size, self.hidden_size, dtype=dtype, seed=rng, **cell_options))
            size = self.hidden_size
        self.rnn = Stack(layers, dropout=self.dropout, seed=rng)
        self.head = Dense(self.hidden_size, self.num_notes, dtype=dtype, seed=rng)
        self._register(rnn=self.rnn, head=self.head)
        self._drop_rng = rng

    # ----------------------------------------------------------------- config
    def config(self) -> dict:
        return dict(num_notes=self.num_notes, cell=self.cell, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, note_offset=self.note_offset, dropout=self.dropout,
                    dtype=str(self.dtype), cell_options=self.cell_options)

    @classmethod
    def from_config(cls, config: dict, meta: dict) -> "SequenceGenerator":
        cfg = dict(config)
        options = cfg.pop("cell_options", {}) or {}
        return cls(**cfg, **options)

    @property
    def note_range(self) -> tuple[int, int]:
        """(lowest, highest) MIDI note the model covers."""
        return self.note_offset, self.note_offset + self.num_notes - 1

    # ------------------------------------------------------------------- data
    def encode(self, sequence, *, where: str = "sequence") -> np.ndarray:
        """A (T, K) 0/1 roll from a list of time steps of MIDI notes (the piano-roll JSON) or from a roll
        (T, K), or a full-range MIDI roll (T, 128) as :func:`~seqmodels.data.midi.read_midi_roll` gives."""
        if isinstance(sequence, np.ndarray):
            roll = sequence
            if roll.ndim != 2 or roll.shape[1] not in (self.num_notes, 128):
                raise ShapeError(f"{where}: expected a roll of shape (T, {self.num_notes}) or a MIDI roll "
                                 f"(T, 128), got {roll.shape}")
            if roll.dtype.kind not in "biuf" or not np.isin(roll, (0, 1)).all():
                raise DataError(f"{where}: expected 0/1 values in the piano roll")
            if roll.shape[1] == 128 and self.num_notes != 128:
                lo, hi = self.note_range
                outside = np.flatnonzero(np.delete(roll, np.s_[lo:hi + 1], axis=1).any(axis=0))
                if outside.size:
                    cols = [c if c < lo else c + self.num_notes for c in outside.tolist()]
                    raise DataError(f"{where}: MIDI note(s) {cols[:5]} lie outside the model's range {lo}..{hi}")
                roll = roll[:, lo:hi + 1]
            roll = roll.astype(np.uint8)
        else:
            roll = notes_to_roll(sequence, self.num_notes, self.note_offset, where=where)
        if roll.shape[0] == 0:
            raise DataError(f"{where}: empty sequence (0 time steps); expected at least one frame")
        return roll

    def encode_all(self, sequences, *, name: str = "data") -> list[np.ndarray]:
        return [self.encode(s, where=f"{name}: sequence {i}") for i, s in enumerate(sequences)]

    def decode(self, roll) -> list[list[int]]:
        """A (T, K) roll -> each step's MIDI notes."""
        return roll_to_notes(roll, self.note_offset)

    def batcher(self, sequences, *, batch_size: int = 16, shuffle: bool = True, seed: int = 0) -> RollBatcher:
        return RollBatcher(self.encode_all(sequences), batch_size, shuffle, seed, dtype=self.dtype)

    # ---------------------------------------------------------------- forward
    def forward(self, x, lengths=None, state=None):
        """x (B, T, K) frames -> logits (B, T, K), final states (one per layer), cache."""
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 3 or x.shape[2] != self.num_notes:
            raise ShapeError(f"x: expected frames of shape (B, T, {self.num_notes}), got {x.shape}")
        h, state, c_rnn = self.rnn.forward(x, lengths, state)
        mask = None
        if self.training:
            h, mask = inverted_dropout(h, self.dropout, self._drop_rng)
        logits, _, c_head = self.head.forward(h)
        return logits, state, (c_rnn, c_head, mask)

    def backward(self, dlogits, cache) -> None:
        c_rnn, c_head, mask = cache
        dh, _ = self.head.backward(dlogits, c_head)
        if mask is not None:
            dh = dh * mask
        self.rnn.backward(dh, c_rnn)

    def train_batch(self, batch) -> tuple[float, int]:
        """Forward, NLL per time step (mean), backward (accumulating grads): (loss, time steps)."""
        x, y, lengths = batch
        logits, _, cache = self.forward(x, lengths)
        loss, dlogits = sigmoid_cross_entropy(logits, y, lengths=lengths, reduction="mean")
        self.backward(dlogits, cache)
        return float(loss), int(np.sum(lengths))

    def evaluate(self, data, *, batch_size: int = 64) -> float:
        """NLL per time step (nats) over all time steps of all sequences (a batcher, or sequences)."""
        if not hasattr(data, "load_state"):
            data = self.batcher(data, batch_size=batch_size, shuffle=False)
        was, saved = self.training, dict(data.state)
        self.eval()
        total, steps = 0.0, 0
        try:
            data.load_state({"epoch": 0, "position": 0})      # one full pass from the start
            for x, y, lengths in data:
                logits, _, _ = self.forward(x, lengths)
                loss, _ = sigmoid_cross_entropy(logits, y, lengths=lengths, reduction="sum")
                total += loss
                steps += int(np.sum(lengths))
        finally:
            data.load_state(saved)
            self.train(was)
        return total / max(steps, 1)

    def fit(self, train_data, valid_data=None, *, batch_size: int = 16, config: TrainConfig | None = None,
            checkpoint_dir=None, progress=True, seed: int = 0, resume=None, on_eval=None,
            **train_options) -> History:
        """Train on sequences (lists of note lists, or rolls; or a :class:`RollBatcher`), validating on
        ``valid_data`` (early stopping with ``patience``). ``train_options`` fill a
        :class:`~seqmodels.training.loop.TrainConfig`; ``resume`` continues a checkpoint from
        :meth:`save_training` (load it with ``return_checkpoint=True``)."""
        config = config or TrainConfig(**train_options)
        data = train_data if hasattr(train_data, "load_state") else self.batcher(
            train_data, batch_size=batch_size, seed=seed)
        valid = None
        if valid_data is not None:
            valid = valid_data if hasattr(valid_data, "load_state") else self.batcher(
                valid_data, batch_size=max(batch_size, 64), shuffle=False)
        return self.run_training(data, (lambda: self.evaluate(valid)) if valid is not None else None, config,
                                 checkpoint_dir=checkpoint_dir, resume=resume, progress=progress, on_eval=on_eval)

    def _rngs(self) -> dict:
        return {"dropout": self._drop_rng, "stack": self.rnn.rng}

    # ------------------------------------------------------------- generation
    def _step(self, frame: np.ndarray, state):
        """One step of the whole network for (B, K) frames: logits (B, K) and the new state."""
        x = frame.astype(self.dtype, copy=False)
        new = []
        for layer, s in zip(self.rnn.layers, state):
            s = layer.step(x, s)
            new.append(s)
            x = s[0] if isinstance(s, tuple) else s
        return x @ self.head.params["W_y"].T + self.head.params["b_y"], tuple(new)

    def generate(self, num: int = 1, length: int = 64, *, primer=None, seed=None,
                 temperature: float = 1.0) -> np.ndarray:
        """Compose ``num`` rolls of ``length`` frames: (num, length, K) uint8, all rows in one batch.

        Starts from the zero frame, then the ``primer`` (a roll or a list of note lists, shared by all
        rows) if given; every sampled frame is fed back as the next input. The primer is not repeated in
        the output. ``temperature`` < 1 makes each note's choice more certain (σ(z / temperature)).
        """
        num = check_positive_int("num", num)
        length = check_positive_int("length", length)
        temperature = check_temperature(temperature)
        rng = as_generator(seed)
        start = np.zeros((1, self.num_notes), np.uint8)
        if primer is not None:
            start = np.concatenate([start, self.encode(primer, where="primer")])
        was = self.training
        self.eval()
        try:
            logits, state, _ = self.forward(np.repeat(start[None], num, axis=0))
            z = logits[:, -1]
            out = np.zeros((num, length, self.num_notes), np.uint8)
            for t in range(length):
                p = sigmoid(np.asarray(z, np.float64) / temperature)
                out[:, t] = rng.random(p.shape) < p             # y<t>_k ~ Bernoulli(p_k)
                if t + 1 < length:
                    z, state = self._step(out[:, t], state)
        finally:
            self.train(was)
        return out
