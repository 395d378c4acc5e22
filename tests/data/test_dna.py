"""The generated ORF data set: labels mark exactly the planted open reading frames."""

import numpy as np
import pytest

from seqmodels.core.errors import ConfigError
from seqmodels.data.dna import encode_dna, find_orfs, make_orf_dataset

STOPS = {"TAA", "TAG", "TGA"}


def brute_force_orfs(seq: str, min_codons: int) -> set:
    """Independent reading of the rule: for every ATG, its first in-frame stop; keep the longest ORF per
    stop (an ATG inside an open frame is a methionine, not a new start) if it has >= min_codons codons."""
    by_stop = {}
    for i in range(len(seq) - 2):
        if seq[i:i + 3] != "ATG":
            continue
        for j in range(i + 3, len(seq) - 2, 3):
            if seq[j:j + 3] in STOPS:
                by_stop[j] = min(by_stop.get(j, i), i)
                break
    return {(i, j + 3) for j, i in by_stop.items() if (j + 3 - i) // 3 >= min_codons}


@pytest.mark.parametrize("min_codons, max_codons", [(20, 60), (5, 12)])
def test_labels_are_exactly_the_planted_orfs(min_codons, max_codons):
    data = make_orf_dataset(40, length=(150, 400), orfs_per_sequence=(0, 3), min_codons=min_codons,
                            max_codons=max_codons, seed=11)
    planted_total = 0
    for ex in data:
        seq = ex.sequence
        assert set(seq) <= set("ACGT") and ex.labels.shape == (len(seq),)
        expected = np.zeros(len(seq), np.int8)
        for s, e in ex.orfs:
            assert seq[s:s + 3] == "ATG" and seq[e - 3:e] in STOPS
            assert min_codons <= (e - s) // 3 <= max_codons and (e - s) % 3 == 0
            assert not any(seq[c:c + 3] in STOPS for c in range(s + 3, e - 3, 3))   # no early in-frame stop
            expected[s:e] = 1
        assert all(b[0] > a[1] for a, b in zip(ex.orfs, ex.orfs[1:]))            # disjoint, in order
        assert np.array_equal(ex.labels, expected)
        assert brute_force_orfs(seq, min_codons) == set(ex.orfs)
        planted_total += len(ex.orfs)
    assert planted_total > 40


def test_background_keeps_short_decoy_orfs():
    """Not just 'find ATG': chance ORFs shorter than min_codons remain and are labelled 0."""
    data = make_orf_dataset(30, length=(300, 600), min_codons=20, max_codons=60, seed=2)
    decoys = sum(len(brute_force_orfs(ex.sequence, 1) - set(ex.orfs)) for ex in data)
    outside_atg = sum(1 for ex in data for i in range(len(ex.sequence) - 2)
                      if ex.sequence[i:i + 3] == "ATG" and ex.labels[i] == 0)
    assert decoys > 30 and outside_atg > 30


def test_seeded_and_deterministic():
    a = make_orf_dataset(5, seed=3)
    b = make_orf_dataset(5, seed=3)
    c = make_orf_dataset(5, seed=4)
    assert [x.sequence for x in a] == [x.sequence for x in b] and [x.orfs for x in a] == [x.orfs for x in b]
    assert [x.sequence for x in a] != [x.sequence for x in c]


def test_find_orfs_on_hand_written_sequences():
    #        0         1         2
    #        012345678901234567890123456789
    seq = "CCATGAAAATGTTTTAGCCATGCCTTGACC"
    # frame 2: ATG at 2, AAA, ATG (a methionine inside), TTT, TAG at 14 -> (2, 17)
    # frame 1: ATG at 19, CCT, TGA at 25 -> (19, 28); the TGA at 3..5 (frame 0) is out of frame
    assert find_orfs(seq) == [(2, 17), (19, 28)]
    assert find_orfs(seq, min_codons=4) == [(2, 17)]
    assert find_orfs("ATGAAACCC") == []                  # never closed: not an ORF


def test_encoding_and_bad_options():
    assert encode_dna("ACGTA").tolist() == [0, 1, 2, 3, 0]
    with pytest.raises(ConfigError, match="'N' at position 2"):
        encode_dna("ACNT")
    with pytest.raises(ConfigError, match="min_codons"):
        make_orf_dataset(1, min_codons=10, max_codons=5)
    with pytest.raises(ConfigError, match="length"):
        make_orf_dataset(1, length=(10, 5))
