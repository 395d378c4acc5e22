"""Batching: padding, stream windows for truncated BPTT, length buckets, exact resume."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqmodels.core.errors import ConfigError, DataError, DTypeError, ShapeError
from seqmodels.text import SequenceBatcher, StreamBatcher, bucket_by_length, pad_sequences

FAST = settings(max_examples=50, deadline=None)


# ------------------------------------------------------------------------------------------ padding
def test_pad_sequences_exact():
    ids, lengths = pad_sequences([[5, 6, 2], [7], []], pad_id=9)
    assert ids.dtype == np.int64 and lengths.dtype == np.int64
    assert ids.tolist() == [[5, 6, 2], [7, 9, 9], [9, 9, 9]]
    assert lengths.tolist() == [3, 1, 0]


def test_pad_sequences_max_len_truncates_and_fixes_width():
    ids, lengths = pad_sequences([np.array([1, 2, 3, 4], np.int32), [5]], max_len=3)
    assert ids.tolist() == [[1, 2, 3], [5, 0, 0]] and lengths.tolist() == [3, 1]
    ids, lengths = pad_sequences([[1]], max_len=4)
    assert ids.shape == (1, 4)
    ids, lengths = pad_sequences([])
    assert ids.shape == (0, 0) and lengths.shape == (0,)


def test_pad_sequences_rejects_bad_input():
    with pytest.raises(ShapeError, match=r"seqs\[1\]"):
        pad_sequences([[1], [[1, 2]]])
    with pytest.raises(DTypeError, match=r"seqs\[0\]"):
        pad_sequences([[1.5]])


# ------------------------------------------------------------------------------------------ buckets
@FAST
@given(st.lists(st.integers(0, 30), max_size=200), st.integers(1, 17), st.integers(0, 2**16),
       st.integers(1, 4))
def test_bucket_by_length_covers_every_index_once(lengths, batch_size, seed, pool):
    batches = bucket_by_length(lengths, batch_size, np.random.default_rng(seed), pool_batches=pool)
    flat = np.concatenate(batches) if batches else np.array([], dtype=np.int64)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    sizes = [b.size for b in batches]
    assert sum(s != batch_size for s in sizes) <= 1 and all(0 < s <= batch_size for s in sizes)
    lengths = np.asarray(lengths)
    for b in batches:  # sorted within each batch (each batch comes from one sorted pool)
        assert np.all(np.diff(lengths[b]) >= 0)


def test_bucket_by_length_without_rng_is_sorted_and_seeded_is_reproducible():
    lengths = [5, 1, 4, 2, 3, 3]
    assert [b.tolist() for b in bucket_by_length(lengths, 2)] == [[1, 3], [4, 5], [2, 0]]
    rng_batches = lambda s: [b.tolist() for b in bucket_by_length(np.arange(100) % 7, 4,
                                                                 np.random.default_rng(s), pool_batches=3)]
    assert rng_batches(3) == rng_batches(3)
    assert rng_batches(3) != rng_batches(4)


def test_bucketing_reduces_padding():
    lengths = np.random.default_rng(0).integers(1, 60, size=400)
    def padded(batches):
        return sum(len(b) * lengths[b].max() for b in batches)
    rng = np.random.default_rng(1)
    plain = [p for p in np.array_split(rng.permutation(400), 25)]
    assert padded(bucket_by_length(lengths, 16, np.random.default_rng(1))) < 0.7 * padded(plain)


# ------------------------------------------------------------------------------------------ streams
def test_stream_windows_exact():
    b = StreamBatcher(np.arange(10), batch_size=2, seq_len=2)
    assert len(b) == 2 and b.num_tokens == 10 and b.tokens_per_epoch == 8
    windows = [(x.tolist(), y.tolist()) for x, y in b]
    assert windows == [([[0, 1], [5, 6]], [[1, 2], [6, 7]]),
                       ([[2, 3], [7, 8]], [[3, 4], [8, 9]])]


def test_stream_of_exactly_one_window_and_too_short():
    b = StreamBatcher(np.arange(8), batch_size=2, seq_len=3)
    assert len(b) == 1
    x, y = b.window(0)
    assert x.tolist() == [[0, 1, 2], [4, 5, 6]] and y.tolist() == [[1, 2, 3], [5, 6, 7]]
    with pytest.raises(DataError, match=r"2 \* 4 = 8 tokens, got 7"):
        StreamBatcher(np.arange(7), batch_size=2, seq_len=3)


def test_stream_rejects_bad_input():
    with pytest.raises(ShapeError):
        StreamBatcher(np.zeros((4, 4), np.int64), 1, 2)
    with pytest.raises(DTypeError):
        StreamBatcher(np.zeros(10), 1, 2)
    with pytest.raises(ConfigError):
        StreamBatcher(np.arange(10), 0, 2)


@FAST
@given(st.integers(2, 300), st.integers(1, 6), st.integers(1, 9), st.booleans(), st.integers(0, 99))
def test_stream_windows_are_contiguous_parallel_streams(n, batch, seq_len, random_offset, seed):
    if n < batch * (seq_len + 1):
        with pytest.raises(DataError):
            StreamBatcher(np.arange(n), batch, seq_len)
        return
    b = StreamBatcher(np.arange(n), batch, seq_len, random_offset=random_offset, seed=seed)
    for epoch in range(2):
        o = b.offset(epoch)
        assert 0 <= o <= min(seq_len - 1, n - batch * (seq_len + 1))
        xs, ys = zip(*list(b))
        rows = np.concatenate(xs, axis=1)  # (B, len * T): each row one contiguous stream
        expected = o + np.arange(batch)[:, None] * b.stream_len + np.arange(len(b) * seq_len)
        assert np.array_equal(rows, expected)
        assert np.array_equal(np.concatenate(ys, axis=1), expected + 1)
        assert expected.max() + 1 < n
    assert b.state == {"epoch": 2, "position": 0}


def test_stream_random_offsets_vary_and_are_seeded():
    b = StreamBatcher(np.arange(1000), 4, 10, random_offset=True, seed=7)
    offsets = [b.offset(e) for e in range(20)]
    assert len(set(offsets)) > 3 and max(offsets) <= 9
    assert offsets == [StreamBatcher(np.arange(1000), 4, 10, random_offset=True, seed=7).offset(e)
                       for e in range(20)]
    assert StreamBatcher(np.arange(1000), 4, 10).offset(5) == 0


def test_stream_resume_is_exact_across_epochs():
    ids = np.random.default_rng(0).integers(0, 50, size=500)
    ref = StreamBatcher(ids, 3, 7, random_offset=True, seed=1)
    expected = [w for _ in range(2) for w in ref]
    run = StreamBatcher(ids, 3, 7, random_offset=True, seed=1)
    got = list(run)  # one `for` loop / iter() is one epoch
    it = iter(run)
    got += [next(it) for _ in range(4)]  # then stop 4 windows into epoch 1
    saved = dict(run.state)
    assert saved == {"epoch": 1, "position": 4}
    resumed = StreamBatcher(ids, 3, 7, random_offset=True, seed=1)
    resumed.load_state(saved)
    got.extend(resumed)
    assert len(got) == len(expected)
    for (x, y), (ex, ey) in zip(got, expected):
        assert np.array_equal(x, ex) and np.array_equal(y, ey)


def test_stream_load_state_validates():
    b = StreamBatcher(np.arange(100), 2, 4)
    for bad in ({"epoch": 0}, {"epoch": -1, "position": 0}, {"epoch": 0, "position": 99}):
        with pytest.raises(ConfigError):
            b.load_state(bad)


def test_stream_reads_memmap_per_window(tmp_path):
    ids = (np.arange(10_000) % 97).astype(np.uint16)
    path = tmp_path / "ids.bin"
    ids.tofile(path)
    mm = np.memmap(path, dtype=np.uint16, mode="r")
    b = StreamBatcher(mm, 8, 16)
    assert isinstance(b.ids, np.memmap)  # kept as a memmap, not loaded
    ref = StreamBatcher(ids, 8, 16)
    for (x, y), (rx, ry) in zip(b, ref):
        assert x.dtype == np.int64 and np.array_equal(x, rx) and np.array_equal(y, ry)


# ------------------------------------------------------------------------------------------ sequences
def test_sequence_batcher_exact_without_shuffle():
    seqs = [[5, 6, 2], [7, 2], [8, 9, 10, 2]]
    sb = SequenceBatcher(seqs, batch_size=2, shuffle=False, bucket=False, pad_id=0)
    out = [(x.tolist(), y.tolist(), n.tolist()) for x, y, n in sb]
    assert out == [([[5, 6], [7, 0]], [[6, 2], [2, 0]], [2, 1]),
                   ([[8, 9, 10]], [[9, 10, 2]], [3])]
    assert len(sb) == 2


def _reconstruct(batches):
    """Whole sequences back from (x, y, lengths): x[:n] followed by y[n - 1]."""
    out = []
    for x, y, n in batches:
        for row in range(x.shape[0]):
            k = n[row]
            assert np.all(x[row, k:] == 0) and np.all(y[row, k:] == 0)  # padding only past length
            assert np.array_equal(x[row, 1:k], y[row, :k - 1])  # y is x shifted by one
            out.append(tuple(x[row, :k].tolist()) + (int(y[row, k - 1]),))
    return out


@FAST
@given(st.lists(st.lists(st.integers(1, 20), min_size=2, max_size=12), min_size=1, max_size=40),
       st.integers(1, 8), st.booleans(), st.integers(0, 9))
def test_sequence_batcher_yields_every_sequence_once(seqs, batch_size, bucket, seed):
    sb = SequenceBatcher(seqs, batch_size, shuffle=True, seed=seed, bucket=bucket, pool_batches=2)
    batches = list(sb)
    assert len(batches) == len(sb)
    assert sorted(_reconstruct(batches)) == sorted(tuple(s) for s in seqs)
    assert all(x.shape == y.shape and x.shape[1] == n.max() for x, y, n in batches)


def test_sequence_batcher_is_reproducible_and_resumable():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(3, 30, size=rng.integers(2, 15)) for _ in range(101)]
    make = lambda: SequenceBatcher(seqs, 8, seed=5, pool_batches=3)
    ref = make()
    expected = [b for _ in range(3) for b in ref]
    again = make()
    assert all(np.array_equal(a[0], b[0]) for a, b in zip([w for _ in range(3) for w in again], expected))
    first_two = [tuple(b.tolist()) for b in ref.batches(0)], [tuple(b.tolist()) for b in ref.batches(1)]
    assert first_two[0] != first_two[1]  # reshuffled every epoch
    run = make()
    got = list(run)
    it = iter(run)
    got += [next(it) for _ in range(5)]
    assert run.state == {"epoch": 1, "position": 5}
    resumed = make()
    resumed.load_state(run.state)
    got += list(resumed) + list(resumed)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_sequence_batcher_drop_last_and_errors():
    seqs = [[1, 2]] * 5
    sb = SequenceBatcher(seqs, 2, drop_last=True, seed=0)
    assert len(sb) == 2 and all(x.shape[0] == 2 for x, _, _ in sb)
    with pytest.raises(DataError, match=r"seqs\[1\] has 1 ids"):
        SequenceBatcher([[1, 2], [2]], 2)
    with pytest.raises(DataError, match="empty"):
        SequenceBatcher([], 2)
    with pytest.raises(DataError, match="no full batch"):
        SequenceBatcher(seqs, 8, drop_last=True)


def test_dinosaur_names_batch(shared_data):
    from seqmodels.data import read_lines
    from seqmodels.text import Vocabulary
    names = [n.lower() for n in read_lines(shared_data / "dinos" / "dinos.txt")]
    v = Vocabulary.from_text("\n".join(names), lines_as_sequences=True)
    sb = SequenceBatcher(v.encode_lines(names), 32, seed=0)
    total = 0
    for x, y, n in sb:
        total += x.shape[0]
        assert np.all(y[np.arange(len(n)), n - 1] == v.eos_id)
    assert total == 1536


def test_one_pass_runs_a_whole_epoch_from_the_start_and_leaves_the_state_alone():
    from seqmodels.text.batching import one_pass

    b = StreamBatcher(np.arange(200), batch_size=2, seq_len=5, random_offset=True, seed=3)
    first = [x.copy() for x, _ in b]                   # epoch 0, whole
    it = iter(b)
    next(it)                                           # mid-way through epoch 1
    before = dict(b.state)
    seen = [x for x, _ in one_pass(b)]
    assert len(seen) == len(first) and all(np.array_equal(s, f) for s, f in zip(seen, first))
    assert b.state == before
    assert list(one_pass([1, 2, 3])) == [1, 2, 3]      # any iterable: just iterated
