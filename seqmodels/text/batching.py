"""Batching of token ids: padding, language-model stream windows, length-bucketed sequence batches.

Shapes: ``B`` batch size, ``T`` time steps (``seq_len`` or the longest sequence in the batch),
``N`` tokens in a stream. Every id array handed out is int64; padding is on the right.

Randomness is reproducible and resumable: epoch ``e`` of a batcher seeded with ``seed`` draws from
``np.random.default_rng([seed, e])``, so ``state`` (epoch, position) is all that an exact resume needs.

>>> ids, lengths = pad_sequences([[5, 6, 2], [7, 2]])
>>> ids.tolist(), lengths.tolist()
([[5, 6, 2], [7, 2, 0]], [3, 2])
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ..core.errors import ConfigError, DataError, DTypeError, ShapeError, check_positive_int

__all__ = ["pad_sequences", "bucket_by_length", "epoch_rng", "one_pass", "ResumableBatcher", "StreamBatcher",
           "SequenceBatcher"]


def _as_ids(seq, name: str) -> np.ndarray:
    arr = np.asarray(seq)
    if arr.ndim != 1:
        raise ShapeError(f"{name}: expected a 1-D sequence of ids, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise DTypeError(f"{name}: expected integer ids, got dtype {arr.dtype}; encode text first "
                         "(Vocabulary.encode)")
    return arr.astype(np.int64, copy=False)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The shuffling generator of one epoch: a function of (seed, epoch) only, so a batcher resumed at
    any epoch draws what an uninterrupted one would."""
    return np.random.default_rng([seed, epoch])


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed: expected a non-negative integer, got {seed!r}")
    return int(seed)


