"""``trainsim validate``: predict every published measurement and print the errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from trainsim.models import load_device
from trainsim.studies.validation import DATA_DIR_ENV, DEVICE_SETS, run_validation

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``validate`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "validate",
        help="predict every row of the published-measurements and llm-foundry tables",
    )
    parser.add_argument(
        "--data",
        default=None,
        help=f"published.csv path (default: ${DATA_DIR_ENV}/ground_truth/published.csv, else "
        "shared/data/ground_truth/published.csv in the current folder or one above it)",
    )
    parser.add_argument(
        "--cost-model", choices=("analytical", "congestion", "nccl", "hybrid"), default="nccl"
    )
    parser.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="FILE",
        help="device file replacing the preset of its name (e.g. from measure-device); repeatable",
    )
    parser.add_argument(
        "--device-set",
        choices=DEVICE_SETS,
        default="presets",
        help="devices to score: the presets (default) or the tables built from published "
        "measurements (models.measured_preset); --device files still replace their name",
    )
    parser.add_argument(
        "--foundry",
        default=None,
        metavar="FILE",
        help="llm-foundry MPT benchmark table (default: llm_foundry.csv beside the published "
        "table, scored when it is there)",
    )
    parser.add_argument(
        "--no-foundry", action="store_true", help="leave the llm-foundry source out"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    for path in args.device:
        if not Path(path).is_file():
            raise FileNotFoundError(f"--device {path}: no such file")
    devices = [load_device(Path(path)) for path in args.device]
    report = run_validation(
        args.data,
        cost_model=args.cost_model,
        devices=devices,
        progress=None if not args.json else False,
        foundry=args.foundry,
        include_foundry=not args.no_foundry,
        device_set=args.device_set,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format())
    return 0
