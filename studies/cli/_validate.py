"""``trainsim validate``: predict every published measurement and print the errors."""

from __future__ import annotations

import argparse
import json
from typing import Any

from studies.validation import default_data_path, run_validation

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``validate`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "validate", help="predict every row of the published-measurements table"
    )
    parser.add_argument("--data", default=str(default_data_path()), help="published.csv path")
    parser.add_argument(
        "--cost-model", choices=("analytical", "congestion", "nccl", "hybrid"), default="nccl"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    report = run_validation(args.data, cost_model=args.cost_model)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format())
    return 0
