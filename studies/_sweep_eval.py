"""What one plan of a sweep costs: the record a worker returns, and the objective it is ranked by.

``evaluate_plan`` runs in executor workers (processes, Ray actors), so it takes plain picklable
data (a ``SweepContext`` and a ``PlanTask``) and returns a flat ``dict`` record that the results
file stores one per line. The ``System`` of each cluster is built once per process: a
16,384-GPU topology takes half a second to build, longer than many plans take to simulate.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from trainsim.collectives import CompressionSpec
from trainsim.engine import (
    EngineError,
    FailureSpec,
    FastTierError,
    System,
    cluster_device,
    cluster_system,
    fast_step,
    forecast,
    predict,
)
from trainsim.models import ModelsError, ModelSpec, ParallelPlan, memory_per_gpu
from trainsim.studies._sweep_space import Constraints, SweepConfigError

__all__ = [
    "OBJECTIVES",
    "Objective",
    "PlanTask",
    "SweepContext",
    "evaluate_plan",
    "memory_gib",
    "plan_key",
    "rank_record",
    "system_for",
    "verify_plan",
]

Objective = Literal["step_time", "time_to_train", "tokens_per_s"]
#: Objective -> (record column it ranks by, True when larger is better).
OBJECTIVES: dict[str, tuple[str, bool]] = {
    "step_time": ("step_time_s", False),
    "time_to_train": ("time_to_train_days", False),
    "tokens_per_s": ("tokens_per_s", True),
}
_GIB = 2**30


@dataclass(frozen=True)
class SweepContext:
    """Everything shared by the plans of one sweep: model, device, GPU count, costing."""

    model: ModelSpec
    device: str
    gpus: int
    objective: Objective = "step_time"
    cost_model: str | None = None
    compression: CompressionSpec | None = None
    tokens: float | None = None
    failures: FailureSpec | None = None
    constraints: Constraints = field(default_factory=Constraints)
    #: rank with the fast tier (``engine.fast_step``) where it applies; False: the engine
    fast: bool = True

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            allowed = ", ".join(OBJECTIVES)
            raise SweepConfigError(f"objective={self.objective!r} is not one of: {allowed}")
        if self.objective == "time_to_train" and (self.tokens is None or self.tokens <= 0):
            raise SweepConfigError("objective='time_to_train' needs tokens > 0 (e.g. 15e12)")

    @property
    def sweep_id(self) -> str:
        """A short fingerprint of what makes two sweeps' results comparable (for resuming)."""
        data = {
            "model": self.model.model_dump(mode="json"),
            "device": self.device,
            "gpus": self.gpus,
            "cost_model": self.cost_model,
            "compression": None
            if self.compression is None
            else self.compression.model_dump(mode="json"),
            "tokens": self.tokens,
            "failures": None if self.failures is None else self.failures.model_dump(mode="json"),
        }
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        return digest[:16]


@dataclass(frozen=True)
class PlanTask:
    """One plan to evaluate, on one cluster preset (None: the device's own)."""

    plan: ParallelPlan
    cluster: str | None = None
    #: its per-GPU memory (``memory_gib``) when the sweep already computed it to prune
    memory_gib: float | None = None

    @property
    def key(self) -> str:
        """The identity of this plan in a results file."""
        return plan_key(self.plan, self.cluster)


def plan_key(plan: ParallelPlan, cluster: str | None) -> str:
    """Canonical text of a plan and its cluster: equal plans, equal keys."""
    return json.dumps({"cluster": cluster, **plan.model_dump(mode="json")}, sort_keys=True)


_SYSTEMS: dict[tuple[str, int, str | None, str, str], System] = {}


def system_for(context: SweepContext, cluster: str | None) -> System:
    """The ``System`` of a cluster, built once per process and reused by every plan."""
    compression = "" if context.compression is None else context.compression.model_dump_json()
    key = (context.device, context.gpus, cluster, context.cost_model or "", compression)
    system = _SYSTEMS.get(key)
    if system is None:
        extra: dict[str, Any] = {}
        if context.cost_model is not None:
            extra["cost_model"] = context.cost_model
        if context.compression is not None:
            extra["compression"] = context.compression
        # A cluster preset runs its own GPU (hgx-h200 has H200s), as in topology_whatif.
        device = context.device if cluster is None else cluster_device(cluster, context.device)
        system = cluster_system(device, context.gpus, cluster=cluster, **extra)
        _SYSTEMS[key] = system
    return system


