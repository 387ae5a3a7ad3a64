"""Benchmark: a parallelism sweep of Llama 3 405B on 16,384 H100, next to Calculon.

The sweep's default space (TP, PP with uneven and interleaved layouts, VPP, CP, micro-batch,
ZeRO 0-2, recomputation, TP-communication overlap) at a 16M-token global batch (2,048
sequences of 8,192, as Meta trained it); plans over the H100's usable memory are pruned by
the memory model, the rest are timed by the fast tier (``engine.fast_step``) and the best
``DEFAULT_VERIFY`` re-simulated by the event-driven engine. Calculon's
``llm-optimal-execution`` evaluated 410 configurations per second on this 2-core machine.

Reported: the sweep's wall time and plans/s on all cores (local executor) without and with
the engine's verification, the median over plans of one plan's evaluation time (a serial
sample, three repeats each), and the median pruning cost per plan.
``python -m benchmarks sweep``.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from trainsim.models import ModelSpec, load_device, model_preset
from trainsim.studies import sweep
from trainsim.studies._sweep import DEFAULT_VERIFY
from trainsim.studies._sweep_eval import (
    PlanTask,
    SweepContext,
    evaluate_plan,
    memory_gib,
    system_for,
)
from trainsim.studies._sweep_space import enumerate_plans, space_from_mapping

__all__ = ["SPACE", "main"]

#: The benchmark's search space (SearchSpace fields).
SPACE: dict[str, Any] = {"global_batch_size": 2048}
_MODEL = "llama3-405b"
_DEVICE = "h100-sxm"
_GPUS = 16384
_CALCULON_PLANS_PER_S = 410.0
_SAMPLE_PLANS = 15
_REPEATS = 3


def _model() -> ModelSpec:
    """Llama 3 405B at Meta's training sequence length."""
    return model_preset(_MODEL).model_copy(update={"seq_len": 8192})


def _per_plan_medians() -> tuple[float, float, int, int]:
    """Median ms to simulate one plan (serial sample) and to prune one; candidates; fitting."""
    model = _model()
    plans, _ = enumerate_plans(model, _GPUS, space_from_mapping(SPACE))
    # The sweep's own limit: the device's usable memory, not its nominal HBM.
    capacity_gib = load_device(_DEVICE).usable_memory_gib
    prune_ms = []
    fitting = []
    for plan, _cluster in plans:
        start = time.perf_counter()
        need = memory_gib(model, plan)
        prune_ms.append((time.perf_counter() - start) * 1e3)
        if need <= capacity_gib:
            fitting.append(plan)
    context = SweepContext(model=model, device=_DEVICE, gpus=_GPUS)
    print(f"  cost model: {system_for(context, None).cost_model} (engine.cluster_system default)")
    sample = random.Random(0).sample(fitting, min(_SAMPLE_PLANS, len(fitting)))
    plan_ms = []
    for plan in sample:
        runs = []
        for _ in range(_REPEATS):
            start = time.perf_counter()
            evaluate_plan(context, PlanTask(plan))
            runs.append((time.perf_counter() - start) * 1e3)
        plan_ms.append(statistics.median(runs))
    return statistics.median(plan_ms), statistics.median(prune_ms), len(plans), len(fitting)


def main() -> None:
    """Run the sweep benchmark and print its figures."""
    plan_ms, prune_ms, candidates, fitting = _per_plan_medians()
    print(f"{_MODEL} on {_GPUS} {_DEVICE}: {candidates} valid plans, {fitting} fit in memory")
    print(f"  median per plan, serial: evaluate {plan_ms:.1f} ms, memory prune {prune_ms:.2f} ms")
    for verify in (0, DEFAULT_VERIFY):
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "results.jsonl"
            result = sweep(
                _model(), _DEVICE, _GPUS, space=SPACE, executor="local", out=out, verify=verify
            )
        summary = result.summary()
        evaluated = summary["plans_evaluated"]
        per_s = evaluated / result.wall_s
        cores = os.cpu_count() or 1
        print(
            f"  sweep on {cores} cores, verify={verify}: {evaluated} plans evaluated "
            f"({summary['plans_fast_tier']} fast tier, {summary['plans_verified']} verified by "
            f"the engine), {summary['plans_pruned']} pruned, {summary['plans_failed']} failed "
            f"in {result.wall_s:.1f} s: {per_s:.0f} plans/s, "
            f"{per_s / _CALCULON_PLANS_PER_S:.2f}x Calculon's {_CALCULON_PLANS_PER_S:.0f}/s"
        )
        print(f"    best: {result.format(top=3).splitlines()[7].strip()}")
    print(f"  aim: >= 400 plans/s: {'met' if per_s >= 400 else 'not met'}")


if __name__ == "__main__":
    main()
