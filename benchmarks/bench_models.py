"""Generate layer-granularity rank-class ETs: Llama 3 405B on 16,384 GPUs, and a plan sweep.

Case 1 is the issue's headline: Llama 3 405B, TP 8 x PP 16 x DP 128 with sequence
parallelism, 16 micro-batches of one sequence (global batch 2,048), first and last stage one
layer short as in Meta's training (126 layers = 7 + 14 x 8 + 7), distributed optimizer.
Case 2 sweeps 1,000 valid plans of Llama 3 70B on 1,024 GPUs (TP, PP, CP, VPP, micro-batch,
recompute, SP; global batch 256), generating every plan's rank-class ETs and its memory
breakdown. Aim: under 0.2 s per plan. Figures are medians of several runs.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time

from trainsim import models
from trainsim.models import ModelSpec, ParallelPlan

RUNS = 5
SWEEP_PLANS = 1000
SWEEP_RUNS = 3
AIM_S = 0.2


def headline_plan() -> ParallelPlan:
    """Llama 3 405B on 16,384 GPUs as in the issue."""
    return ParallelPlan(
        tp=8,
        pp=16,
        dp=128,
        micro_batch_size=1,
        global_batch_size=2048,
        sequence_parallel=True,
        first_stage_layers=7,
        last_stage_layers=7,
        zero_stage=1,
    )


def sweep_plans(model: ModelSpec, gpus: int, count: int) -> list[ParallelPlan]:
    """``count`` valid plans spread evenly over a deterministic grid of the plan's knobs."""
    grid = itertools.product(
        (1, 2, 4, 8),  # tp
        (1, 2, 4, 8, 16),  # pp
        (1, 2, 4),  # cp
        (1, 2),  # vpp
        (1, 2, 4),  # micro-batch
        ("none", "selective", "full"),
        (False, True),  # sequence parallel
        (0, 1, 3),  # zero stage
    )
    plans: list[ParallelPlan] = []
    for tp, pp, cp, vpp, mb, recompute, sp, zero in grid:
        if gpus % (tp * pp * cp) or (vpp > 1 and pp == 1) or (sp and tp == 1):
            continue
        try:
            plan = ParallelPlan.for_gpus(
                gpus,
                tp=tp,
                pp=pp,
                cp=cp,
                vpp=vpp,
                micro_batch_size=mb,
                global_batch_size=256,
                recompute=recompute,
                sequence_parallel=sp,
                zero_stage=zero,
            )
            models.check_plan(model, plan)
        except models.ModelsError:
            continue
        plans.append(plan)
    step = len(plans) / count
    return [plans[int(i * step)] for i in range(min(count, len(plans)))]


def _time(fn: object, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    """Run both cases and print medians against the aim."""
    model = models.model_preset("llama3-405b")
    plan = headline_plan()
    graphs = models.generate_rank_classes(model, plan)
    nodes = sum(len(g) for g in graphs.values())
    times = _time(lambda: models.generate_rank_classes(model, plan), RUNS)
    median = statistics.median(times)
    print(
        f"llama3-405b on {plan.num_gpus} GPUs (tp 8, pp 16, dp 128, 16 micro-batches): "
        f"{len(graphs)} rank classes, {nodes:,} nodes; median {median * 1e3:.1f} ms "
        f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}) over {RUNS} runs; "
        f"aim {AIM_S * 1e3:.0f} ms: {'met' if median < AIM_S else 'MISSED'}"
    )

    sweep_model = models.model_preset("llama3-70b")
    plans = sweep_plans(sweep_model, 1024, SWEEP_PLANS)

    def sweep() -> None:
        for p in plans:
            models.generate_rank_classes(sweep_model, p)
            models.memory_per_gpu(sweep_model, p)

    sweep_nodes = sum(
        len(g) for p in plans[::50] for g in models.generate_rank_classes(sweep_model, p).values()
    )
    totals = _time(sweep, SWEEP_RUNS)
    per_plan = statistics.median(totals) / len(plans)
    print(
        f"sweep of {len(plans)} llama3-70b plans on 1024 GPUs: median total "
        f"{statistics.median(totals):.1f} s over {SWEEP_RUNS} runs, {per_plan * 1e3:.1f} ms per "
        f"plan (about {sweep_nodes * 50 // len(plans):,} nodes per plan); aim "
        f"{AIM_S * 1e3:.0f} ms per plan: {'met' if per_plan < AIM_S else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
