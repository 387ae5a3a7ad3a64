"""``trainsim whatif topology|compression``: vary one thing about the machine, report the change."""

from __future__ import annotations

import argparse
import json
from typing import Any

from trainsim import models
from trainsim.studies._whatif import (
    TOPOLOGY_KNOBS,
    WhatIfResult,
    compression_whatif,
    topology_whatif,
)
from trainsim.studies.cli._generate import workload_from_args
from trainsim.studies.cli._main import CLIError
from trainsim.studies.cli._predict import add_system_flags

__all__ = ["register"]


def _csv(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give a comma-separated list")
    return items


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers") from None


def register(sub: Any) -> None:
    """Add the ``whatif`` command and its ``topology`` and ``compression`` subcommands."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "whatif", help="vary the network or gradient compression for one plan"
    )
    nested = parser.add_subparsers(dest="whatif", metavar="WHAT")
    topo = nested.add_parser(
        "topology",
        help="vary one cluster figure (bandwidth, latency, GPUs per node) or the preset",
        description="Predict the plan once per value of one cluster figure; the first value "
        "is the baseline.",
    )
    add_system_flags(topo)
    topo.add_argument(
        "--vary",
        choices=[k.replace("_", "-") for k in TOPOLOGY_KNOBS],
        default="scale-out-bandwidth-gbps",
        help="what to vary",
    )
    topo.add_argument("--values", type=_csv, required=True, help="comma-separated values")
    topo.add_argument("--json", action="store_true", help="print one JSON object")
    topo.set_defaults(func=_run_topology)
    comp = nested.add_parser(
        "compression",
        help="compare gradient compression methods (and ratios) with none",
        description="Predict the plan without compression, then with each method and ratio.",
    )
    add_system_flags(comp)
    comp.add_argument(
        "--methods", type=_csv, default=["adacomp", "scalecom"], help="adacomp,scalecom"
    )
    comp.add_argument("--ratios", type=_floats, help="ratios to try (default: each method's)")
    comp.add_argument("--json", action="store_true", help="print one JSON object")
    comp.set_defaults(func=_run_compression)


def _model_and_plan(args: argparse.Namespace) -> tuple[models.ModelSpec, models.ParallelPlan]:
    if args.network:
        raise CLIError(f"trainsim whatif {args.whatif}: --network is not supported; use --cluster")
    if args.compression or args.compression_ratio is not None:
        raise CLIError("--compression: use 'trainsim whatif compression --methods ...'")
    return workload_from_args(args)


def _print(result: WhatIfResult, as_json: bool) -> int:
    print(json.dumps(result.summary(), indent=2) if as_json else result.format())
    return 0


def _run_topology(args: argparse.Namespace) -> int:
    model, plan = _model_and_plan(args)
    result = topology_whatif(
        model,
        plan,
        device=args.device,
        vary=args.vary.replace("-", "_"),
        values=args.values,
        cluster=args.cluster,
        cost_model=args.cost_model,
    )
    return _print(result, args.json)


def _run_compression(args: argparse.Namespace) -> int:
    model, plan = _model_and_plan(args)
    result = compression_whatif(
        model,
        plan,
        device=args.device,
        methods=args.methods,
        ratios=args.ratios,
        cluster=args.cluster,
        cost_model=args.cost_model,
    )
    return _print(result, args.json)
