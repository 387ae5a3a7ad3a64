"""``trainsim sweep``: search parallelism plans for a model on a GPU count, best plans first."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from trainsim.studies._executors import EXECUTORS
from trainsim.studies._sweep import DEFAULT_VERIFY, sweep
from trainsim.studies._sweep_eval import OBJECTIVES
from trainsim.studies._sweep_space import SearchSpace, load_space
from trainsim.studies.cli._generate import model_from_args, workload_from_args
from trainsim.studies.cli._main import CLIError
from trainsim.studies.cli._predict import add_system_flags, compression_from_args

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``sweep`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "sweep",
        help="search parallelism plans (DP/TP/PP/VPP/CP/EP/ZeRO/micro-batch/recompute)",
        description="Simulate every plan of a search space that fits in memory and rank them. "
        "The plan flags (--tp, --pp...) describe the baseline plan for --baseline; "
        "--global-batch and --precision apply to every plan unless the space file sets them. "
        "Every plan runs one global batch: without one the sweep chooses it (about 4M tokens, "
        "a multiple of every plan's micro-batch x dp) and prints it. The progress bar shows "
        "on a terminal, never with --json.",
    )
    add_system_flags(parser)
    parser.add_argument("--space", metavar="FILE.yaml", help="search space (SearchSpace fields)")
    parser.add_argument(
        "--objective", choices=tuple(OBJECTIVES), default="step_time", help="rank plans by"
    )
    parser.add_argument("--tokens", type=float, help="training tokens (time_to_train objective)")
    parser.add_argument("--max-memory-gib", type=float, help="memory cap (default: the device's)")
    parser.add_argument("--max-step-time-s", type=float, help="constraint on step time")
    parser.add_argument("--min-mfu", type=float, help="constraint on MFU (0..1)")
    parser.add_argument("--baseline", action="store_true", help="report speedup over --tp/--pp..")
    parser.add_argument("--executor", choices=EXECUTORS, default="local", help="where plans run")
    parser.add_argument("--workers", type=int, help="worker processes / Ray CPUs (all cores)")
    parser.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join (ray only)")
    parser.add_argument("--out", metavar="FILE", help="append results here (.csv or .jsonl)")
    parser.add_argument("--top", type=int, default=10, help="plans listed (10)")
    parser.add_argument(
        "--verify",
        type=int,
        default=DEFAULT_VERIFY,
        metavar="K",
        help=f"re-simulate the K best plans with the event-driven engine ({DEFAULT_VERIFY})",
    )
    parser.add_argument("--pareto", metavar="OUT.png", help="save the time/memory Pareto plot")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)


def _space(args: argparse.Namespace) -> SearchSpace:
    space = load_space(args.space) if args.space else SearchSpace()
    given = space.model_fields_set
    updates: dict[str, Any] = {}
    if "global_batch_size" not in given and args.global_batch is not None:
        updates["global_batch_size"] = args.global_batch
    if "dtype" not in given:
        updates["dtype"] = args.precision
    if "clusters" not in given and args.cluster:
        updates["clusters"] = [args.cluster]
    return SearchSpace.model_validate({**space.model_dump(exclude_unset=True), **updates})


def _run(args: argparse.Namespace) -> int:
    if args.gpus is None:
        raise CLIError("trainsim sweep: --gpus is required")
    if args.network:
        raise CLIError("trainsim sweep: --network is not supported; use --cluster")
    model = model_from_args(args)
    baseline = None
    if args.baseline:
        _, baseline = workload_from_args(args)
    constraints = {
        "max_memory_gib": args.max_memory_gib,
        "max_step_time_s": args.max_step_time_s,
        "min_mfu": args.min_mfu,
    }
    if args.executor != "ray" and args.ray_address:
        raise CLIError("trainsim sweep: --ray-address needs --executor ray")
    show_progress = (
        (not args.json and sys.stderr.isatty()) if args.progress is None else args.progress
    )
    result = sweep(
        model,
        args.device,
        args.gpus,
        space=_space(args),
        objective=args.objective,
        constraints=constraints,
        baseline=baseline,
        cluster=args.cluster,
        tokens=args.tokens,
        cost_model=args.cost_model,
        compression=compression_from_args(args),
        executor=args.executor,
        workers=args.workers,
        address=args.ray_address,
        out=args.out,
        progress=show_progress,
        verify=args.verify,
    )
    if args.pareto:
        result.plot_pareto(args.pareto)
    if args.json:
        summary = result.summary()
        summary["out"] = args.out
        summary["pareto"] = args.pareto
        summary["top"] = result.best(args.top).to_dict(orient="records")
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(result.format(top=args.top))
    return 0
