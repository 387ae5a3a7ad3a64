"""Argument types shared by the subcommands: counts that must be positive, names-or-files."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Sequence
from pathlib import Path

__all__ = ["did_you_mean", "named_or_file", "non_negative_int", "positive_int"]


def positive_int(text: str) -> int:
    """An integer >= 1 (a parallel size, a GPU count): ``--tp 0`` is refused while parsing."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (a seed, a count that may be zero)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def did_you_mean(value: str, names: Sequence[str]) -> str:
    """`` (did you mean 'prism'?)`` when ``value`` is close to one of ``names``, else ``""``."""
    close = difflib.get_close_matches(value, list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def named_or_file(value: str, names: Sequence[str], what: str) -> str:
    """``value`` when it is one of ``names`` or an existing file; otherwise say which it is not.

    A misspelt preset (``prsm``) otherwise reached the file reader and came back as
    ``No such file or directory``.
    """
    if value in names or Path(value).is_file():
        return value
    known = ", ".join(names)
    raise argparse.ArgumentTypeError(
        f"{what} {value!r} is neither a file nor one of {known}{did_you_mean(value, names)}"
    )
