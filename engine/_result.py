"""``StepResult``: what one simulated training step took, where the time went, and its timeline."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainsim.engine._program import K_COLL, K_COMP, K_CPU, K_RECV, K_SEND, KIND_NAMES, Program
from trainsim.engine._sim import RawTimeline

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RankBreakdown", "StepMetrics", "StepResult"]


@dataclass(frozen=True)
class RankBreakdown:
    """Where one rank's step time went (ns); the parts sum to the step time."""

    rank: int
    finish_ns: float
    compute_ns: float
    cpu_ns: float
    exposed_comm_ns: dict[str, float]
    overlapped_comm_ns: float
    bubble_ns: float
    idle_ns: float

    @property
    def exposed_comm_total_ns(self) -> float:
        """Communication time not hidden behind compute, all group kinds together."""
        return sum(self.exposed_comm_ns.values())


@dataclass(frozen=True)
class StepMetrics:
    """Throughput figures of a step when the workload's model is known."""

    tokens_per_step: float
    model_flops_per_step: float
    hardware_flops_per_step: float
    gpus: int
    peak_flops_per_gpu: float
    memory_gib_per_gpu: float | None = None


def _rank_breakdown(
    program: Program, start: list[float], end: list[float], step_ns: float, kinds: list[str]
) -> RankBreakdown:
    """Sweep one rank's intervals and attribute every instant to one category."""
    edges: list[tuple[float, int, int]] = []  # (time, +1/-1, category)
    # categories: 0 compute, 1 cpu, 2 recv wait, 3+ comm kinds
    labels: dict[str, int] = {}
    for i, kind in enumerate(program.kinds):
        s, e = start[i], end[i]
        if e <= s:
            continue
        if kind == K_COMP:
            cat = 0
        elif kind == K_CPU:
            cat = 1
        elif kind == K_RECV:
            cat = 2
        elif kind in (K_COLL, K_SEND):
            cat = 3 + labels.setdefault(kinds[i], len(labels))
        else:
            continue
        edges.append((s, 1, cat))
        edges.append((e, -1, cat))
    edges.sort()
    active = [0] * (3 + len(labels))
    names = list(labels)
    compute = cpu = overlapped = bubble = idle = 0.0
    exposed: dict[str, float] = defaultdict(float)
    last = 0.0
    for t, delta, cat in [*edges, (step_ns, 0, 0)]:
        t = min(t, step_ns)
        dt = t - last
        if dt > 0:
            comm_active = [names[c] for c in range(len(names)) if active[3 + c]]
            if active[0]:
                compute += dt
                if comm_active:
                    overlapped += dt
            elif comm_active:
                for name in comm_active:
                    exposed[name] += dt / len(comm_active)
            elif active[2]:
                bubble += dt
            elif active[1]:
                cpu += dt
            else:
                idle += dt
            last = t
        active[cat] += delta
    return RankBreakdown(
        rank=program.rank,
        finish_ns=max(end) if end else 0.0,
        compute_ns=compute,
        cpu_ns=cpu,
        exposed_comm_ns=dict(exposed),
        overlapped_comm_ns=overlapped,
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
        return self.metrics.tokens_per_step / self.step_time_s

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
        per_gpu = self.metrics.model_flops_per_step / self.metrics.gpus / self.step_time_s
        return per_gpu / self.metrics.peak_flops_per_gpu

    @property
    def hfu(self) -> float | None:
        """Hardware FLOPs utilization: counts recomputed FLOPs too."""
        if self.metrics is None or not self.step_time_s:
            return None
        per_gpu = self.metrics.hardware_flops_per_step / self.metrics.gpus / self.step_time_s
        return per_gpu / self.metrics.peak_flops_per_gpu

    # -- breakdown -------------------------------------------------------------------------
    @cached_property
    def breakdown(self) -> dict[int, RankBreakdown]:
        """Per simulated rank: compute, exposed communication by group kind, overlap, bubble."""
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
    def summary(self) -> dict[str, Any]:
        """Headline figures as plain data (what ``--json`` prints)."""
        rows = list(self.breakdown.values())
        n = max(len(rows), 1)
        exposed: dict[str, float] = defaultdict(float)
        for row in rows:
            for kind, value in row.exposed_comm_ns.items():
                exposed[kind] += value
        out: dict[str, Any] = {
            "step_time_s": self.step_time_s,
            "step_time_ns": self.step_time_ns,
            "rank_finish_ns": [self.rank_finish_ns[r] for r in sorted(self.rank_finish_ns)],
            "simulated_ranks": len(self.programs),
            "world_size": self.world_size,
            "nodes": self.num_nodes,
            "compute_s_mean": sum(r.compute_ns for r in rows) / n * 1e-9,
            "exposed_comm_s_mean": {k: v / n * 1e-9 for k, v in sorted(exposed.items())},
            "overlapped_comm_s_mean": sum(r.overlapped_comm_ns for r in rows) / n * 1e-9,
            "bubble_s_mean": sum(r.bubble_ns for r in rows) / n * 1e-9,
            "idle_s_mean": sum(r.idle_ns for r in rows) / n * 1e-9,
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
                "compute_s": b.compute_ns * 1e-9,
                "cpu_s": b.cpu_ns * 1e-9,
                "overlapped_comm_s": b.overlapped_comm_ns * 1e-9,
                "bubble_s": b.bubble_ns * 1e-9,
                "idle_s": b.idle_ns * 1e-9,
            }
            for kind, value in sorted(b.exposed_comm_ns.items()):
                row[f"exposed_{kind}_s"] = value * 1e-9
            rows.append(row)
        frame: pd.DataFrame = pd.DataFrame(rows).fillna(0.0)
        return frame

    def format(self) -> str:
        """A few readable lines for a terminal."""
        s = self.summary()
        lines = [
            f"{self.label}: step time {s['step_time_s'] * 1e3:,.3f} ms over "
            f"{s['simulated_ranks']} simulated rank(s) of {s['world_size']} "
            f"({s['nodes']:,} nodes)",
            f"  compute {s['compute_s_mean'] * 1e3:,.3f} ms, overlapped comm "
            f"{s['overlapped_comm_s_mean'] * 1e3:,.3f} ms, bubble {s['bubble_s_mean'] * 1e3:,.3f} "
            f"ms, idle {s['idle_s_mean'] * 1e3:,.3f} ms (means over ranks)",
        ]
        for kind, value in s["exposed_comm_s_mean"].items():
            lines.append(f"  exposed {kind} communication {value * 1e3:,.3f} ms")
        if self.metrics is not None:
            lines.append(
                f"  {s['tokens_per_s']:,.0f} tokens/s, {s['tflops_per_gpu']:,.1f} TFLOP/s per GPU, "
                f"MFU {s['mfu']:.1%}, HFU {s['hfu']:.1%}"
            )
            if s.get("memory_gib_per_gpu") is not None:
                lines.append(f"  memory {s['memory_gib_per_gpu']:,.1f} GiB per GPU")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        table = self.to_dataframe().to_html(index=False, float_format=lambda v: f"{v:.6g}")
        head = self.format().replace("\n", "<br>")
        return f"<div><p><b>{head}</b></p>{table}</div>"

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
