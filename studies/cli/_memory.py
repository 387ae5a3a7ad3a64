"""``trainsim memory``: the per-GPU memory breakdown of a model under a parallelism plan."""

from __future__ import annotations

import argparse
import json
from typing import Any

from trainsim import models
from trainsim.studies.cli._generate import add_workload_flags, workload_from_args

__all__ = ["register"]

_COLUMNS = (
    ("weights_gib", "weights"),
    ("gradients_gib", "grads"),
    ("optimizer_gib", "optim"),
    ("activations_gib", "activ"),
    ("buffers_gib", "buffers"),
    ("total_gib", "total"),
)


def register(sub: Any) -> None:
    """Add the ``memory`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "memory", help="per-GPU memory: weights, gradients, optimizer, activations, buffers"
    )
    add_workload_flags(parser)
    parser.add_argument(
        "--device", default="h100-sxm", help="device preset or YAML file to check against"
    )
    parser.add_argument("--all-stages", action="store_true", help="one row per pipeline stage")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 2 when the peak exceeds the device's usable memory",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    model, plan = workload_from_args(args)
    device = models.load_device(args.device)
    stages = models.memory_by_stage(model, plan)
    peak = max(stages, key=lambda m: m.total_bytes)
    fit = models.memory_fit(peak.total_bytes, device)
    if args.strict:
        models.check_memory(model, plan, device)
    if args.json:
        payload = {
            "model": model.name,
            "gpus": plan.num_gpus,
            "device": device.name,
            "capacity_gib": device.memory_gib,
            "usable_gib": fit.usable_gib,
            "headroom_gib": fit.headroom_gib,
            "verdict": fit.verdict,
            "fits": fit.fits,
            "peak_stage": peak.stage,
            "peak": {"params": peak.params, **peak.to_gib()},
            "stages": [{"stage": m.stage, "params": m.params, **m.to_gib()} for m in stages],
        }
        print(json.dumps(payload))
        return 0
    print(
        f"{model.name} on {plan.num_gpus} x {device.name}: tp {plan.tp}, pp {plan.pp}, "
        f"dp {plan.dp}, cp {plan.cp}, ep {plan.ep}, zero {plan.zero_stage}, "
        f"recompute {plan.recompute}, sp {'on' if plan.sequence_parallel else 'off'}"
    )
    header = "stage  " + "".join(f"{label:>9}" for _, label in _COLUMNS) + "   (GiB per GPU)"
    print(header)
    for m in stages if args.all_stages else [peak]:
        gib = m.to_gib()
        print(f"{m.stage:>5}  " + "".join(f"{gib[key]:>9.2f}" for key, _ in _COLUMNS))
    print(f"peak stage {peak.stage}: {fit.describe()}")
    return 0