def memory_gib(model: ModelSpec, plan: ParallelPlan) -> float:
    """Per-GPU memory of the plan's fullest pipeline stage, GiB."""
    return memory_per_gpu(model, plan).total_bytes / _GIB


def base_record(context: SweepContext, task: PlanTask) -> dict[str, Any]:
    """The plan's identity columns, before any result."""
    return {
        "sweep_id": context.sweep_id,
        "key": task.key,
        "cluster": task.cluster,
        **task.plan.model_dump(mode="json"),
    }


def _violations(context: SweepContext, record: dict[str, Any]) -> list[str]:
    limits = context.constraints
    out = []
    if limits.max_step_time_s is not None and record["step_time_s"] > limits.max_step_time_s:
        out.append(f"step_time_s > {limits.max_step_time_s}")
    if limits.min_tokens_per_s is not None and record["tokens_per_s"] < limits.min_tokens_per_s:
        out.append(f"tokens_per_s < {limits.min_tokens_per_s}")
    if limits.min_mfu is not None and (record["mfu"] or 0.0) < limits.min_mfu:
        out.append(f"mfu < {limits.min_mfu}")
    return out


def evaluate_plan(context: SweepContext, task: PlanTask) -> dict[str, Any]:
    """Time one step of a plan and return its record (status ``ok``, ``infeasible``, ``error``).

    The fast tier times it where it applies (``tier`` ``fast``); the event-driven engine
    otherwise, for the ``time_to_train`` objective (whose forecast samples the simulated
    step) and when ``context.fast`` is off (``tier`` ``engine``). A plan either rejects is
    recorded with the reason rather than raised, so one bad corner of the space neither stops
    the sweep nor is retried on resume.
    """
    record = base_record(context, task)
    record.update(
        status="ok",
        tier="engine",
        step_time_s=None,
        tokens_per_s=None,
        mfu=None,
        memory_gib=task.memory_gib
        if task.memory_gib is not None
        else memory_gib(context.model, task.plan),
        time_to_train_days=None,
        objective=None,
        fast_step_time_s=None,
        error=None,
    )
    try:
        system = system_for(context, task.cluster)
        if context.fast and context.tokens is None:
            try:
                fast = fast_step(context.model, task.plan, system)
            except FastTierError:
                pass
            else:
                record.update(
                    tier="fast",
                    step_time_s=fast.step_time_s,
                    tokens_per_s=fast.tokens_per_s,
                    mfu=fast.mfu,
                    fast_step_time_s=fast.step_time_s,
                )
                return rank_record(context, record)
        result = predict(context.model, task.plan, system)
        record.update(
            step_time_s=result.step_time_s, tokens_per_s=result.tokens_per_s, mfu=result.mfu
        )
        if context.tokens is not None:
            run = forecast(
                context.model,
                system,
                plan=task.plan,
                tokens=context.tokens,
                step=result,
                failures=context.failures,
                samples=1000,
                step_samples=2,
                seed=0,
            )
            record["time_to_train_days"] = run.mean_days
    except (EngineError, ModelsError) as exc:
        record.update(status="error", error=str(exc).splitlines()[0])
        return record
    return rank_record(context, record)


def verify_plan(context: SweepContext, record: dict[str, Any]) -> dict[str, Any]:
    """Re-simulate a fast-tier record with the event-driven engine: the engine's figures,
    with the fast tier's step time kept beside them (``fast_step_time_s``)."""
    plan = ParallelPlan.model_validate({k: record[k] for k in ParallelPlan.model_fields})
    task = PlanTask(plan, record.get("cluster"), record.get("memory_gib"))
    verified = evaluate_plan(replace(context, fast=False), task)
    verified["fast_step_time_s"] = record.get("step_time_s")
    return verified


def rank_record(context: SweepContext, record: dict[str, Any]) -> dict[str, Any]:
    """Set a simulated record's objective and feasibility under this sweep's settings.

    Applied again to records read back from a results file, so a resumed sweep may change
    its objective or constraints without simulating anything twice.
    """
    if record["status"] not in ("ok", "infeasible"):
        return record
    column, _ = OBJECTIVES[context.objective]
    value = record[column]
    record["objective"] = value if value is not None and math.isfinite(value) else None
    violations = _violations(context, record)
    record.update(
        status="infeasible" if violations else "ok",
        error="; ".join(violations) if violations else None,
    )
    return record
