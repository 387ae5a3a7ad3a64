"""``sweep``: search parallelism plans for the best one, MAD-Max style, and the result it returns.

The sweep enumerates the plans of a ``SearchSpace`` valid for the model and GPU count (counting
the others by the check they failed), all at one global batch so that they do the same work
per step; it prunes those whose memory per GPU exceeds the device (or
``Constraints.max_memory_gib``) without simulating them, and simulates the rest on an executor
(local processes by default). Each result is appended to the ``out`` file as it arrives; a
sweep restarted on the same file simulates only the plans it does not hold. ``SweepResult``
ranks the plans by the objective, gives the speedup of the best over a stated baseline plan,
says which global batch the plans ran and why the invalid ones were, and plots time against
memory.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainsim.collectives import CompressionSpec
from trainsim.engine import FailureSpec
from trainsim.models import (
    ModelSpec,
    ParallelPlan,
    check_plan,
    load_device,
    load_model,
    plan_from_mapping,
)
from trainsim.studies._executors import Executor, make_executor
from trainsim.studies._sweep_eval import (
    OBJECTIVES,
    Objective,
    PlanTask,
    SweepContext,
    base_record,
    evaluate_plan,
    memory_gib,
    rank_record,
    system_for,
    verify_plan,
)
from trainsim.studies._sweep_progress import SweepProgress, describe_plan
from trainsim.studies._sweep_space import (
    Constraints,
    SearchSpace,
    SweepConfigError,
    constraints_from_mapping,
    enumerate_plans,
    resolve_global_batch,
    space_from_mapping,
)
from trainsim.studies._sweep_store import RECORD_COLUMNS, ResultStore

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_VERIFY", "SweepResult", "sweep"]

#: Plans the engine re-simulates after the fast tier ranked them (``sweep(verify=...)``).
DEFAULT_VERIFY = 24

#: What pruning compares with the memory limit (``memory_gib`` of a record).
_MEMORY_COMPARED = "per-GPU memory of the fullest pipeline stage (models.memory_per_gpu)"

#: Columns of the result table (the file's identity columns are left out).
_TABLE_COLUMNS = tuple(c for c in RECORD_COLUMNS if c not in ("sweep_id", "key"))


def _better(objective: str) -> Callable[[float, float], bool]:
    _, larger = OBJECTIVES[objective]
    return (lambda a, b: a > b) if larger else (lambda a, b: a < b)


@dataclass
class SweepResult:
    """Every plan tried, ranked by the objective, with the best plan and its speedup.

    Every plan ran ``global_batch_size`` sequences per step (``global_batch_reason`` says
    whether it was given or how it was chosen); ``invalid_reasons`` counts the plans of the
    space that failed a check, by the check; ``pruned`` holds the plans whose per-GPU memory
    exceeded ``capacity_gib`` (``capacity_source`` says where that limit came from).
    """

    model: str
    device: str
    gpus: int
    objective: str
    records: list[dict[str, Any]]
    pruned: list[dict[str, Any]] = field(default_factory=list)
    invalid_reasons: dict[str, int] = field(default_factory=dict)
    plans_resumed: int = 0
    wall_s: float = 0.0
    executor: str = "local"
    capacity_gib: float = 0.0
    capacity_source: str = ""
    baseline: dict[str, Any] | None = None
    global_batch_size: int = 0
    global_batch_tokens: int = 0
    global_batch_chosen: bool = False
    global_batch_reason: str = ""

    @property
    def plans_fast_tier(self) -> int:
        """Plans whose figures are the fast tier's (``engine.fast_step``)."""
        return sum(r.get("tier") == "fast" for r in self.records)

    @property
    def verified(self) -> list[dict[str, Any]]:
        """Records the fast tier ranked and the engine then re-simulated."""
        return [
            r
            for r in self.records
            if r.get("tier") == "engine" and r.get("fast_step_time_s") is not None
        ]

    @property
    def plans_invalid(self) -> int:
        """Plans of the space that failed a check of the model or GPU count."""
        return sum(self.invalid_reasons.values())

    # -- ranking ---------------------------------------------------------------------------
    def _ranked(self) -> list[dict[str, Any]]:
        _, larger = OBJECTIVES[self.objective]
        ok = [r for r in self.records if r["status"] == "ok" and r["objective"] is not None]
        return sorted(ok, key=lambda r: (-r["objective"] if larger else r["objective"], r["key"]))

    @property
    def best_record(self) -> dict[str, Any] | None:
        """The record of the best feasible plan (None if no plan was feasible)."""
        ranked = self._ranked()
        return ranked[0] if ranked else None

    @property
    def best_plan(self) -> ParallelPlan | None:
        """The best feasible plan."""
        best = self.best_record
        if best is None:
            return None
        return ParallelPlan.model_validate({k: best[k] for k in ParallelPlan.model_fields})

    @property
    def speedup(self) -> float | None:
        """How many times better the best plan's objective is than the baseline's."""
        best, base = self.best_record, self.baseline
        if best is None or base is None or not base.get("objective"):
            return None
        _, larger = OBJECTIVES[self.objective]
        ratio: float = (
            best["objective"] / base["objective"]
            if larger
            else base["objective"] / best["objective"]
        )
        return ratio

    # -- tables ----------------------------------------------------------------------------
    def to_dataframe(self, *, include_pruned: bool = False) -> pd.DataFrame:
        """One row per plan, best first; pruned plans (memory only) last when asked for."""
        import pandas as pd

        ranked = self._ranked()
        ranked_keys = {r["key"] for r in ranked}
        rest = sorted((r for r in self.records if r["key"] not in ranked_keys), key=_key)
        rows = ranked + rest + (sorted(self.pruned, key=_key) if include_pruned else [])
        frame: pd.DataFrame = pd.DataFrame([{c: r.get(c) for c in _TABLE_COLUMNS} for r in rows])
        return frame

    def best(self, n: int = 5) -> pd.DataFrame:
        """The ``n`` best feasible plans."""
        frame: pd.DataFrame = self.to_dataframe().head(min(n, len(self._ranked())))
        return frame

    def pareto_front(self) -> pd.DataFrame:
        """Feasible plans no other plan beats on both step time and memory, by memory."""
        import pandas as pd

        front: list[dict[str, Any]] = []
        ok = [r for r in self.records if r["status"] == "ok" and r["step_time_s"] is not None]
        for record in sorted(ok, key=lambda r: (r["memory_gib"], r["step_time_s"])):
            if not front or record["step_time_s"] < front[-1]["step_time_s"]:
                front.append(record)
        frame: pd.DataFrame = pd.DataFrame([{c: r.get(c) for c in _TABLE_COLUMNS} for r in front])
        return frame

    def plot_pareto(self, path: str | Path | None = None) -> Any:
        """Step time against memory per GPU, the Pareto front, best and baseline; the figure."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        ok = [r for r in self.records if r["step_time_s"] is not None]
        ax.scatter(
            [r["memory_gib"] for r in ok],
            [r["step_time_s"] for r in ok],
            s=10,
            alpha=0.5,
            label=f"plans ({len(ok)})",
        )
        front = self.pareto_front()
        if len(front):
            ax.step(front["memory_gib"], front["step_time_s"], where="post", color="C1")
            ax.scatter(front["memory_gib"], front["step_time_s"], s=18, color="C1", label="Pareto")
        best = self.best_record
        if best is not None:
            ax.scatter(
                [best["memory_gib"]],
                [best["step_time_s"]],
                marker="*",
                s=160,
                color="C3",
                label=f"best: {describe_plan(best)}",
            )
        if self.baseline is not None and self.baseline.get("step_time_s") is not None:
            ax.scatter(
                [self.baseline["memory_gib"]],
                [self.baseline["step_time_s"]],
                marker="D",
                s=50,
                color="k",
                label=f"baseline: {describe_plan(self.baseline)}",
            )
        if self.capacity_gib:
            ax.axvline(self.capacity_gib, ls=":", color="gray", label="memory limit")
        ax.set_xlabel("memory per GPU (GiB)")
        ax.set_ylabel("step time (s)")
        ax.set_title(f"{self.model} on {self.gpus} {self.device}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
            plt.close(fig)
        return fig

    # -- presentation ----------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Headline figures as plain data (what ``trainsim sweep --json`` prints)."""

        def public(record: dict[str, Any] | None) -> dict[str, Any] | None:
            if record is None:
                return None
            return {c: record.get(c) for c in _TABLE_COLUMNS if c not in ("error",)}

        return {
            "model": self.model,
            "device": self.device,
            "gpus": self.gpus,
            "objective": self.objective,
            "executor": self.executor,
            "global_batch_size": self.global_batch_size,
            "global_batch_tokens": self.global_batch_tokens,
            "global_batch_chosen": self.global_batch_chosen,
            "global_batch_reason": self.global_batch_reason,
            "plans_evaluated": len(self.records),
            "plans_pruned": len(self.pruned),
            "memory_limit_gib": self.capacity_gib,
            "memory_limit_source": self.capacity_source,
            "memory_compared": _MEMORY_COMPARED,
            "plans_invalid": self.plans_invalid,
            "invalid_reasons": dict(self.invalid_reasons),
            "plans_resumed": self.plans_resumed,
            "plans_fast_tier": self.plans_fast_tier,
            "plans_verified": len(self.verified),
            "plans_failed": sum(r["status"] == "error" for r in self.records),
            "plans_infeasible": sum(r["status"] == "infeasible" for r in self.records),
            "wall_s": self.wall_s,
            "best": public(self.best_record),
            "baseline": public(self.baseline),
            "speedup_over_baseline": self.speedup,
        }

    def _tier_line(self) -> str:
        """How the plans were timed: fast tier, engine, and the verified best."""
        verified = self.verified
        engine = len(self.records) - self.plans_fast_tier - len(verified)
        line = f"{self.plans_fast_tier} by the fast tier, {engine} by the engine"
        if verified:
            gaps = [
                abs(r["fast_step_time_s"] / r["step_time_s"] - 1)
                for r in verified
                if r["step_time_s"]
            ]
            line += (
                f", {len(verified)} best re-simulated by the engine (fast tier within "
                f"{max(gaps, default=0.0):.2%} of it; figures below are the engine's)"
            )
        return line

    def format(self, top: int = 10) -> str:
        """A plain-text report: counts, the best plans, and the speedup over the baseline."""
        column, _ = OBJECTIVES[self.objective]
        lines = [
            f"sweep of {self.model} on {self.gpus} {self.device}: {len(self.records)} plans "
            f"evaluated ({self.plans_resumed} from the results file), {len(self.pruned)} pruned "
            f"by memory, {self.plans_invalid} invalid, {self.wall_s:.1f} s",
            f"tiers: {self._tier_line()}",
            f"global batch: {self.global_batch_size} sequences "
            f"({self.global_batch_tokens / 1e6:.3g}M tokens) per step for every plan; "
            f"{self.global_batch_reason}",
            f"pruned by memory: {_MEMORY_COMPARED} over {self.capacity_gib:.1f} GiB "
            f"({self.capacity_source})",
        ]
        if self.invalid_reasons:
            lines.append("invalid plans by reason:")
            lines.extend(f"{n:>8}  {why}" for why, n in self.invalid_reasons.items())
        lines += [
            f"{'rank':>4}  {'plan':<40} {'step s':>9} {'tok/s':>11} {'MFU':>6} {'GiB':>6}"
            + (f" {'days':>8}" if column == "time_to_train_days" else ""),
        ]
        for i, r in enumerate(self._ranked()[:top], start=1):
            line = (
                f"{i:>4}  {describe_plan(r)[:40]:<40} {r['step_time_s']:>9.4g} "
                f"{r['tokens_per_s']:>11.4g} {(r['mfu'] or 0.0):>6.1%} {r['memory_gib']:>6.1f}"
            )
            if column == "time_to_train_days":
                line += f" {r['time_to_train_days']:>8.2f}"
            lines.append(line)
        if self.baseline is not None:
            lines.append(
                f"baseline {describe_plan(self.baseline)}: step {self.baseline['step_time_s']:.4g}"
                f" s; best is {self.speedup or float('nan'):.3f}x better ({self.objective})"
            )
        return "\n".join(lines)


