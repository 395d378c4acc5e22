"""A generated DNA data set for per-base tagging: open reading frames (ORFs) planted in random sequence.

An ORF here is read in one of the three frames: a start codon ``ATG``, then codons that are not stop
codons, then a stop codon ``TAA``, ``TAG`` or ``TGA``; it spans at least ``min_codons`` codons (start
and stop included). The labelling rule, :func:`find_orfs`, scans each frame from the left: an ``ATG``
opens an ORF (if none is open), the next in-frame stop closes it; an ORF never closed, or shorter than
``min_codons``, does not count. Each base gets label 1 inside an ORF, 0 outside.

:func:`make_orf_dataset` plants ORFs of ``min_codons..max_codons`` codons in uniformly random bases and
then repairs the background (changing background bases, or re-drawing interior codons of a planted ORF)
until :func:`find_orfs` finds *exactly* the planted ORFs. The background keeps its short ORFs (decoys:
an ``ATG`` whose stop comes too soon), so a tagger has to track the frame and measure the length, not
just spot ``ATG``.

>>> ex = make_orf_dataset(1, length=200, seed=0)[0]
>>> len(ex.sequence) == ex.labels.size == 200, [ex.sequence[s:s + 3] for s, _ in ex.orfs][:1]
(True, ['ATG'])
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..core.errors import ConfigError, check_positive_int
from ..core.init import as_generator

__all__ = ["BASES", "STOP_CODONS", "DnaExample", "find_orfs", "orf_labels", "make_orf_dataset", "encode_dna"]

BASES = "ACGT"
START_CODON = "ATG"
STOP_CODONS = ("TAA", "TAG", "TGA")
SENSE_CODONS = tuple(a + b + c for a in BASES for b in BASES for c in BASES if a + b + c not in STOP_CODONS)


class DnaExample(NamedTuple):
    """One sequence: ``sequence`` (str of ACGT), per-base ``labels`` (int8 0/1), planted ``orfs``
    as ``(start, end)`` half-open base ranges (``sequence[start:start+3] == "ATG"``, ends with a stop)."""

    sequence: str
    labels: np.ndarray
    orfs: list


def find_orfs(sequence: str, min_codons: int = 1) -> list[tuple[int, int]]:
    """The ORFs of ``sequence`` by the rule above, as sorted ``(start, end)`` half-open ranges."""
    found = []
    for frame in range(3):
        start = None
        for i in range(frame, len(sequence) - 2, 3):
            codon = sequence[i:i + 3]
            if start is None and codon == START_CODON:
                start = i
            elif start is not None and codon in STOP_CODONS:
                if (i + 3 - start) // 3 >= min_codons:
                    found.append((start, i + 3))
                start = None
    return sorted(found)


def orf_labels(length: int, orfs) -> np.ndarray:
    """Per-base 0/1 labels (int8) marking the union of ``orfs``."""
    labels = np.zeros(length, np.int8)
    for s, e in orfs:
        labels[s:e] = 1
    return labels


def encode_dna(sequence: str) -> np.ndarray:
    """``"ACGT"`` -> ids 0..3 (int64); any other character raises :class:`ConfigError`."""
    table = np.full(256, -1, np.int64)
    for i, b in enumerate(BASES):
        table[ord(b)] = i
    raw = np.frombuffer(sequence.encode("ascii", "replace"), np.uint8)
    ids = table[raw]
    if (ids < 0).any():
        i = int(np.flatnonzero(ids < 0)[0])
        raise ConfigError(f"sequence: character {sequence[i]!r} at position {i} is not one of A, C, G, T")
    return ids


def _plant(L: int, num_orfs: int, min_codons: int, max_codons: int, gap: int, rng) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) ranges for up to ``num_orfs`` ORFs, at least ``gap`` bases apart."""
    spans = []
    for _ in range(num_orfs):
        for _try in range(20):
            n = int(rng.integers(min_codons, max_codons + 1)) * 3
            if n > L:
                break
            s = int(rng.integers(0, L - n + 1))
            if all(s + n + gap <= a or b + gap <= s for a, b in spans):
                spans.append((s, s + n))
                break
    return sorted(spans)


