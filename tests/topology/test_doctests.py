"""The ``>>>`` examples in the topology docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

from trainsim import topology

MODULES = sorted(
    m.name for m in pkgutil.iter_modules(topology.__path__, "trainsim.topology.")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), raise_on_error=False)
    assert result.failed == 0