def _key(record: dict[str, Any]) -> str:
    return str(record["key"])


def _resolve_model(model: ModelSpec | str) -> ModelSpec:
    return model if isinstance(model, ModelSpec) else load_model(model)


def sweep(
    model: ModelSpec | str,
    device: str,
    gpus: int,
    *,
    space: SearchSpace | dict[str, Any] | None = None,
    objective: Objective = "step_time",
    constraints: Constraints | dict[str, Any] | None = None,
    baseline: ParallelPlan | None = None,
    cluster: str | None = None,
    tokens: float | None = None,
    failures: FailureSpec | None = None,
    cost_model: str | None = None,
    compression: CompressionSpec | None = None,
    executor: str | Executor = "local",
    workers: int | None = None,
    address: str | None = None,
    out: str | Path | None = None,
    progress: bool | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    verify: int = DEFAULT_VERIFY,
) -> SweepResult:
    """Search the plans of ``space`` for ``model`` on ``gpus`` ``device`` GPUs.

    ``objective`` ranks plans: ``step_time`` (seconds per step, lower is better),
    ``tokens_per_s`` (higher) or ``time_to_train`` (days to train ``tokens``, via
    ``engine.forecast`` with ``failures``). Plans over ``constraints.max_memory_gib`` (default
    the device's memory) are pruned before simulating; the other constraints mark simulated
    plans infeasible. ``baseline`` is a plan to compare the best against (``speedup``).
    ``executor`` is ``local`` (processes, ``workers`` of them, all cores by default), ``ray``
    (``address`` of a cluster, or a local one), ``serial`` or an ``Executor``. With ``out``
    every record is appended to that file (``.csv`` or JSON lines) as it arrives, and plans
    already there are not simulated again. ``on_result`` is called with each plan's first
    record (a verified record replaces its plan's in the result and, appended, in the file).
    ``cost_model`` None keeps ``engine.cluster_system``'s default.

    Plans are timed by the fast tier (``engine.fast_step``) where it applies and by the
    event-driven engine otherwise; the ``verify`` best fast-tier plans are then re-simulated
    by the engine, and their records carry the engine's figures (``tier`` ``engine``, the
    fast tier's step time in ``fast_step_time_s``).

    Every plan runs one global batch, so they do the same work per step: the space's
    ``global_batch_size``, or else one the sweep chooses (``resolve_global_batch``; the result
    says which and why). A ``baseline`` without a global batch runs it too; one with another
    is refused. ``progress`` shows a bar on stderr; None shows it when stderr is a terminal.
    """
    start = time.perf_counter()
    if verify < 0:
        raise SweepConfigError(f"verify={verify} must be 0 or more plans")
    spec = _resolve_model(model)
    grid = space if isinstance(space, SearchSpace) else space_from_mapping(space)
    limits = (
        constraints
        if isinstance(constraints, Constraints)
        else constraints_from_mapping(constraints)
    )
    context = SweepContext(
        model=spec,
        device=device,
        gpus=gpus,
        objective=objective,
        cost_model=cost_model,
        compression=compression,
        tokens=tokens,
        failures=failures,
        constraints=limits,
    )
    spec_device = load_device(device)
    # Usable memory, not the nominal HBM: the runtime holds its share (models.memory_fit).
    capacity = limits.max_memory_gib or spec_device.usable_memory_gib
    capacity_source = (
        "the max_memory_gib constraint"
        if limits.max_memory_gib
        else f"the usable memory of one {spec_device.name} ({spec_device.memory_gib:g} GiB less "
        f"{spec_device.runtime_reserved_gib:g} the runtime holds)"
    )
    batch = resolve_global_batch(spec, gpus, grid)
    grid = grid.model_copy(update={"global_batch_size": batch.sequences})
    candidates, invalid_reasons = enumerate_plans(spec, gpus, grid)
    if baseline is not None:
        baseline = _at_batch(baseline, batch.sequences)
    tasks: list[PlanTask] = []
    pruned: list[dict[str, Any]] = []
    for plan, plan_cluster in candidates:
        need_gib = memory_gib(spec, plan)
        task = PlanTask(plan, plan_cluster if plan_cluster is not None else cluster, need_gib)
        if need_gib > capacity:
            pruned.append(
                {**base_record(context, task), "status": "pruned", "memory_gib": need_gib}
            )
        else:
            tasks.append(task)
    if not tasks:
        raise SweepConfigError(
            f"no plan of the space is left to evaluate for {spec.name} on {gpus} GPUs: "
            f"{sum(invalid_reasons.values())} invalid, {len(pruned)} over {capacity:.3g} GiB "
            f"per GPU ({capacity_source})"
        )
    # Build each cluster once here, before workers fork, so they inherit it; this also
    # reports a bad device or cluster before any work starts.
    for name in dict.fromkeys(t.cluster for t in tasks):
        system_for(context, name)

    store = ResultStore(out, context.sweep_id) if out is not None else None
    wanted = {t.key for t in tasks}
    done = {
        r["key"]: rank_record(context, r)
        for r in (store.load() if store else [])
        if r["key"] in wanted
    }
    # Longest first: a plan's cost grows with its micro-batches, and a long plan started
    # last would leave the other workers idle at the end.
    todo = sorted((t for t in tasks if t.key not in done), key=lambda t: -t.plan.num_micro_batches)
    records = list(done.values())
    better = _better(objective)
    best: dict[str, Any] | None = None
    for record in records:
        best = _pick(best, record, better)

    runner = make_executor(executor, workers=workers, address=address)
    with (
        runner,
        store if store is not None else _NullStore() as sink,
        SweepProgress(len(tasks), objective=objective, enabled=progress) as bar,
    ):
        for _ in records:
            bar.advance_best(best)
        if todo:
            for record in runner.imap_unordered(functools.partial(evaluate_plan, context), todo):
                sink.append(record)
                records.append(record)
                best = _pick(best, record, better)
                bar.advance_best(best)
                if on_result is not None:
                    on_result(record)
        chosen = _to_verify(records, objective, verify)
        if chosen:
            replaced = {}
            for record in runner.imap_unordered(functools.partial(verify_plan, context), chosen):
                sink.append(record)
                replaced[record["key"]] = record
            records = [replaced.get(r["key"], r) for r in records]

    base_record_ = None
    if baseline is not None:
        check_plan(spec, baseline)
        base_task = PlanTask(baseline, cluster)
        # The speedup compares engine figures: the best plan's are the engine's (verified).
        base_record_ = next(
            (r for r in records if r["key"] == base_task.key and r.get("tier") != "fast"), None
        )
        if base_record_ is None:
            base_record_ = evaluate_plan(replace(context, fast=False), base_task)
    return SweepResult(
        model=spec.name,
        device=device,
        gpus=gpus,
        objective=objective,
        records=records,
        pruned=pruned,
        invalid_reasons=invalid_reasons,
        plans_resumed=len(done),
        wall_s=time.perf_counter() - start,
        executor=runner.name,
        capacity_gib=capacity,
        capacity_source=capacity_source,
        baseline=base_record_,
        global_batch_size=batch.sequences,
        global_batch_tokens=batch.tokens,
        global_batch_chosen=batch.chosen,
        global_batch_reason=batch.reason,
    )


