"""Text handling: tokenizers, the :class:`Vocabulary` and batching of token ids.

>>> from seqmodels.text import Vocabulary, StreamBatcher
>>> v = Vocabulary.from_text("abcabcabc")
>>> batcher = StreamBatcher(v.encode("abcabcabc"), batch_size=2, seq_len=3)
>>> x, y = next(iter(batcher))
>>> x.shape, y.shape
((2, 3), (2, 3))
"""

from .batching import SequenceBatcher, StreamBatcher, bucket_by_length, pad_sequences
from .tokenize import PUNCTUATION_MODES, char_tokenize, word_tokenize
from .vocab import EOS, PAD, SPECIAL_TOKENS, UNK, Vocabulary

__all__ = [
    "char_tokenize", "word_tokenize", "PUNCTUATION_MODES",
    "Vocabulary", "SPECIAL_TOKENS", "PAD", "UNK", "EOS",
    "pad_sequences", "bucket_by_length", "StreamBatcher", "SequenceBatcher",
]