def pad_sequences(seqs: Sequence, pad_id: int = 0,
                  max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad 1-D id sequences into one array.

    Args:
        seqs: ``B`` array-likes of integer ids (lengths may differ, may be empty).
        pad_id: value written past each sequence's end.
        max_len: if given, the output has exactly ``T = max_len`` columns and longer sequences are
            truncated (their first ``max_len`` ids kept); otherwise ``T`` is the longest length.

    Returns:
        ``ids`` ``(B, T)`` int64 and ``lengths`` ``(B,)`` int64 (after truncation).

    >>> pad_sequences([[1, 2, 3], [4]], pad_id=9, max_len=2)[0].tolist()
    [[1, 2], [4, 9]]
    """
    arrays = [_as_ids(s, f"seqs[{i}]") for i, s in enumerate(seqs)]
    if max_len is not None:
        max_len = check_positive_int("max_len", max_len, allow_zero=True)
        arrays = [a[:max_len] for a in arrays]
    lengths = np.array([a.size for a in arrays], dtype=np.int64)
    width = max_len if max_len is not None else int(lengths.max(initial=0))
    ids = np.full((len(arrays), width), pad_id, dtype=np.int64)
    if arrays:
        ids[np.arange(width) < lengths[:, None]] = np.concatenate(arrays)
    return ids, lengths


def bucket_by_length(lengths, batch_size: int, rng: np.random.Generator | None = None, *,
                     pool_batches: int = 50) -> list[np.ndarray]:
    """Group indices into batches of similar length; every index appears exactly once.

    The indices are shuffled (if ``rng``), cut into pools of ``pool_batches * batch_size``, each pool
    is sorted by length (stable) and cut into batches, and the batch order is shuffled (if ``rng``).
    Only the final batch of the final pool can be smaller than ``batch_size``. Without ``rng`` the
    result is deterministic: pools in index order, batches in pool order.

    Args:
        lengths: ``(n,)`` sequence lengths.
        batch_size: indices per batch.
        rng: a ``np.random.Generator`` or ``None`` for no shuffling.
        pool_batches: batches per sorting pool (larger: tighter length groups, less randomness).

    Returns:
        A list of int64 index arrays.

    >>> [b.tolist() for b in bucket_by_length([5, 1, 4, 2], 2)]
    [[1, 3], [2, 0]]
    """
    lengths = _as_ids(lengths, "lengths")
    batch_size = check_positive_int("batch_size", batch_size)
    pool = batch_size * check_positive_int("pool_batches", pool_batches)
    n = lengths.size
    order = rng.permutation(n) if rng is not None else np.arange(n)
    batches = []
    for start in range(0, n, pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size] for i in range(0, chunk.size, batch_size))
    if rng is not None and batches:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def one_pass(data):
    """One full pass over a batcher from its start, leaving its own state as it was (evaluation during
    training must not move the training batcher); any other iterable is simply iterated."""
    if hasattr(data, "state") and hasattr(data, "load_state"):
        saved = dict(data.state)
        data.load_state({"epoch": 0, "position": 0})
        try:
            yield from iter(data)
        finally:
            data.load_state(saved)
    else:
        yield from data


class ResumableBatcher:
    """Epoch/position bookkeeping shared by the batchers (``state`` / ``load_state``); a batcher of a new
    kind of data subclasses it (see ``PairBatcher`` in :mod:`seqmodels.models.seq2seq`)."""

    epoch: int
    position: int

    @property
    def state(self) -> dict:
        """``{"epoch": e, "position": k}``: the next batch is batch ``k`` of epoch ``e`` (JSON-able)."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict) -> None:
        """Resume from a :attr:`state`; the following batches are exactly those that would have come."""
        if not isinstance(state, dict) or set(state) != {"epoch", "position"}:
            raise ConfigError(f"state: expected a dict with keys 'epoch' and 'position', got {state!r}")
        epoch = check_positive_int("state['epoch']", state["epoch"], allow_zero=True)
        position = check_positive_int("state['position']", state["position"], allow_zero=True)
        if position > len(self):
            raise ConfigError(f"state['position']: expected at most {len(self)} (batches per epoch), "
                              f"got {position}; was the state saved with other data or batch size?")
        self.epoch, self.position = epoch, position

    def __len__(self) -> int:
        raise NotImplementedError

    def _batch(self, epoch: int, k: int):
        raise NotImplementedError

    def __iter__(self) -> Iterator:
        """Yield the rest of the current epoch, then move the state to the next epoch."""
        if self.position >= len(self):
            self.epoch, self.position = self.epoch + 1, 0
        epoch = self.epoch
        while self.epoch == epoch and self.position < len(self):
            batch = self._batch(epoch, self.position)
            self.position += 1  # advanced before the yield: a state saved now resumes after it
            yield batch
        if self.epoch == epoch and self.position >= len(self):
            self.epoch, self.position = epoch + 1, 0


class StreamBatcher(ResumableBatcher):
    """Truncated-BPTT windows over one long token stream (char-rnn style).

    The stream (after a per-epoch offset ``o``, 0 unless ``random_offset``) is cut into ``B``
    contiguous parallel streams of ``S`` tokens: row ``b`` reads ``ids[o + b*S : o + (b+1)*S]``.
    Window ``k`` is ``x[b] = stream_b[k*T : k*T + T]`` and ``y[b] = stream_b[k*T + 1 : k*T + T + 1]``,
    so window ``k + 1`` continues exactly where window ``k`` stopped and the recurrent state can be
    carried between them (reset it when a new epoch starts, i.e. when ``position`` is 0).
    There are ``len(self) = (S - 1) // T`` windows per epoch; the tail of each stream is unused.
    Only the ``B * (T + 1)`` ids of each window are read, so a ``np.memmap`` is never loaded whole.

    Args:
        ids: ``(N,)`` integer ids (ndarray or memmap; not copied).
        batch_size: ``B`` parallel streams.
        seq_len: ``T`` time steps per window.
        random_offset: start epoch ``e`` at an offset ``o`` in ``[0, min(T - 1, N - B*(T+1))]`` drawn
            from ``default_rng([seed, e])``, so the cut points differ between epochs.
        seed: seed of those offsets.

    Yields:
        ``(x, y)``, both ``(B, T)`` int64.

    >>> b = StreamBatcher(np.arange(10), batch_size=2, seq_len=2)
    >>> [(x.tolist(), y.tolist()) for x, y in b]
    [([[0, 1], [5, 6]], [[1, 2], [6, 7]]), ([[2, 3], [7, 8]], [[3, 4], [8, 9]])]
    """

    def __init__(self, ids, batch_size: int, seq_len: int, *, random_offset: bool = False,
                 seed: int = 0):
        if not isinstance(ids, np.ndarray):
            ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ShapeError(f"ids: expected a 1-D token stream, got shape {ids.shape}; "
                             "flatten or concatenate the corpus first")
        if not np.issubdtype(ids.dtype, np.integer):
            raise DTypeError(f"ids: expected integer token ids, got dtype {ids.dtype}")
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seq_len = check_positive_int("seq_len", seq_len)
        self.random_offset, self.seed = bool(random_offset), _check_seed(seed)
        need, n = self.batch_size * (self.seq_len + 1), int(ids.shape[0])
        if n < need:
            raise DataError(f"token stream too short: one window needs at least batch_size * "
                            f"(seq_len + 1) = {self.batch_size} * {self.seq_len + 1} = {need} "
                            f"tokens, got {n}; use a smaller batch_size or seq_len, or more text")
        self.ids = ids
        self.max_offset = min(self.seq_len - 1, n - need) if self.random_offset else 0
        self.stream_len = (n - self.max_offset) // self.batch_size
        self._windows = (self.stream_len - 1) // self.seq_len
        self.epoch, self.position = 0, 0

    def __len__(self) -> int:
        return self._windows

    @property
    def num_tokens(self) -> int:
        """``N``, the number of tokens in the whole stream."""
        return int(self.ids.shape[0])

    @property
    def tokens_per_epoch(self) -> int:
        """Predicted tokens per epoch: ``len(self) * B * T``."""
        return self._windows * self.batch_size * self.seq_len

    def offset(self, epoch: int) -> int:
        """Start offset ``o`` of ``epoch`` (always 0 without ``random_offset``)."""
        if not self.max_offset:
            return 0
        return int(epoch_rng(self.seed, epoch).integers(0, self.max_offset + 1))

    def window(self, k: int, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Window ``k`` of ``epoch`` (default: the current one) without touching the state."""
        if not 0 <= k < len(self):
            raise ConfigError(f"k: expected a window index in [0, {len(self)}), got {k}")
        return self._batch(self.epoch if epoch is None else epoch, k)

    def _batch(self, epoch: int, k: int):
        starts = self.offset(epoch) + np.arange(self.batch_size) * self.stream_len + k * self.seq_len
        win = np.asarray(self.ids[starts[:, None] + np.arange(self.seq_len + 1)], dtype=np.int64)
        return win[:, :-1], win[:, 1:]


class SequenceBatcher(ResumableBatcher):
    """Batches of whole sequences for next-token training (one name, sentence ... per item).

    Item ``i`` gives ``x = seqs[i][:-1]`` and ``y = seqs[i][1:]`` (append ``<EOS>`` to each sequence
    beforehand if the model should learn to stop). Batches are built by :func:`bucket_by_length`
    (``bucket=True``) or by plain chunks of the (shuffled) order, padded with ``pad_id``.

    Args:
        seqs: id sequences, each of length >= 2.
        batch_size: ``B`` (the last batch of an epoch may be smaller unless ``drop_last``).
        shuffle: reshuffle every epoch with ``default_rng([seed, epoch])``.
        seed: see ``shuffle``.
        bucket: group similar lengths (less padding).
        pad_id: padding value of ``x`` and ``y``.
        drop_last: drop the smaller batch.
        pool_batches: see :func:`bucket_by_length`.

    Yields:
        ``(x, y, lengths)``: ``(B, T)``, ``(B, T)`` int64 and ``(B,)`` int64, ``T = lengths.max()``.

    >>> sb = SequenceBatcher([[5, 6, 2], [7, 2]], batch_size=2, shuffle=False)
    >>> [(x.tolist(), y.tolist(), n.tolist()) for x, y, n in sb]
    [([[7, 0], [5, 6]], [[2, 0], [6, 2]], [1, 2])]
    """

    def __init__(self, seqs: Sequence, batch_size: int, shuffle: bool = True, seed: int = 0,
                 bucket: bool = True, *, pad_id: int = 0, drop_last: bool = False,
                 pool_batches: int = 50):
        self.seqs = [_as_ids(s, f"seqs[{i}]") for i, s in enumerate(seqs)]
        short = next((i for i, s in enumerate(self.seqs) if s.size < 2), None)
        if short is not None:
            raise DataError(f"seqs[{short}] has {self.seqs[short].size} ids: expected at least 2 "
                            "(an input and a target); drop empty lines or add <EOS>")
        if not self.seqs:
            raise DataError("seqs is empty: expected at least one sequence")
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.pool_batches = check_positive_int("pool_batches", pool_batches)
        self.shuffle, self.seed, self.bucket = bool(shuffle), _check_seed(seed), bool(bucket)
        self.pad_id, self.drop_last = int(pad_id), bool(drop_last)
        self.lengths = np.array([s.size - 1 for s in self.seqs], dtype=np.int64)
        n = len(self.seqs)
        self._len = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if self._len == 0:
            raise DataError(f"{n} sequences make no full batch of {self.batch_size} with "
                            "drop_last=True; lower batch_size or set drop_last=False")
        self._plan_epoch = None
        self._plan: list[np.ndarray] = []
        self.epoch, self.position = 0, 0

    def __len__(self) -> int:
        return self._len

    def batches(self, epoch: int) -> list[np.ndarray]:
        """The index batches of ``epoch`` (deterministic given the seed)."""
        if self._plan_epoch != epoch:
            rng = epoch_rng(self.seed, epoch) if self.shuffle else None
            if self.bucket:
                plan = bucket_by_length(self.lengths, self.batch_size, rng,
                                        pool_batches=self.pool_batches)
            else:
                order = rng.permutation(len(self.seqs)) if rng is not None else np.arange(len(self.seqs))
                plan = [order[i:i + self.batch_size] for i in range(0, order.size, self.batch_size)]
            if self.drop_last:
                plan = [b for b in plan if b.size == self.batch_size]
            self._plan_epoch, self._plan = epoch, plan
        return self._plan

    def _batch(self, epoch: int, k: int):
        idx = self.batches(epoch)[k]
        x, lengths = pad_sequences([self.seqs[i][:-1] for i in idx], pad_id=self.pad_id)
        y, _ = pad_sequences([self.seqs[i][1:] for i in idx], pad_id=self.pad_id)
        return x, y, lengths
