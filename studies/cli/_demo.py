"""``trainsim demo``: the main job on a built-in default, for a first look."""

from __future__ import annotations

import argparse
from typing import Any

from trainsim.engine import (
    FailureSpec,
    InterruptionTable,
    VariabilitySpec,
    cluster_system,
    forecast,
    predict,
)
from trainsim.models import ParallelPlan, model_preset

__all__ = ["register"]

#: The built-in default: Llama 3 8B on 1,024 H100s (128 DGX nodes), TP 2, DP 512, 1T tokens.
DEMO_MODEL = "llama3-8b"
DEMO_GPUS = 1024
DEMO_TOKENS = 1e12


def register(sub: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="forecast a built-in preset (Llama 3 8B, 1T tokens on 1,024 H100) and print it",
    )
    parser.add_argument("--samples", type=int, default=2000, help="Monte Carlo samples")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    model = model_preset(DEMO_MODEL)
    plan = ParallelPlan.for_gpus(
        DEMO_GPUS,
        tp=2,
        global_batch_size=512,
        zero_stage=1,
        recompute="selective",
    )
    system = cluster_system("h100-sxm", DEMO_GPUS)
    print(
        f"trainsim demo: {DEMO_MODEL} on {system.name}, plan tp={plan.tp} dp={plan.dp}, "
        f"{plan.batch_size} sequences of {model.seq_len} tokens per step, "
        f"{DEMO_TOKENS:.0e} tokens"
    )
    step = predict(model, plan, system)
    print(step.format())
    # Variability as PRISM measured it; interruptions at Llama 3's rate (419 in 54 days on
    # 16,384 H100s) scaled to this job; 30 s checkpoints, 3 min restarts.
    result = forecast(
        model,
        system,
        plan=plan,
        tokens=DEMO_TOKENS,
        samples=args.samples,
        step_samples=200,
        seed=0,
        variability=VariabilitySpec.prism(),
        failures=FailureSpec(
            interruptions=InterruptionTable.llama3(), checkpoint_write_s=30.0, restart_s=180.0
        ),
        step=step,
    )
    print(result.format())
    return 0
