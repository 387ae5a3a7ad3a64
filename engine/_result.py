"""``StepResult``: what one simulated training step took, where the time went, and its timeline."""

from __future__ import annotations

import html
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainsim.engine._program import (
    K_COLL,
    K_COMP,
    K_CPU,
    K_MEM,
    K_RECV,
    K_SEND,
    KIND_NAMES,
    Program,
)
from trainsim.engine._sim import RawTimeline

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "POINT_TO_POINT",
    "UNKNOWN_COLLECTIVE",
    "BreakdownPart",
    "RankBreakdown",
    "StepMetrics",
    "StepResult",
]


#: Key of ``RankBreakdown.exposed_comm_ns`` for collectives whose group's kind nothing names
#: (a converted trace's process groups).
UNKNOWN_COLLECTIVE = "collective"
#: Key of ``RankBreakdown.exposed_comm_ns`` for sends and receives the workload does not call
#: pipeline (or any other) exchanges.
POINT_TO_POINT = "p2p"
#: Group kind of the pipeline exchanges, whose receives wait for the previous stage (bubble).
PIPELINE = "pp"

#: How ``format`` names an exposed-communication key; a known group kind is printed as is.
_COMM_LABELS = {
    UNKNOWN_COLLECTIVE: "collective (group unknown)",
    POINT_TO_POINT: "point-to-point",
}


@dataclass(frozen=True)
class RankBreakdown:
    """Where one rank's step time went (ns): a partition of ``[0, step time]``.

    Every instant of the step is attributed to exactly one part, so ``device_compute_ns +
    host_compute_ns + exposed communication + memory_ns + bubble_ns + idle_ns`` is the step
    time (``parts_total_ns``); a rank that finishes early is idle until the step ends.
    Priority, highest first: device compute (compute nodes that are not CPU ops), host compute
    (``is_cpu_op`` nodes), exposed communication (collectives and sends running, or a
    non-pipeline receive waiting; shared equally by the group kinds active at once), memory
    nodes, pipeline bubble (waiting on a ``pp`` receive), idle. ``overlapped_comm_ns`` is the
    communication that ran while compute did; it is already inside the compute parts and does
    not add to the step.
    """

    rank: int
    finish_ns: float
    device_compute_ns: float
    host_compute_ns: float
    exposed_comm_ns: dict[str, float]
    overlapped_comm_ns: float
    memory_ns: float
    bubble_ns: float
    idle_ns: float

    @property
    def compute_ns(self) -> float:
        """Compute of both kinds: device kernels and host CPU ops."""
        return self.device_compute_ns + self.host_compute_ns

    @property
    def exposed_comm_total_ns(self) -> float:
        """Communication time not hidden behind compute, all group kinds together."""
        return sum(self.exposed_comm_ns.values())

    @property
    def parts_total_ns(self) -> float:
        """Sum of the additive parts: the step time, up to float rounding."""
        return (
            self.compute_ns
            + self.exposed_comm_total_ns
            + self.memory_ns
            + self.bubble_ns
            + self.idle_ns
        )


@dataclass(frozen=True)
class BreakdownPart:
    """One additive part of the step as ``format`` and ``summary`` show it (mean over ranks)."""

    key: str
    label: str
    ns: float


@dataclass(frozen=True)
class StepMetrics:
    """Throughput figures of a step when the workload's model is known."""

    tokens_per_step: float
    model_flops_per_step: float
    hardware_flops_per_step: float
    gpus: int
    peak_flops_per_gpu: float
    memory_gib_per_gpu: float | None = None
    #: The precision whose dense peak ``peak_flops_per_gpu`` is (MFU's denominator).
    precision: str | None = None

    def tokens_per_s(self, step_time_s: float) -> float:
        """Training tokens per second over the whole job at ``step_time_s`` per step."""
        return self.tokens_per_step / step_time_s

    def mfu(self, step_time_s: float) -> float:
        """Model FLOPs utilization: model FLOP/s per GPU over the device's dense peak."""
        return self.model_flops_per_step / self.gpus / step_time_s / self.peak_flops_per_gpu

    def hfu(self, step_time_s: float) -> float:
        """Hardware FLOPs utilization: recomputed FLOPs counted too."""
        return self.hardware_flops_per_step / self.gpus / step_time_s / self.peak_flops_per_gpu


