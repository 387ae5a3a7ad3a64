"""Whether predictions rank plans as the hardware did: runs that differ only in their plan.

A parallelism search is only as good as its ordering of plans. Published runs that train the
same model on the same GPUs at the same batch (``ValidationRow.run_key``) and differ in their
parallel configuration are a group; within each, the predicted and the measured times (or
throughputs) are compared by rank: the Spearman correlation, how many pairs keep their order,
and whether the predicted best is the measured best.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scipy.stats import spearmanr

if TYPE_CHECKING:
    from trainsim.studies._validation_report import ValidationRow

__all__ = [
    "RANKED_METRICS",
    "RUN_COLUMNS",
    "PlanRanking",
    "plan_rankings",
    "ranking_dict",
    "ranking_lines",
    "run_key",
]

#: Metrics that rank a plan, and whether larger is better. MFU, HFU and memory are left out:
#: the first two order plans as their times do, memory is not what a search ranks by.
#: Columns both tables name a run by (``run_key``).
RUN_COLUMNS = ("model", "gpus", "gpu_type", "global_batch", "seq_len", "precision")
RANKED_METRICS: dict[str, bool] = {
    "step_time_s": False,
    "step_time_ms": False,
    "tokens_per_s_per_gpu": True,
    "achieved_tflops_per_gpu": True,
    "model_tflops_per_gpu": True,
}


def run_key(row: Mapping[str, str]) -> str:
    """What a row of the published table or llm-foundry's trains on what, in one line
    (``ValidationRow.run_key``): model, GPUs, global batch, sequence, GPU type, precision."""
    cell = {name: row[name].strip() for name in RUN_COLUMNS}
    return (
        f"{cell['model']} on {cell['gpus']} {cell['gpu_type']}, batch {cell['global_batch']} "
        f"x {cell['seq_len']}, {cell['precision']}"
    )


@dataclass(frozen=True)
class PlanRanking:
    """One group of runs that differ only in their plan, ranked both ways."""

    source: str
    run: str
    metric: str
    measured: tuple[float, ...]
    predicted: tuple[float, ...]
    larger_is_better: bool

    @property
    def size(self) -> int:
        """Runs in the group."""
        return len(self.measured)

    @property
    def spearman(self) -> float:
        """Rank correlation between predicted and measured values (1: the same order)."""
        if self.size == 2:  # scipy's needs three points; two are in order or reversed
            return 1.0 if self.pairs_in_order == 1 else -1.0
        return float(spearmanr(self.measured, self.predicted).statistic)

    @property
    def pairs_in_order(self) -> int:
        """Pairs of runs whose predicted order is their measured order."""
        count = 0
        for i in range(self.size):
            for j in range(i + 1, self.size):
                measured = self.measured[i] - self.measured[j]
                predicted = self.predicted[i] - self.predicted[j]
                count += measured * predicted > 0
        return count

    @property
    def pairs(self) -> int:
        """Pairs of runs in the group."""
        return self.size * (self.size - 1) // 2

    @property
    def best_agrees(self) -> bool:
        """Whether the predicted best run is the measured best."""
        pick = max if self.larger_is_better else min
        order = range(self.size)
        return pick(order, key=lambda i: self.measured[i]) == pick(
            order, key=lambda i: self.predicted[i]
        )


def plan_rankings(rows: Iterable[ValidationRow]) -> list[PlanRanking]:
    """Groups of two or more predicted runs that share a source, run and ranked metric."""
    groups: dict[tuple[str, str, str], list[ValidationRow]] = defaultdict(list)
    for row in rows:
        ranked = row.metric in RANKED_METRICS and row.run_key
        if ranked and row.measured is not None and row.predicted is not None:
            groups[(row.source, row.run_key, row.metric)].append(row)
    out = []
    for (source, run, metric), members in sorted(groups.items()):
        if len(members) < 2 or len({r.measured for r in members}) < 2:
            continue
        out.append(
            PlanRanking(
                source,
                run,
                metric,
                tuple(float(r.measured or 0.0) for r in members),
                tuple(float(r.predicted or 0.0) for r in members),
                RANKED_METRICS[metric],
            )
        )
    return out


def ranking_lines(rankings: list[PlanRanking]) -> list[str]:
    """The report's section on plan ranking (one line when no group was found)."""
    head = "plan ranking (runs sharing model, GPUs and batch, differing in their plan):"
    if not rankings:
        return [head, "  no such group among the predicted runs"]
    pairs = sum(r.pairs for r in rankings)
    in_order = sum(r.pairs_in_order for r in rankings)
    best = sum(r.best_agrees for r in rankings)
    lines = [
        head,
        f"  {len(rankings)} groups: predicted best is the measured best in {best}; "
        f"{in_order} of {pairs} pairs in the measured order",
    ]
    for r in rankings:
        lines.append(
            f"    {r.source}: {r.run} {r.metric}, {r.size} runs: Spearman {r.spearman:+.2f}, "
            f"best {'agrees' if r.best_agrees else 'differs'}"
        )
    return lines


def ranking_dict(rankings: list[PlanRanking]) -> list[dict[str, object]]:
    """Plain data of every group, for JSON."""
    return [
        {
            "source": r.source,
            "run": r.run,
            "metric": r.metric,
            "runs": r.size,
            "spearman": r.spearman,
            "pairs_in_order": r.pairs_in_order,
            "pairs": r.pairs,
            "best_agrees": r.best_agrees,
        }
        for r in rankings
    ]
