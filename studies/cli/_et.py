"""``trainsim et``: inspect, validate and convert Chakra ET files."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``et`` subcommand group."""
    parser: argparse.ArgumentParser = sub.add_parser("et", help="inspect and convert Chakra ET files")
    parser.add_subparsers(dest="et_command", metavar="ACTION")
