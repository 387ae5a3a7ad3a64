"""The ``>>>`` examples in the collectives docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

from trainsim import collectives

MODULES = sorted(
    m.name for m in pkgutil.iter_modules(collectives.__path__, "trainsim.collectives.")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), raise_on_error=False)
    assert result.failed == 0
