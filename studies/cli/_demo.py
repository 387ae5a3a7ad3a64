"""``trainsim demo``: the main job on a built-in default, for a first look."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo", help="run the main pipeline on a built-in default and print the answer"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("trainsim demo: nothing to run yet")
    return 0