def _one(L, num_orfs, min_codons, max_codons, gap, rng, max_repairs=10_000) -> DnaExample:
    seq = list(rng.choice(list(BASES), size=L))
    planted = _plant(L, num_orfs, min_codons, max_codons, gap, rng)
    owner = np.full(L, -1)                                  # index of the planted ORF holding each base
    for j, (s, e) in enumerate(planted):
        codons = [START_CODON] + [SENSE_CODONS[i] for i in rng.integers(0, len(SENSE_CODONS), (e - s) // 3 - 2)]
        codons.append(STOP_CODONS[int(rng.integers(0, 3))])
        seq[s:e] = "".join(codons)
        owner[s:e] = j
    target = set(planted)
    # Repair until find_orfs sees exactly the planted ORFs. Only strays can be wrong: a planted ORF is
    # missed only when an earlier in-frame ATG swallows it, and that ORF is itself a stray.
    for _ in range(max_repairs):
        text = "".join(seq)
        stray = next((o for o in find_orfs(text, min_codons) if o not in target), None)
        if stray is None:
            return DnaExample(text, orf_labels(L, planted), planted)
        s = stray[0]
        background = [i for i in range(s, s + 3) if owner[i] < 0]
        if background:                                      # break the stray ATG in the background
            i = background[int(rng.integers(0, len(background)))]
            seq[i] = BASES[(BASES.index(seq[i]) + int(rng.integers(1, 4))) % 4]
            continue
        ps, pe = planted[owner[s]]                          # a stray ATG inside a planted ORF: redraw the
        for i in range(s, s + 3):                           # interior codon holding it (never start/stop)
            c = ps + (i - ps) // 3 * 3
            if ps < c < pe - 3:
                seq[c:c + 3] = SENSE_CODONS[int(rng.integers(0, len(SENSE_CODONS)))]
                break
    raise RuntimeError("could not repair the sequence")    # pragma: no cover


def make_orf_dataset(num: int, length=(120, 240), *, orfs_per_sequence=(1, 3), min_codons: int = 10,
                     max_codons: int = 30, gap: int = 3, seed=0) -> list[DnaExample]:
    """``num`` random DNA sequences with planted ORFs, labelled per base (deterministic given ``seed``).

    Args:
        length: bases per sequence, an int or an inclusive ``(low, high)`` range.
        orfs_per_sequence: planted ORFs per sequence, an int or an inclusive range (fewer when they
            do not fit).
        min_codons, max_codons: ORF size in codons, start and stop codons included. Shorter ORFs that
            occur by chance in the background are not labelled.
        gap: minimum number of bases between planted ORFs.
        seed: an int or ``np.random.Generator``.
    """
    num = check_positive_int("num", num)
    min_codons = check_positive_int("min_codons", min_codons)
    max_codons = check_positive_int("max_codons", max_codons)
    gap = check_positive_int("gap", gap, allow_zero=True)
    if min_codons < 2 or max_codons < min_codons:
        raise ConfigError(f"min_codons, max_codons: expected 2 <= min_codons <= max_codons, "
                          f"got {min_codons}, {max_codons}")
    lo, hi = _range("length", length)
    olo, ohi = _range("orfs_per_sequence", orfs_per_sequence, allow_zero=True)
    rng = as_generator(seed)
    out = []
    for _ in range(num):
        L = int(rng.integers(lo, hi + 1))
        k = int(rng.integers(olo, ohi + 1))
        out.append(_one(L, k, min_codons, max_codons, gap, rng))
    return out


def _range(name: str, value, allow_zero: bool = False) -> tuple[int, int]:
    lo, hi = (value, value) if isinstance(value, int) else tuple(value)
    lo = check_positive_int(f"{name}[0]", lo, allow_zero=allow_zero)
    hi = check_positive_int(f"{name}[1]", hi, allow_zero=allow_zero)
    if hi < lo:
        raise ConfigError(f"{name}: expected low <= high, got {value!r}")
    return lo, hi
