"""``trainsim demo``: the main job on a built-in default, for a first look."""

from __future__ import annotations

import argparse
from typing import Any

from engine import cluster_system, predict
from models import ParallelPlan, model_preset

__all__ = ["register"]

#: The built-in default: Llama 3 8B on 64 H100s (8 DGX nodes), TP 2, DP 32, 1M-token batches.
DEMO_MODEL = "llama3-8b"
DEMO_GPUS = 64


def register(sub: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo", help="predict a built-in preset (Llama 3 8B on 64 H100) and print the answer"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    model = model_preset(DEMO_MODEL)
    plan = ParallelPlan.for_gpus(
        DEMO_GPUS,
        tp=2,
        global_batch_size=256,
        distributed_optimizer=True,
        recompute="selective",
    )
    system = cluster_system("h100-sxm", DEMO_GPUS)
    print(
        f"trainsim demo: {DEMO_MODEL} on {system.name}, plan tp={plan.tp} dp={plan.dp}, "
        f"{plan.batch_size} sequences of {model.seq_len} tokens per step"
    )
    result = predict(model, plan, system)
    print(result.format())
    return 0