# Categories of the sweep in ``_rank_breakdown``; communication labels follow from _COMM.
_DEVICE, _HOST, _MEMORY, _BUBBLE, _COMM = range(5)


def _rank_breakdown(
    program: Program, start: list[float], end: list[float], step_ns: float, kinds: list[str]
) -> RankBreakdown:
    """Sweep one rank's intervals and attribute every instant of the step to one part.

    ``kinds`` is each node's group kind (``""`` when unknown). Collectives and sends move data
    while they run, so they count as exposed or overlapped communication; a receive only
    waits for its sender, so it counts only where nothing else runs: as pipeline bubble for a
    ``pp`` exchange, as exposed point-to-point (or its kind's) communication otherwise.
    """
    labels: dict[str, int] = {}
    edges: list[tuple[float, int, int]] = []  # (time, +1/-1, category)
    # A category >= _COMM is 2 * label + _COMM for moving data, + 1 for a receive waiting.
    for i, kind in enumerate(program.kinds):
        s, e = start[i], end[i]
        if e <= s:
            continue
        if kind == K_COMP:
            cat = _DEVICE
        elif kind == K_CPU:
            cat = _HOST
        elif kind == K_MEM:
            cat = _MEMORY
        elif kind == K_COLL:
            label = kinds[i] or UNKNOWN_COLLECTIVE
            cat = _COMM + 2 * labels.setdefault(label, len(labels))
        elif kind == K_SEND:
            label = kinds[i] or POINT_TO_POINT
            cat = _COMM + 2 * labels.setdefault(label, len(labels))
        elif kind == K_RECV:
            if kinds[i] == PIPELINE:
                cat = _BUBBLE
            else:
                label = kinds[i] or POINT_TO_POINT
                cat = _COMM + 2 * labels.setdefault(label, len(labels)) + 1
        else:
            continue
        edges.append((s, 1, cat))
        edges.append((e, -1, cat))
    edges.sort()
    names = list(labels)
    active = [0] * (_COMM + 2 * len(names))
    device = host = memory = bubble = idle = overlapped = 0.0
    exposed: dict[str, float] = defaultdict(float)
    last = 0.0
    for t, delta, cat in [*edges, (step_ns, 0, _DEVICE)]:
        t = min(t, step_ns)
        dt = t - last
        if dt > 0:
            moving = any(active[_COMM + 2 * j] for j in range(len(names)))
            if active[_DEVICE] or active[_HOST]:
                if active[_DEVICE]:
                    device += dt
                else:
                    host += dt
                if moving:
                    overlapped += dt
            else:
                waiting = [
                    names[j]
                    for j in range(len(names))
                    if active[_COMM + 2 * j] or active[_COMM + 2 * j + 1]
                ]
                if waiting:
                    for name in waiting:
                        exposed[name] += dt / len(waiting)
                elif active[_MEMORY]:
                    memory += dt
                elif active[_BUBBLE]:
                    bubble += dt
                else:
                    idle += dt
            last = t
        active[cat] += delta
    return RankBreakdown(
        rank=program.rank,
        finish_ns=max(end) if end else 0.0,
        device_compute_ns=device,
        host_compute_ns=host,
        exposed_comm_ns=dict(exposed),
        overlapped_comm_ns=overlapped,
        memory_ns=memory,
        bubble_ns=bubble,
        idle_ns=idle,
    )


