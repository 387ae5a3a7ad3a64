"""``trainsim simulate``: run per-rank (or rank-class) ET files on a system."""

from __future__ import annotations

import argparse
import json
from typing import Any

from trainsim.engine import System, load_system, load_workload, simulate

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``simulate`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="simulate ET files (NAME.R.et) on a system",
        description="Simulate one step of per-rank Chakra ETs. The system is either trainsim's "
        "own YAML (--system) or ASTRA-sim's network YAML plus system JSON (--network [--system]).",
    )
    parser.add_argument(
        "--workload", required=True, metavar="DIR_OR_PREFIX", help="folder or DIR/NAME prefix"
    )
    parser.add_argument("--system", metavar="SYS", help="trainsim System YAML, or ASTRA-sim JSON")
    parser.add_argument("--network", metavar="NET.yml", help="ASTRA-sim network YAML")
    parser.add_argument("--comm-groups", metavar="GROUPS.json", help="ASTRA-sim comm-group file")
    parser.add_argument("--timeline", metavar="OUT.json", help="write a Chrome/Perfetto trace")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)


def _system(args: argparse.Namespace) -> System:
    if args.network:
        return System.from_astra(args.network, args.system)
    if args.system:
        return load_system(args.system)
    raise ValueError("give --system SYS.yaml, or --network NET.yml [--system SYS.json]")


def _run(args: argparse.Namespace) -> int:
    system = _system(args)
    workload = load_workload(args.workload, comm_groups=args.comm_groups)
    result = simulate(workload, system)
    if args.timeline:
        result.save_timeline(args.timeline)
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        print(result.format())
    return 0
