"""Forecast speed: 10,000 samples of time-to-train for Llama 3 405B on 16,384 H100s.

Plan: TP 8, PP 16 (7 layers on the first and last stage, 8 elsewhere), DP 128, sequence
parallel, distributed optimizer, 2,048 sequences of 8,192 tokens per step, 15.6T tokens.
Variability: the PRISM-like preset; failures: Llama 3's interruption rate with a stated
30 s checkpoint write and 3 min restart. Also PRISM-like GEMM variation on 65,536 GPUs.
Figures are medians of several runs: the deterministic step (``predict``) and the stochastic
part (step samples, run samples, failures) are timed separately.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TypeVar

from trainsim.engine import (
    Distribution,
    FailureSpec,
    InterruptionTable,
    StepResult,
    VariabilitySpec,
    cluster_system,
    forecast,
    plan_workload,
    predict,
    sample_steps,
)
from trainsim.models import ParallelPlan, model_preset

RUNS = 3
T = TypeVar("T")


def plan_405b(dp: int = 128) -> ParallelPlan:
    """Llama 3 405B's pre-training layout with ``dp`` data-parallel replicas."""
    return ParallelPlan(
        tp=8,
        pp=16,
        dp=dp,
        micro_batch_size=1,
        global_batch_size=16 * dp,
        sequence_parallel=True,
        first_stage_layers=7,
        last_stage_layers=7,
        zero_stage=1,
    )


def _median(fn: Callable[[], T]) -> tuple[float, T]:
    times = []
    result = fn()
    for _ in range(RUNS):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    """Print wall times (medians) and the forecast's figures."""
    model = model_preset("llama3-405b")
    plan = plan_405b()
    system = cluster_system("h100-sxm", plan.num_gpus)
    failures = FailureSpec(
        interruptions=InterruptionTable.llama3(), checkpoint_write_s=30.0, restart_s=180.0
    )
    variability = VariabilitySpec.prism()

    predict_s, step = _median(lambda: predict(model, plan, system))
    stochastic_s, result = _median(
        lambda: forecast(
            model,
            system,
            plan=plan,
            tokens=15.6e12,
            samples=10_000,
            seed=0,
            variability=variability,
            failures=failures,
            step=step,
        )
    )
    print(
        f"405B on 16,384 GPUs, 10,000 samples: predict {predict_s:5.2f} s + forecast "
        f"{stochastic_s:5.2f} s = {predict_s + stochastic_s:5.2f} s (median of {RUNS})"
    )
    print(result.format())

    # PRISM-like GEMM variation at 64K GPUs: how much the step varies and who carries it.
    plan64 = plan_405b(dp=512)
    system64 = cluster_system("h100-sxm", plan64.num_gpus)
    step64: StepResult = predict(model, plan64, system64)
    gemm_only = VariabilitySpec(kernels={"gemm": Distribution(kind="lognormal", cv=0.035)})
    workload64 = plan_workload(model, plan64)
    wall64, samples64 = _median(
        lambda: sample_steps(workload64, system64, gemm_only, samples=1000, seed=0, step=step64)
    )
    slowdown = samples64.mean_s / samples64.deterministic_step_time_s - 1
    top = ", ".join(
        f"{r['class']} {float(r['share']):.0%}" for r in samples64.variability_by_class()[:4]
    )
    print(
        f"65,536 GPUs, GEMM cv 3.5%: 1,000 step samples in {wall64:.2f} s; step "
        f"{samples64.deterministic_step_time_s:.3f} s -> mean {samples64.mean_s:.3f} s "
        f"(+{slowdown:.1%}), CV {samples64.cv:.3%}; variability carried by {top}"
    )


if __name__ == "__main__":
    main()
