"""Readers for plain text, lines, CoNLL columns, TSV, piano-roll JSON and parallel sentence pairs.

All of them raise :class:`seqmodels.core.errors.DataError` naming the file and the line (or byte
offset) when a file cannot be read as expected.
"""

from .readers import (Sentence, read_conll, read_lines, read_parallel, read_piano_roll_json,
                      read_text, read_tsv)

__all__ = ["Sentence", "read_text", "read_lines", "read_conll", "read_tsv",
           "read_piano_roll_json", "read_parallel"]
