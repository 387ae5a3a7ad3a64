"""``trainsim predict``: one training step of a model and plan on a cluster, generated in memory."""

from __future__ import annotations

import argparse
import json
from typing import Any

from trainsim import models
from trainsim.collectives import CompressionSpec
from trainsim.engine import CLUSTER_PRESETS, System, cluster_system, predict
from trainsim.studies.cli._generate import (
    add_workload_flags,
    bubble_warning,
    describe_run,
    workload_from_args,
)

__all__ = ["add_system_flags", "compression_from_args", "register", "system_and_workload"]


def add_system_flags(parser: argparse.ArgumentParser) -> None:
    """Add the model-override, device and cluster flags shared by predict-like commands."""
    add_workload_flags(parser)
    parser.add_argument(
        "--device",
        default="h100-sxm",
        help="device preset or device file, e.g. from measure-device (default h100-sxm)",
    )
    parser.add_argument(
        "--cluster", choices=sorted(CLUSTER_PRESETS), help="cluster preset (default: the device's)"
    )
    parser.add_argument("--network", metavar="FILE", help="ASTRA-sim network YAML instead")
    parser.add_argument(
        "--cost-model", choices=("analytical", "congestion", "nccl", "hybrid"), default="nccl"
    )
    parser.add_argument(
        "--compression",
        choices=("adacomp", "scalecom"),
        help="compress data-parallel gradient synchronization",
    )
    parser.add_argument(
        "--compression-ratio",
        type=float,
        help="compression ratio (default: 40 for AdaComp, 100 for ScaleCom)",
    )


def compression_from_args(args: argparse.Namespace) -> CompressionSpec | None:
    """The ``CompressionSpec`` the ``--compression`` flags ask for (None without them)."""
    if not args.compression:
        if args.compression_ratio is not None:
            raise ValueError("--compression-ratio needs --compression adacomp|scalecom")
        return None
    fields: dict[str, Any] = {"method": args.compression}
    if args.compression_ratio is not None:
        fields["ratio"] = args.compression_ratio
    return CompressionSpec(**fields)


def system_and_workload(
    args: argparse.Namespace,
) -> tuple[models.ModelSpec, models.ParallelPlan, System]:
    """Build the model (with overrides), the plan and the system the flags describe."""
    model, plan = workload_from_args(args)
    extra: dict[str, Any] = {"cost_model": args.cost_model}
    compression = compression_from_args(args)
    if compression is not None:
        extra["compression"] = compression
    if args.network:
        system = System.from_astra(args.network, device=args.device, **extra)
    else:
        system = cluster_system(args.device, plan.num_gpus, cluster=args.cluster, **extra)
    return model, plan, system


def register(sub: Any) -> None:
    """Add the ``predict`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "predict", help="predict one training step of a model and plan on a cluster"
    )
    add_system_flags(parser)
    parser.add_argument(
        "--granularity",
        choices=("layer", "op"),
        default=None,
        help="ET granularity (default: op with --tp-comm-overlap, else layer)",
    )
    parser.add_argument("--timeline", metavar="OUT.json", help="write a Chrome/Perfetto trace")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    model, plan, system = system_and_workload(args)
    result = predict(model, plan, system, granularity=args.granularity)
    if args.timeline:
        result.save_timeline(args.timeline)
    if args.json:
        summary = result.summary()
        summary["model"] = model.name
        summary["plan"] = plan.model_dump()
        summary["system"] = system.name
        print(json.dumps(summary, indent=2))
    else:
        print("\n".join(describe_run(model, plan, chosen=args.global_batch is None)))
        print(result.format())
        bubble_s = result.summary().get("bubble_s_mean", 0.0)
        warning = bubble_warning(result.step_time_s, bubble_s)
        if warning:
            print(warning)
    return 0
