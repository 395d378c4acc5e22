"""The runnable examples in the docstrings are tests too."""

import doctest
import importlib
import pkgutil

import pytest

import seqmodels

SKIP = {"seqmodels.__main__"}
MODULES = sorted(m.name for m in pkgutil.walk_packages(seqmodels.__path__, "seqmodels.") if m.name not in SKIP)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
