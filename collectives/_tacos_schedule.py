"""Synthesized collectives as shared-format schedules: All-Gather, Reduce-Scatter, All-Reduce.

All-Gather is the best of several randomized TACOS trials. Reduce-Scatter is All-Gather
synthesized on the transposed graph and run backwards in time: every copy becomes a
reduction flowing towards the chunk's owner. All-Reduce is Reduce-Scatter followed by
All-Gather, the gather of a chunk starting as soon as its owner has reduced it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainsim.topology import Topology

from ._errors import AlgorithmError, ConfigError
from ._local import FloatArray, IntArray
from ._ops import CollectiveOp
from ._schedule import Phase, Schedule
from ._tacos import GatherRun, gather_once
from ._tacos_network import LinkGraph, link_graph

__all__ = ["TACOS_OPS", "TacosResult", "synthesize_tacos", "tacos_lower_bound_us"]

#: Operations the synthesizer produces.
TACOS_OPS: tuple[CollectiveOp, ...] = (
    CollectiveOp.ALL_GATHER,
    CollectiveOp.REDUCE_SCATTER,
    CollectiveOp.ALL_REDUCE,
)


@dataclass(frozen=True, eq=False)
class TacosResult:
    """A synthesized collective: its schedule, the synthesizer's timing and how it was made.

    ``start_us``/``end_us`` give each transfer of ``schedule`` its slot; ``ports`` lists the
    physical link ids (``topology.graph.edges()`` order, ``-1`` pads) of its route, each
    busy from ``port_start_us`` to ``port_end_us`` (store and forward through switches).
    ``time_us`` is the synthesized completion time and ``trial_times_us`` the time of every
    trial (for All-Reduce, Reduce-Scatter plus All-Gather of the same trial).
    """

    schedule: Schedule
    time_us: float
    chunk_bytes: float
    chunks_per_npu: int
    trial_times_us: tuple[float, ...]
    synthesis_s: float
    seed: int
    start_us: FloatArray
    end_us: FloatArray
    ports: IntArray
    port_start_us: FloatArray
    port_end_us: FloatArray
    lower_bound_us: float

    @property
    def efficiency(self) -> float:
        """Fraction of the bandwidth lower bound reached (1.0 is optimal)."""
        return self.lower_bound_us / self.time_us if self.time_us > 0 else 1.0

    def to_dict(self) -> dict[str, object]:
        """Summary figures for JSON output."""
        return {
            "op": self.schedule.op.value,
            "algorithm": "tacos",
            "npus": len(self.schedule.ranks),
            "time_us": self.time_us,
            "lower_bound_us": self.lower_bound_us,
            "efficiency": self.efficiency,
            "chunk_bytes": self.chunk_bytes,
            "chunks_per_npu": self.chunks_per_npu,
            "transfers": self.schedule.num_transfers,
            "steps": self.schedule.num_steps,
            "trial_times_us": list(self.trial_times_us),
            "synthesis_s": self.synthesis_s,
            "seed": self.seed,
        }


def synthesize_tacos(
    op: CollectiveOp | str,
    size_bytes: float,
    topology: Topology,
    *,
    ranks: Sequence[int] | None = None,
    chunks_per_npu: int = 1,
    trials: int = 1,
    seed: int = 0,
) -> TacosResult:
    """Synthesize ``op`` on ``topology`` with TACOS and return the best trial's schedule.

    ``size_bytes`` follows the package convention (``CollectiveOp``): the per-rank shard for
    all-gather, the reduced buffer for reduce-scatter and all-reduce. Each member's part is
    cut into ``chunks_per_npu`` chunks. The same ``seed`` gives the same schedule.

    >>> from trainsim.topology import torus
    >>> r = synthesize_tacos("all_gather", 1 << 20, torus([4, 4]), seed=1)
    >>> r.schedule.num_transfers, round(r.efficiency, 2) > 0.5
    (240, True)
    """
    operation = CollectiveOp.parse(op)
    if operation not in TACOS_OPS:
        allowed = ", ".join(o.value for o in TACOS_OPS)
        raise AlgorithmError(f"tacos synthesizes {allowed}; got {operation.value}")
    if chunks_per_npu < 1:
        raise ConfigError(f"chunks_per_npu must be >= 1, got {chunks_per_npu}")
    if trials < 1:
        raise ConfigError(f"trials must be >= 1, got {trials}")
    if size_bytes < 0:
        raise ConfigError(f"size_bytes must be >= 0, got {size_bytes}")
    began = time.perf_counter()
    graph = link_graph(topology, ranks)
    m = graph.num_members
    shard = size_bytes if operation is CollectiveOp.ALL_GATHER else size_bytes / m
    chunk_bytes = shard / chunks_per_npu
    rng = np.random.default_rng(seed)
    gathers: list[GatherRun] = []
    scatters: list[GatherRun] = []
    if operation is not CollectiveOp.ALL_GATHER:
        reverse = graph.reversed()
        scatters = [
            gather_once(reverse, chunk_bytes, chunks_per_npu, rng, time_reversed=True)
            for _ in range(trials)
        ]
    if operation is not CollectiveOp.REDUCE_SCATTER:
        gathers = [gather_once(graph, chunk_bytes, chunks_per_npu, rng) for _ in range(trials)]
    times = [
        (scatters[i].time_us if scatters else 0.0) + (gathers[i].time_us if gathers else 0.0)
        for i in range(trials)
    ]
    best_rs = min(scatters, key=lambda r: r.time_us) if scatters else None
    best_ag = min(gathers, key=lambda r: r.time_us) if gathers else None
    parts = []
    if best_rs is not None:
        parts.append(_scatter_part(best_rs, graph, chunk_bytes))
    if best_ag is not None:
        offset = best_rs.time_us if best_rs is not None else 0.0
        parts.append(_gather_part(best_ag, graph, chunk_bytes, offset))
    schedule, order = _assemble(operation, parts, graph, size_bytes, chunks_per_npu)

    def joined(key: str) -> FloatArray:
        return np.concatenate([getattr(p, key) for p in parts])[order]

    total = (best_rs.time_us if best_rs else 0.0) + (best_ag.time_us if best_ag else 0.0)
    return TacosResult(
        schedule=schedule,
        time_us=total,
        chunk_bytes=chunk_bytes,
        chunks_per_npu=chunks_per_npu,
        trial_times_us=tuple(times),
        synthesis_s=time.perf_counter() - began,
        seed=seed,
        start_us=joined("start"),
        end_us=joined("end"),
        ports=joined("ports").astype(np.int64),
        port_start_us=joined("port_start"),
        port_end_us=joined("port_end"),
        lower_bound_us=_lower_bound(operation, shard * m, graph),
    )


def tacos_lower_bound_us(
    op: CollectiveOp | str,
    size_bytes: float,
    topology: Topology,
    ranks: Sequence[int] | None = None,
) -> float:
    """Bandwidth lower bound of ``op`` (sizes as in ``synthesize``).

    All-Gather: every member must take in ``(N-1)/N`` of the output through its ingress
    links; Reduce-Scatter the same through its egress links; All-Reduce both.
    """
    operation = CollectiveOp.parse(op)
    graph = link_graph(topology, ranks)
    m = graph.num_members
    total = size_bytes * m if operation is CollectiveOp.ALL_GATHER else size_bytes
    return _lower_bound(operation, total, graph)


def _lower_bound(op: CollectiveOp, total_bytes: float, graph: LinkGraph) -> float:
    m = graph.num_members
    if m <= 1:
        return 0.0
    moved = (m - 1) / m * total_bytes
    gather = moved / float(graph.ingress_bytes_per_us.min())
    scatter = moved / float(graph.egress_bytes_per_us.min())
    if op is CollectiveOp.ALL_GATHER:
        return gather
    if op is CollectiveOp.REDUCE_SCATTER:
        return scatter
    return gather + scatter


@dataclass(frozen=True)
class _Part:
    """Transfers of one phase in NPU ids, with times and the in-phase dependency lists."""

    op: CollectiveOp
    src: IntArray
    dst: IntArray
    chunk: IntArray
    start: FloatArray
    end: FloatArray
    deps: list[IntArray]
    link: IntArray
    reduce: bool
    ports: IntArray
    port_start: FloatArray
    port_end: FloatArray


def _gather_part(run: GatherRun, graph: LinkGraph, chunk_bytes: float, offset: float) -> _Part:
    hop_end = np.cumsum(graph.hop_time_us(chunk_bytes), axis=1)[run.link]
    hop_start = hop_end - graph.hop_time_us(chunk_bytes)[run.link]
    begin = (run.start_us + offset)[:, None]
    return _Part(
        CollectiveOp.ALL_GATHER,
        graph.members[graph.src[run.link]],
        graph.members[graph.dst[run.link]],
        run.chunk,
        run.start_us + offset,
        run.end_us + offset,
        [run.dep],
        run.link,
        False,
        graph.hops[run.link],
        begin + hop_start,
        begin + hop_end,
    )


def _scatter_part(run: GatherRun, graph: LinkGraph, chunk_bytes: float) -> _Part:
    # The run was made on the transposed graph, where link v carries dst[v] -> src[v]; run
    # backwards, data flows src[v] -> dst[v] and a transfer waits for the ones that left
    # its sender later in the run (its children in the chunk's tree).
    reverse = graph.reversed()
    hop_end = np.cumsum(reverse.hop_time_us(chunk_bytes), axis=1)[run.link]
    hop_start = hop_end - reverse.hop_time_us(chunk_bytes)[run.link]
    n = run.link.size
    children = run.dep
    has = children >= 0
    order = np.argsort(children[has], kind="stable")
    parents = children[has][order]
    kids = np.flatnonzero(has)[order]
    counts = np.bincount(parents, minlength=n) if n else np.zeros(0, dtype=np.int64)
    width = int(counts.max()) if counts.size else 0
    deps = np.full((n, max(width, 1)), -1, dtype=np.int64)
    if parents.size:
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        deps[parents, np.arange(parents.size) - first[parents]] = kids
    return _Part(
        CollectiveOp.REDUCE_SCATTER,
        graph.members[graph.src[run.link]],
        graph.members[graph.dst[run.link]],
        run.chunk,
        run.time_us - run.end_us,
        run.time_us - run.start_us,
        [deps[:, j] for j in range(deps.shape[1])],
        run.link,
        True,
        # The transposed graph lists hops last first: flip them back into route order.
        reverse.hops[run.link][:, ::-1],
        (run.time_us - (run.start_us[:, None] + hop_end))[:, ::-1],
        (run.time_us - (run.start_us[:, None] + hop_start))[:, ::-1],
    )


def _assemble(
    op: CollectiveOp,
    parts: list[_Part],
    graph: LinkGraph,
    size_bytes: float,
    cpn: int,
) -> tuple[Schedule, IntArray]:
    m = graph.num_members
    members = graph.members
    k_chunks = m * cpn
    offsets = np.cumsum([0] + [p.src.size for p in parts])
    columns: list[list[IntArray]] = []
    for index, part in enumerate(parts):
        shifted = [np.where(d >= 0, d + offsets[index], -1) for d in part.deps]
        if index == 1:
            # A chunk's gather leaves its owner once the owner holds the whole reduction.
            prev = parts[0]
            final = prev.dst == members[prev.chunk // cpn]
            into_owner = np.full((k_chunks, 1), -1, dtype=np.int64)
            if final.any():
                rows = prev.chunk[final]
                order = np.argsort(rows, kind="stable")
                counts = np.bincount(rows, minlength=k_chunks)
                into_owner = np.full((k_chunks, max(int(counts.max()), 1)), -1, dtype=np.int64)
                first = np.concatenate([[0], np.cumsum(counts)[:-1]])
                into_owner[rows[order], np.arange(rows.size) - first[rows[order]]] = np.flatnonzero(
                    final
                )[order]
            roots = part.deps[0] < 0
            for j in range(into_owner.shape[1]):
                shifted.append(np.where(roots, into_owner[part.chunk, j], -1))
        columns.append(shifted)
    width = max((len(c) for c in columns), default=1)
    total = int(offsets[-1])
    deps = np.full((total, width), -1, dtype=np.int64)
    for index, cols in enumerate(columns):
        for j, col in enumerate(cols):
            deps[offsets[index] : offsets[index + 1], j] = col

    def cat_int(key: str) -> IntArray:
        return np.concatenate([getattr(p, key) for p in parts]).astype(np.int64)

    src, dst, chunk, link = cat_int("src"), cat_int("dst"), cat_int("chunk"), cat_int("link")
    start = np.concatenate([p.start for p in parts]) if parts else np.zeros(0)
    end = np.concatenate([p.end for p in parts]) if parts else np.zeros(0)
    phase = np.concatenate([np.full(p.src.size, i, dtype=np.int64) for i, p in enumerate(parts)])
    reduce = np.concatenate([np.full(p.src.size, p.reduce) for p in parts]).astype(bool)
    # Steps are distinct start times; a dependency always starts strictly earlier.
    order = np.lexsort((np.arange(total), np.round(start, 6), phase))
    rank = np.empty(total, dtype=np.int64)
    rank[order] = np.arange(total)
    deps = np.where(deps >= 0, rank[np.maximum(deps, 0)], -1)[order]
    key = np.round(start[order], 6) + phase[order] * (float(end.max()) + 1.0 if total else 0.0)
    step = np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64)
    src, dst, chunk, link, phase = src[order], dst[order], chunk[order], link[order], phase[order]
    start, end, reduce = start[order], end[order], reduce[order]
    phase_first = np.zeros(len(parts) + 1, dtype=np.int64)
    for i in range(len(parts)):
        sel = step[phase == i]
        phase_first[i] = int(sel.min()) if sel.size else 0
    chunk_bytes = size_bytes / (m * cpn) if op is not CollectiveOp.ALL_GATHER else size_bytes / cpn
    owners = members[np.arange(k_chunks) // cpn]
    everyone = np.full(k_chunks, -1, dtype=np.int64)
    chunk_src = owners if op is CollectiveOp.ALL_GATHER else everyone
    chunk_dst = owners if op is CollectiveOp.REDUCE_SCATTER else everyone
    schedule = Schedule(
        op=op,
        algorithm="tacos",
        ranks=tuple(int(r) for r in members),
        size_bytes=float(size_bytes),
        phases=tuple(Phase(p.op, "tacos", -1, m) for p in parts),
        src=src,
        dst=dst,
        step=step,
        phase=phase,
        phase_step=step - phase_first[phase],
        transfer_bytes=np.full(total, chunk_bytes),
        compute_bytes=np.where(reduce, chunk_bytes, 0.0),
        reduce=reduce,
        deps=deps,
        chunk_ptr=np.arange(total + 1, dtype=np.int64),
        chunk_lo=chunk,
        chunk_hi=chunk + 1,
        num_chunks=k_chunks,
        chunk_src=chunk_src,
        chunk_dst=chunk_dst,
    )
    return schedule, order
