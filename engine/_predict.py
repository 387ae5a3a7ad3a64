"""``predict``: generate a model's rank-class ETs for a plan and simulate one step."""

from __future__ import annotations

from trainsim.engine._errors import SystemConfigError
from trainsim.engine._result import StepMetrics, StepResult
from trainsim.engine._simulate import simulate
from trainsim.engine._system import System
from trainsim.engine._workload import Workload
from trainsim.models import (
    Granularity,
    ModelSpec,
    ParallelPlan,
    RankLayout,
    check_plan,
    generate_rank_classes,
    memory_fit,
    memory_per_gpu,
    step_flops,
)

__all__ = ["default_granularity", "plan_metrics", "plan_workload", "predict"]


def default_granularity(plan: ParallelPlan) -> Granularity:
    """The ET granularity ``predict`` uses when none is given.

    Layer nodes, the fastest, unless the plan overlaps TP communication: only op nodes place
    each exchange beside the GEMM Transformer Engine overlaps it with (a layer node hides the
    chunks' pipeline fill and drain, which on a TP8 GPT-177B step is about 3% of the step).
    """
    return "op" if plan.overlap_tp_comm and plan.tp > 1 else "layer"


def plan_workload(
    model: ModelSpec, plan: ParallelPlan, *, granularity: Granularity | None = None
) -> Workload:
    """The rank-class workload of a plan: one representative rank per pipeline stage."""
    layout = RankLayout(plan)
    granularity = granularity or default_granularity(plan)
    graphs = generate_rank_classes(model, plan, granularity=granularity)
    per_class = plan.num_gpus // plan.pp
    reps = {layout.rank_of(pp=stage): graph for stage, graph in graphs.items()}
    return Workload.from_graphs(
        reps,
        world_size=plan.num_gpus,
        multiplicity={rank: per_class for rank in reps},
        name=f"{model.name} tp{plan.tp} pp{plan.pp} dp{plan.dp} cp{plan.cp} ep{plan.ep}",
    )


def plan_metrics(model: ModelSpec, plan: ParallelPlan, system: System) -> StepMetrics:
    """The throughput figures of ``plan``'s step on ``system``, after checking that the
    system's device runs the plan's precision (``SystemConfigError`` otherwise)."""
    check_plan(model, plan)
    device = system.device_spec
    if plan.dtype == "fp8" and not device.fp8_recipes:
        rates = ", ".join(sorted(device.peak_tflops))
        raise SystemConfigError(
            f"dtype='fp8' needs FP8 tensor cores; {device.name} has none (its rates: {rates})"
        )
    if plan.dtype == "fp8" and plan.fp8_recipe not in device.fp8_recipes:
        runs = ", ".join(device.fp8_recipes)
        raise SystemConfigError(
            f"fp8_recipe={plan.fp8_recipe!r} does not run on {device.name} (its FP8 recipes: "
            f"{runs})"
        )
    flops = step_flops(model, plan)
    memory = memory_per_gpu(model, plan)
    return StepMetrics(
        tokens_per_step=float(flops.tokens),
        model_flops_per_step=float(flops.model_flops),
        hardware_flops_per_step=float(flops.hardware_flops),
        gpus=plan.num_gpus,
        peak_flops_per_gpu=device.peak_flops(plan.dtype),
        memory_gib_per_gpu=memory.total_bytes / 2**30,
        precision=plan.dtype,
    )


def predict(
    model: ModelSpec,
    plan: ParallelPlan,
    system: System,
    *,
    granularity: Granularity | None = None,
) -> StepResult:
    """Predict one training step of ``model`` under ``plan`` on ``system`` (at
    ``default_granularity(plan)`` unless ``granularity`` is given)."""
    metrics = plan_metrics(model, plan, system)
    workload = plan_workload(model, plan, granularity=granularity)
    result = simulate(workload, system, metrics=metrics, label=workload.name)
    need_gib = metrics.memory_gib_per_gpu or 0.0  # plan_metrics always states it
    fit = memory_fit(int(need_gib * 2**30), system.device_spec)
    if fit.verdict == "does not fit":
        result.notes.append(
            f"memory {fit.need_gib:.1f} GiB per GPU exceeds the {fit.usable_gib:.1f} GiB usable "
            f"of {system.device_spec.name}: this plan would not fit"
        )
    elif fit.verdict == "tight":
        result.notes.append(f"memory is tight: {fit.describe()}")
    return result
