"""Tokenizers: text -> list of string tokens.

Two levels, both deterministic and free of locale or global state:

``char_tokenize``
    one token per Unicode code point (``list(text)``); newlines are tokens too.
``word_tokenize``
    words, with a choice of what happens to punctuation marks.

A *word character* is what Python's ``re`` calls ``\\w`` on a ``str`` (Unicode letters, digits and
``_``); a *punctuation mark* is any other character that is not whitespace. With
``punctuation="tokens"`` each punctuation mark is its own one-character token, so ``"don't"`` becomes
``["don", "'", "t"]`` (the WNUT-17 convention) and ``"..."`` becomes three ``"."`` tokens.

>>> word_tokenize("Hello, World!")
['hello', ',', 'world', '!']
>>> word_tokenize("Hello, World!", punctuation="strip")
['hello', 'world']
>>> word_tokenize("Hello, World!", lowercase=False, punctuation="keep")
['Hello,', 'World!']
>>> char_tokenize("ab\\n")
['a', 'b', '\\n']
"""

from __future__ import annotations

import re

from ..core.errors import DTypeError, check_choice

__all__ = ["PUNCTUATION_MODES", "char_tokenize", "word_tokenize"]

#: The accepted values of ``word_tokenize(..., punctuation=...)``.
PUNCTUATION_MODES = ("tokens", "strip", "keep")

# A run of word characters, or one character that is neither a word character nor whitespace.
_WORD_OR_MARK = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")


def _check_text(text) -> str:
    if not isinstance(text, str):
        raise DTypeError(
            f"text: expected a str, got {type(text).__name__}; "
            "decode bytes first (e.g. seqmodels.data.read_text(path))"
        )
    return text


def char_tokenize(text: str) -> list[str]:
    """Split ``text`` into its characters (Unicode code points), keeping whitespace and newlines.

    >>> char_tokenize("hi!")
    ['h', 'i', '!']
    """
    return list(_check_text(text))


def word_tokenize(text: str, lowercase: bool = True, punctuation: str = "tokens") -> list[str]:
    """Split ``text`` into word tokens.

    Args:
        text: the string to split.
        lowercase: apply ``str.lower`` first.
        punctuation: ``"tokens"``: every punctuation mark is a separate one-character token;
            ``"strip"``: punctuation marks are dropped (exactly the ``"tokens"`` result without its
            punctuation tokens, so ``"don't"`` gives ``["don", "t"]``); ``"keep"``: split on
            whitespace only, punctuation stays attached to the words.

    Returns:
        The tokens, in order; never empty strings.

    >>> word_tokenize("It's 3.14 -- ok?")
    ['it', "'", 's', '3', '.', '14', '-', '-', 'ok', '?']
    """
    text = _check_text(text)
    check_choice("punctuation", punctuation, PUNCTUATION_MODES)
    if lowercase:
        text = text.lower()
    if punctuation == "keep":
        return text.split()
    if punctuation == "strip":
        return _WORD.findall(text)
    return _WORD_OR_MARK.findall(text)