def _to_verify(records: list[dict[str, Any]], objective: str, count: int) -> list[dict[str, Any]]:
    """Those of the ``count`` best feasible records that the fast tier timed, best first.

    The best are chosen over all records, verified or not, so that a resumed sweep verifies
    what is still unverified among them and nothing more.
    """
    _, larger = OBJECTIVES[objective]
    ok = [r for r in records if r["status"] == "ok" and r["objective"] is not None]
    ok.sort(key=lambda r: (-r["objective"] if larger else r["objective"], r["key"]))
    return [r for r in ok[:count] if r.get("tier") == "fast"]


def _at_batch(baseline: ParallelPlan, sequences: int) -> ParallelPlan:
    """The baseline at the sweep's global batch: a speedup compares plans doing equal work."""
    if baseline.global_batch_size is None:
        return plan_from_mapping({**baseline.model_dump(), "global_batch_size": sequences})
    if baseline.global_batch_size != sequences:
        raise SweepConfigError(
            f"baseline global_batch_size={baseline.global_batch_size} differs from the sweep's "
            f"global_batch_size={sequences}: a speedup needs both to run the same batch"
        )
    return baseline


def _pick(
    best: dict[str, Any] | None, record: dict[str, Any], better: Callable[[float, float], bool]
) -> dict[str, Any] | None:
    value = record.get("objective")
    if record.get("status") != "ok" or value is None or not math.isfinite(value):
        return best
    if best is None or better(value, best["objective"]):
        return record
    return best


class _NullStore:
    """Stands in for a ``ResultStore`` when the sweep keeps no results file."""

    def __enter__(self) -> _NullStore:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def append(self, record: dict[str, Any]) -> None:
        """Keep nothing."""
        return None
