"""Benchmark: a parallelism sweep of Llama 3 405B on 16,384 H100, next to Calculon.

The space crosses TP x PP x CP x micro-batch x ZeRO x recompute x sequence parallelism at a
16M-token global batch (2,048 sequences of 8,192, as Meta trained it); plans over the 80 GB
of an H100 are pruned by the memory model before simulating, the rest are simulated one step
each (generate the rank-class ETs, run the event-driven engine). Calculon (Isaev et al.,
SC'23) reports about 2.3 ms per configuration for its closed-form model; trainsim simulates
every micro-batch and collective of the step, so the comparison is of cost, not of method.

Reported: the sweep's wall time and plans/s once on all cores (local executor), the median
over plans of one plan's simulation time (a serial sample, three repeats each), and the
median pruning cost per plan. ``python -m benchmarks sweep``.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from trainsim.models import model_preset
from trainsim.studies import sweep
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
SPACE: dict[str, Any] = {
    "tp": [1, 2, 4, 8],
    "pp": [1, 2, 4, 8, 16, 32],
    "cp": [1, 2, 4, 8],
    "micro_batch_size": [1, 2],
    "zero_stage": [0, 1, 2, 3],
    "recompute": ["none", "selective", "full"],
    "sequence_parallel": [True, False],
    "global_batch_size": 2048,
}
_MODEL = "llama3-405b"
_DEVICE = "h100-sxm"
_GPUS = 16384
_CALCULON_MS_PER_CONFIG = 2.3
_SAMPLE_PLANS = 15
_REPEATS = 3


def _per_plan_medians() -> tuple[float, float, int, int]:
    """Median ms to simulate one plan (serial sample) and to prune one; candidates; fitting."""
    model = model_preset(_MODEL)
    plans, _ = enumerate_plans(model, _GPUS, space_from_mapping(SPACE))
    prune_ms = []
    fitting = []
    for plan, _cluster in plans:
        start = time.perf_counter()
        need = memory_gib(model, plan)
        prune_ms.append((time.perf_counter() - start) * 1e3)
        if need <= 80.0:
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
    print(f"  median per plan, serial: simulate {plan_ms:.0f} ms, memory prune {prune_ms:.2f} ms")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "results.jsonl"
        result = sweep(_MODEL, _DEVICE, _GPUS, space=SPACE, executor="local", out=out)
    summary = result.summary()
    evaluated = summary["plans_evaluated"]
    per_s = evaluated / result.wall_s
    cores = os.cpu_count() or 1
    print(
        f"  sweep on {cores} cores (local executor): {evaluated} plans simulated, "
        f"{summary['plans_pruned']} pruned, {summary['plans_failed']} failed in "
        f"{result.wall_s:.1f} s: {per_s:.2f} plans/s, {1e3 / per_s:.0f} ms per plan "
        f"(Calculon: ~{_CALCULON_MS_PER_CONFIG} ms per configuration, closed form)"
    )
    best = result.best_record
    if best is not None:
        print(f"  best: {result.format(top=3).splitlines()[2].strip()}")
    print(f"  aim: under 60 s for >= 1000 plans: {'met' if result.wall_s < 60 else 'not met'}")


if __name__ == "__main__":
    main()
