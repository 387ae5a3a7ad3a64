"""``trainsim forecast``: the time-to-train distribution of a model and plan on a cluster."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from trainsim.engine import (
    FailureSpec,
    ForecastConfigError,
    InterruptionTable,
    VariabilitySpec,
    forecast,
    load_variability,
)
from trainsim.studies.cli._args import named_or_file, non_negative_int, positive_int
from trainsim.studies.cli._generate import describe_run
from trainsim.studies.cli._predict import add_system_flags, system_and_workload

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``forecast`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "forecast",
        help="forecast the time-to-train distribution (variability, failures, checkpoints)",
        description="Forecast how long a training run takes, as a distribution: step-time "
        "variability (PRISM-style), failures, checkpoints and restarts.",
    )
    add_system_flags(parser)
    parser.add_argument(
        "--tokens",
        type=float,
        required=True,
        metavar="N",
        help="training tokens to forecast (required; Llama 3 trained on 15e12)",
    )
    parser.add_argument(
        "--samples", type=positive_int, default=10000, help="runs sampled (default 10000)"
    )
    parser.add_argument(
        "--step-samples", type=positive_int, default=1000, help="step samples (default 1000)"
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--variability",
        metavar="FILE|prism|none",
        default="none",
        type=lambda value: named_or_file(value, ("prism", "none"), "variability"),
        help="VariabilitySpec YAML/JSON, 'prism' for the built-in PRISM-like preset, or none",
    )
    rates = parser.add_mutually_exclusive_group()
    rates.add_argument("--mtbf-gpu-hours", type=float, metavar="H", help="per-GPU MTBF")
    rates.add_argument(
        "--interruptions",
        metavar="FILE|llama3",
        type=lambda value: named_or_file(value, ("llama3",), "interruption table"),
        help="interruption table YAML/JSON (interruptions, days, gpus) or 'llama3'",
    )
    parser.add_argument(
        "--checkpoint-interval",
        default="auto",
        metavar="auto|MIN",
        help="minutes of training between checkpoints (auto: Daly's optimum)",
    )
    parser.add_argument(
        "--checkpoint-write-s", type=float, default=60.0, help="seconds (default 60)"
    )
    parser.add_argument("--restart-s", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--plot", metavar="CDF.png", help="write the CDF plot (needs matplotlib)")
    parser.add_argument(
        "--histogram", metavar="HIST.png", help="write the histogram of sampled runs"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)


def _variability(value: str) -> VariabilitySpec:
    if value == "none":
        return VariabilitySpec()
    return load_variability(value)


def _interruptions(value: str) -> InterruptionTable:
    if value == "llama3":
        return InterruptionTable.llama3()
    source = Path(value)
    try:
        data = yaml.safe_load(source.read_text())
    except yaml.YAMLError as exc:
        raise ForecastConfigError(f"{source}: not valid YAML/JSON: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ForecastConfigError(f"{source}: expected interruptions, days and gpus")
    try:
        return InterruptionTable(**data)
    except ValueError as exc:
        raise ForecastConfigError(f"{source}: {str(exc).splitlines()[0]}") from None


def _failures(args: argparse.Namespace) -> FailureSpec:
    interval_s: float | None = None
    if args.checkpoint_interval != "auto":
        try:
            interval_s = float(args.checkpoint_interval) * 60.0
        except ValueError:
            raise ForecastConfigError(
                f"--checkpoint-interval {args.checkpoint_interval!r}: give 'auto' or minutes"
            ) from None
        if interval_s <= 0.0:
            raise ForecastConfigError("--checkpoint-interval must be > 0 minutes")
    if args.mtbf_gpu_hours is not None and args.mtbf_gpu_hours <= 0:
        raise ForecastConfigError(f"--mtbf-gpu-hours {args.mtbf_gpu_hours} must be > 0")
    if args.checkpoint_write_s < 0 or args.restart_s < 0:
        raise ForecastConfigError("--checkpoint-write-s and --restart-s must be >= 0")
    return FailureSpec(
        mtbf_gpu_hours=args.mtbf_gpu_hours,
        interruptions=_interruptions(args.interruptions) if args.interruptions else None,
        checkpoint_write_s=args.checkpoint_write_s,
        checkpoint_interval_s=interval_s,
        restart_s=args.restart_s,
    )


def _run(args: argparse.Namespace) -> int:
    if args.tokens <= 0:
        raise ForecastConfigError(f"--tokens {args.tokens} must be > 0")
    variability = _variability(args.variability)
    failures = _failures(args)
    model, plan, system = system_and_workload(args)
    result = forecast(
        model,
        system,
        plan=plan,
        tokens=args.tokens,
        samples=args.samples,
        step_samples=args.step_samples,
        seed=args.seed,
        variability=variability,
        failures=failures,
    )
    written = []
    if args.plot:
        result.plot_cdf(args.plot)
        written.append(f"CDF written to {args.plot}")
    if args.histogram:
        result.plot_histogram(args.histogram)
        written.append(f"histogram written to {args.histogram}")
    for line in written if not args.json else []:
        print(line, file=sys.stderr)
    if args.json:
        summary = result.summary()
        summary["model"] = model.name
        summary["plan"] = plan.model_dump()
        summary["system"] = system.name
        print(json.dumps(summary, indent=2, default=float))
    else:
        print("\n".join(describe_run(model, plan, chosen=args.global_batch is None)))
        print(result.format())
    return 0