@dataclass
class StepResult:
    """One simulated step: step time, per-rank finish and breakdown, timeline, metrics."""

    programs: dict[int, Program]
    timeline: RawTimeline
    comm_kinds: dict[int, list[str]]
    multiplicity: dict[int, int]
    world_size: int
    metrics: StepMetrics | None = None
    label: str = "step"
    notes: list[str] = field(default_factory=list)

    # -- headline numbers ------------------------------------------------------------------
    @cached_property
    def rank_finish_ns(self) -> dict[int, float]:
        """Finish time of every simulated rank (ns)."""
        return {r: max(ends, default=0.0) for r, ends in self.timeline.end_ns.items()}

    @property
    def step_time_ns(self) -> float:
        """Step time: the last rank's finish (ns)."""
        return max(self.rank_finish_ns.values(), default=0.0)

    @property
    def step_time_s(self) -> float:
        """Step time in seconds."""
        return self.step_time_ns * 1e-9

    @property
    def num_nodes(self) -> int:
        """Nodes simulated over all ranks."""
        return sum(len(p) for p in self.programs.values())

    @property
    def tokens_per_s(self) -> float | None:
        """Training tokens per second over the whole job, when the model is known."""
        if self.metrics is None or not self.step_time_s:
            return None
        return self.metrics.tokens_per_s(self.step_time_s)

    @property
    def tflops_per_gpu(self) -> float | None:
        """Model FLOP/s per GPU in TFLOP/s (recomputation not counted)."""
        if self.metrics is None or not self.step_time_s:
            return None
        return self.metrics.model_flops_per_step / self.metrics.gpus / self.step_time_s / 1e12

    @property
    def mfu(self) -> float | None:
        """Model FLOPs utilization: model FLOP/s per GPU over the device's dense peak."""
        if self.metrics is None or not self.step_time_s:
            return None
        return self.metrics.mfu(self.step_time_s)

    @property
    def hfu(self) -> float | None:
        """Hardware FLOPs utilization: counts recomputed FLOPs too."""
        if self.metrics is None or not self.step_time_s:
            return None
        return self.metrics.hfu(self.step_time_s)

    # -- breakdown -------------------------------------------------------------------------
    @cached_property
    def breakdown(self) -> dict[int, RankBreakdown]:
        """Per simulated rank: the parts its step time splits into (see ``RankBreakdown``)."""
        step = self.step_time_ns
        return {
            rank: _rank_breakdown(
                program,
                self.timeline.start_ns[rank],
                self.timeline.end_ns[rank],
                step,
                self.comm_kinds[rank],
            )
            for rank, program in self.programs.items()
        }

    def critical_path(self) -> list[tuple[int, int]]:
        """(rank, node id) of the chain of nodes that ends last, followed backwards in time.

        Each step goes to the dependency (or, for a node that waited for a stream or a peer,
        the node on the same rank) that finished latest before it started.
        """
        rank = max(self.rank_finish_ns, key=lambda r: self.rank_finish_ns[r])
        program = self.programs[rank]
        ends = self.timeline.end_ns[rank]
        starts = self.timeline.start_ns[rank]
        parents: list[list[int]] = [[] for _ in program.ids]
        for i, children in enumerate(program.children):
            for c in children:
                parents[c].append(i)
        idx = max(range(len(ends)), key=lambda i: ends[i])
        path = [(rank, program.ids[idx])]
        seen = {idx}
        while True:
            begin = starts[idx]
            candidates = parents[idx] or [
                i for i in range(len(ends)) if ends[i] <= begin and i not in seen
            ]
            candidates = [c for c in candidates if c not in seen]
            if not candidates or begin <= 0:
                break
            idx = max(candidates, key=lambda i: ends[i])
            seen.add(idx)
            path.append((rank, program.ids[idx]))
        path.reverse()
        return path

    # -- presentation ----------------------------------------------------------------------
    def _weights(self) -> dict[int, int]:
        """How many of the job's ranks each simulated rank stands for (1 in per-rank mode)."""
        return {rank: max(self.multiplicity.get(rank, 1), 1) for rank in self.breakdown}

    def _mean_ns(self, value: Callable[[RankBreakdown], float]) -> float:
        """Mean of ``value`` over the job's ranks: each simulated rank weighted by its copies."""
        weights = self._weights()
        total = sum(weights.values()) or 1
        return sum(value(b) * weights[r] for r, b in self.breakdown.items()) / total

    def parts(self) -> list[BreakdownPart]:
        """The additive parts of the step, each a mean over the job's ranks (ns).

        Every rank's parts partition the step, so their mean over ranks (each simulated rank
        weighted by the ranks it stands for) adds up to the step time too. Compute and idle
        are always listed; other parts when some rank has them. Compute is split into device
        and host only when both occur.
        """
        device = self._mean_ns(lambda b: b.device_compute_ns)
        host = self._mean_ns(lambda b: b.host_compute_ns)
        out: list[BreakdownPart] = []
        if device and host:
            out.append(BreakdownPart("device_compute", "compute, device (kernels)", device))
            out.append(BreakdownPart("host_compute", "compute, host (CPU ops)", host))
        elif host:
            out.append(BreakdownPart("host_compute", "compute, host (CPU ops)", host))
        else:
            out.append(BreakdownPart("device_compute", "compute", device))
        weights = self._weights()
        total = sum(weights.values()) or 1
        exposed: dict[str, float] = defaultdict(float)
        for rank, b in self.breakdown.items():
            for kind, value in b.exposed_comm_ns.items():
                exposed[kind] += value * weights[rank] / total
        # Known group kinds first, then the unknown collective and point-to-point rows.
        for kind in sorted(exposed, key=lambda k: (k in _COMM_LABELS, k)):
            label = f"exposed communication, {_COMM_LABELS.get(kind, kind)}"
            out.append(BreakdownPart(f"exposed:{kind}", label, exposed[kind]))
        for key, label, value in (
            ("memory", "memory nodes", self._mean_ns(lambda b: b.memory_ns)),
            ("bubble", "pipeline bubble", self._mean_ns(lambda b: b.bubble_ns)),
        ):
            if value:
                out.append(BreakdownPart(key, label, value))
        out.append(BreakdownPart("idle", "idle", self._mean_ns(lambda b: b.idle_ns)))
        return out

    def summary(self) -> dict[str, Any]:
        """Headline figures as plain data (what ``--json`` prints).

        The ``breakdown`` object carries the parts ``format`` shows: ``parts_s`` are means
        over ``mean_over_ranks`` ranks and add up to ``sum_s``, the step time;
        ``overlapped_comm_s`` is hidden inside the compute parts. The flat ``*_s_mean`` keys
        are the same means, kept for existing readers.
        """
        parts = self.parts()
        by_key = {part.key: part.ns * 1e-9 for part in parts}
        exposed = {
            part.key.removeprefix("exposed:"): part.ns * 1e-9
            for part in parts
            if part.key.startswith("exposed:")
        }
        overlapped_s = self._mean_ns(lambda b: b.overlapped_comm_ns) * 1e-9
        out: dict[str, Any] = {
            "step_time_s": self.step_time_s,
            "step_time_ns": self.step_time_ns,
            "rank_finish_ns": [self.rank_finish_ns[r] for r in sorted(self.rank_finish_ns)],
            "simulated_ranks": len(self.programs),
            "world_size": self.world_size,
            "nodes": self.num_nodes,
            "breakdown": {
                "mean_over_ranks": sum(self._weights().values()),
                "parts_s": dict(by_key),
                "labels": {part.key: part.label for part in parts},
                "sum_s": sum(by_key.values()),
                "overlapped_comm_s": overlapped_s,
            },
            "compute_s_mean": by_key.get("device_compute", 0.0) + by_key.get("host_compute", 0.0),
            "device_compute_s_mean": by_key.get("device_compute", 0.0),
            "host_compute_s_mean": by_key.get("host_compute", 0.0),
            "exposed_comm_s_mean": exposed,
            "overlapped_comm_s_mean": overlapped_s,
            "memory_s_mean": by_key.get("memory", 0.0),
            "bubble_s_mean": by_key.get("bubble", 0.0),
            "idle_s_mean": by_key.get("idle", 0.0),
        }
        if self.metrics is not None:
            out.update(
                tokens_per_s=self.tokens_per_s,
                tflops_per_gpu=self.tflops_per_gpu,
                mfu=self.mfu,
                hfu=self.hfu,
                memory_gib_per_gpu=self.metrics.memory_gib_per_gpu,
            )
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def to_dataframe(self) -> pd.DataFrame:
        """One row per simulated rank with its finish time and breakdown in seconds."""
        import pandas as pd

        rows = []
        for rank, b in sorted(self.breakdown.items()):
            row: dict[str, Any] = {
                "rank": rank,
                "ranks_represented": self.multiplicity.get(rank, 1),
                "finish_s": b.finish_ns * 1e-9,
                "device_compute_s": b.device_compute_ns * 1e-9,
                "host_compute_s": b.host_compute_ns * 1e-9,
                "overlapped_comm_s": b.overlapped_comm_ns * 1e-9,
                "memory_s": b.memory_ns * 1e-9,
                "bubble_s": b.bubble_ns * 1e-9,
                "idle_s": b.idle_ns * 1e-9,
            }
            for kind, value in sorted(b.exposed_comm_ns.items()):
                row[f"exposed_{kind}_s"] = value * 1e-9
            rows.append(row)
        frame: pd.DataFrame = pd.DataFrame(rows).fillna(0.0)
        return frame

    def _peak_named(self) -> str:
        """`` of the 989 TFLOP/s bf16 dense peak``: what MFU and HFU divide by."""
        if self.metrics is None:
            return ""
        peak = self.metrics.peak_flops_per_gpu / 1e12
        which = f" {self.metrics.precision}" if self.metrics.precision else ""
        return f" (of the {peak:,.0f} TFLOP/s{which} dense peak)"

    def format(self) -> str:
        """A few readable lines for a terminal: step, its additive parts, overlap, metrics."""
        s = self.summary()
        parts = self.parts()
        ranks = s["breakdown"]["mean_over_ranks"]
        width = max(len(part.label) for part in parts)
        lines = [
            f"{self.label}: step time {s['step_time_s'] * 1e3:,.3f} ms over "
            f"{s['simulated_ranks']} simulated rank(s) of {s['world_size']} "
            f"({s['nodes']:,} nodes)",
            f"  breakdown, mean over {ranks:,} rank(s); these parts add up to the step time:",
        ]
        lines.extend(f"    {part.label:<{width}} {part.ns * 1e-6:>12,.3f} ms" for part in parts)
        lines.append(f"    {'sum':<{width}} {s['breakdown']['sum_s'] * 1e3:>12,.3f} ms")
        lines.append(
            f"  overlapped communication {s['overlapped_comm_s_mean'] * 1e3:,.3f} ms, hidden "
            "behind compute (inside compute above, not added)"
        )
        if self.metrics is not None:
            lines.append(
                f"  {s['tokens_per_s']:,.0f} tokens/s, {s['tflops_per_gpu']:,.1f} model TFLOP/s "
                f"per GPU, MFU {s['mfu']:.1%}, HFU {s['hfu']:.1%}{self._peak_named()}"
            )
            if s.get("memory_gib_per_gpu") is not None:
                lines.append(f"  memory {s['memory_gib_per_gpu']:,.1f} GiB per GPU")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        table = self.to_dataframe().to_html(index=False, float_format=lambda v: f"{v:.6g}")
        # <pre> keeps the breakdown's aligned columns; escape: labels come from the trace.
        return f"<div><pre>{html.escape(self.format())}</pre>{table}</div>"

    def __repr__(self) -> str:
        return f"StepResult(step_time_s={self.step_time_s:.6g}, ranks={len(self.programs)})"

    def to_chrome_trace(self) -> dict[str, Any]:
        """The timeline as a Chrome trace / Perfetto JSON object (one process per rank)."""
        events: list[dict[str, Any]] = []
        tid_of = {K_COMP: 1, K_CPU: 2, K_COLL: 3, K_SEND: 3, K_RECV: 4}
        thread_names = {1: "compute", 2: "cpu", 3: "communication", 4: "receives", 5: "other"}
        for rank, program in sorted(self.programs.items()):
            events.append(
                {"ph": "M", "name": "process_name", "pid": rank, "args": {"name": f"rank {rank}"}}
            )
            for tid, name in thread_names.items():
                events.append(
                    {
                        "ph": "M",
                        "name": "thread_name",
                        "pid": rank,
                        "tid": tid,
                        "args": {"name": name},
                    }
                )
            starts, ends = self.timeline.start_ns[rank], self.timeline.end_ns[rank]
            for i, node_id in enumerate(program.ids):
                kind = program.kinds[i]
                events.append(
                    {
                        "ph": "X",
                        "name": program.names[i] or f"node {node_id}",
                        "cat": KIND_NAMES[kind],
                        "pid": rank,
                        "tid": tid_of.get(kind, 5),
                        "ts": starts[i] / 1000.0,
                        "dur": max(ends[i] - starts[i], 0.0) / 1000.0,
                        "args": {"node_id": node_id},
                    }
                )
        return {"traceEvents": events, "displayTimeUnit": "ns"}

    def save_timeline(self, path: str | Path) -> None:
        """Write the Chrome trace / Perfetto JSON timeline to a file."""
        Path(path).write_text(json.dumps(self.to_chrome_trace()))
