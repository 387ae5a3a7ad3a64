"""Cost models behind one interface: analytical alpha-beta and link-level congestion-aware."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from trainsim.topology import Topology

from ._algorithms import local_schedule
from ._compose import Plan, build_schedule, plan_phases
from ._errors import GroupError
from ._evaluate import evaluate, routes_for
from ._local import FloatArray, IntArray, LocalSchedule
from ._ops import CollectiveOp
from ._schedule import Schedule
from ._streams import run_streams
from ._system import SystemConfig

__all__ = [
    "AnalyticalModel",
    "CollectiveCost",
    "CollectiveRequest",
    "CongestionModel",
    "CostModel",
]


@dataclass(frozen=True)
class CollectiveRequest:
    """One collective to cost: operation, per-rank size, group, network, algorithm(s), system."""

    op: CollectiveOp
    size_bytes: float
    ranks: tuple[int, ...]
    topology: Topology
    algorithm: str | tuple[str, ...] = "ring"
    system: SystemConfig = field(default_factory=SystemConfig)

    def __post_init__(self) -> None:
        if self.size_bytes < 0:
            raise GroupError(f"size_bytes must be >= 0, got {self.size_bytes}")


@dataclass(frozen=True)
class CollectiveCost:
    """The predicted time of a collective and the bandwidths nccl-tests would report."""

    op: CollectiveOp
    size_bytes: float
    group_size: int
    algorithm: str
    model: str
    time_ns: float
    phase_times_ns: tuple[float, ...] = ()

    @property
    def time_us(self) -> float:
        """Time in microseconds."""
        return self.time_ns / 1000.0

    @property
    def algbw_gbps(self) -> float:
        """Algorithm bandwidth as nccl-tests defines it (1e9 bytes/s)."""
        if self.time_ns <= 0:
            return 0.0
        return self.op.algbw_bytes(self.size_bytes, self.group_size) / self.time_ns

    @property
    def busbw_gbps(self) -> float:
        """Bus bandwidth as nccl-tests defines it (1e9 bytes/s)."""
        return self.algbw_gbps * self.op.bus_factor(self.group_size)

    def to_dict(self) -> dict[str, object]:
        """Plain-data form for JSON output."""
        return {
            "op": self.op.value,
            "size_bytes": self.size_bytes,
            "group_size": self.group_size,
            "algorithm": self.algorithm,
            "model": self.model,
            "time_ns": self.time_ns,
            "time_us": self.time_us,
            "algbw_gbps": self.algbw_gbps,
            "busbw_gbps": self.busbw_gbps,
            "phase_times_ns": list(self.phase_times_ns),
        }


class CostModel(ABC):
    """Interface of every collective cost model: one request in, one cost out."""

    name: str = "abstract"

    @abstractmethod
    def estimate(self, request: CollectiveRequest) -> CollectiveCost:
        """Predict the time of ``request``."""


def _empty(request: CollectiveRequest, name: str, algorithm: str) -> CollectiveCost:
    return CollectiveCost(request.op, request.size_bytes, len(request.ranks), algorithm, name, 0.0)


def _streams(request: CollectiveRequest) -> tuple[int, float]:
    """Number of streams (dataset splits) and the per-rank bytes of each."""
    return request.system.streams(
        request.size_bytes,
        request.topology.num_npus,
        gather=request.op is CollectiveOp.ALL_GATHER,
    )


def _split_schedules(request: CollectiveRequest) -> list[Schedule]:
    system = request.system
    splits, chunk = _streams(request)
    variants = 2 if _uses_variants(request.algorithm) and system.astra_compatible else 1
    built = [
        build_schedule(
            request.op,
            request.ranks,
            chunk,
            topology=request.topology,
            algorithm=request.algorithm,
            astra=system.astra_compatible,
            variant=v,
        )
        for v in range(variants)
    ]
    return [built[s % variants] for s in range(splits)]


def _uses_variants(algorithm: str | tuple[str, ...]) -> bool:
    names = [algorithm] if isinstance(algorithm, str) else list(algorithm)
    return any(n.lower().replace("_", "") in ("doublebinarytree", "dbt", "tree") for n in names)


def _num_nodes(topology: Topology) -> int:
    return int(max(topology.graph.nodes)) + 1 if topology.graph.number_of_nodes() else 0


class AnalyticalModel(CostModel):
    """Congestion-unaware alpha-beta cost: each message costs ``hops*latency + bytes/bandwidth``.

    Messages never wait for each other. With ``SystemConfig.astra_default()`` (or an ASTRA-sim
    system file) it follows ASTRA-sim's analytical backend: endpoint delay per message, local
    memory reductions, dataset splits pipelined through the phases. Regular groups on a
    multi-dimensional network take a closed form over one member's steps; anything else
    (irregular groups, faulty networks, the tree algorithm) walks the full schedule.
    """

    name = "analytical"

    def estimate(self, request: CollectiveRequest) -> CollectiveCost:
        """Predict the time of ``request`` without congestion."""
        if len(request.ranks) <= 1:
            return _empty(request, self.name, str(request.algorithm))
        plan = _cached_plan(request.op, request.ranks, request.topology, request.algorithm)
        name = "+".join(dict.fromkeys(p.algorithm for p in plan.phases))
        fast = _fast_phase_times(plan, request)
        if fast is not None:
            splits, _ = _streams(request)
            total = _pipeline(fast, [p.dim for p in plan.phases], splits, request.system)
            return CollectiveCost(
                request.op,
                request.size_bytes,
                len(request.ranks),
                name,
                self.name,
                total,
                tuple(fast),
            )
        schedules = _split_schedules(request)
        routes = [routes_for(s, request.topology) for s in schedules[:2]]
        routes = [routes[i % len(routes)] for i in range(len(schedules))]
        result = evaluate(
            schedules,
            routes,
            request.system,
            congestion=False,
            num_nodes=_num_nodes(request.topology),
        )
        return CollectiveCost(
            request.op, request.size_bytes, len(request.ranks), name, self.name, result.time_ns
        )


class CongestionModel(CostModel):
    """Link-level, congestion-aware execution of the schedule on the graph.

    Every message is routed over the topology's links and stored and forwarded hop by hop;
    a link carries one message at a time, so flows that share a link queue behind each other.
    Works on any topology and any number of dimensions.
    """

    name = "congestion"

    def estimate(self, request: CollectiveRequest) -> CollectiveCost:
        """Predict the time of ``request`` with link contention."""
        if len(request.ranks) <= 1:
            return _empty(request, self.name, str(request.algorithm))
        schedules = _split_schedules(request)
        first = routes_for(schedules[0], request.topology)
        second = (
            routes_for(schedules[1], request.topology)
            if (len(schedules) > 1 and schedules[1] is not schedules[0])
            else first
        )
        routes = [first if i % 2 == 0 else second for i in range(len(schedules))]
        result = evaluate(
            schedules,
            routes,
            request.system,
            congestion=True,
            num_nodes=_num_nodes(request.topology),
        )
        return CollectiveCost(
            request.op,
            request.size_bytes,
            len(request.ranks),
            schedules[0].algorithm,
            self.name,
            result.time_ns,
        )


@lru_cache(maxsize=256)
def _cached_plan(
    op: CollectiveOp, ranks: tuple[int, ...], topology: Topology, algorithm: str | tuple[str, ...]
) -> Plan:
    # The engine asks the same collectives again and again; planning is the costly part.
    return plan_phases(op, ranks, topology, algorithm)


def _phase_buffers(plan: Plan, size_bytes: float) -> list[float]:
    """Per-rank buffer each phase works on (the fractions of the local schedules refer to it)."""
    op = plan.op
    out = []
    reduced = 1
    if op is CollectiveOp.ALL_GATHER:
        grown = 1
        for ph in plan.phases:
            out.append(size_bytes * grown)
            grown *= ph.group_size
        return out
    for ph in plan.phases:
        if ph.op is CollectiveOp.REDUCE_SCATTER:
            out.append(size_bytes / reduced)
            reduced *= ph.group_size
        elif ph.op is CollectiveOp.ALL_GATHER:
            reduced //= ph.group_size
            out.append(size_bytes / (reduced * ph.group_size))
        else:
            out.append(size_bytes / reduced)
    return out


@lru_cache(maxsize=512)
def _profile(local: LocalSchedule) -> tuple[IntArray, FloatArray, IntArray, FloatArray, IntArray]:
    mine = np.nonzero(local.src == 0)[0]
    steps = local.step[mine]
    distance = (local.dst[mine] - local.src[mine]) % local.n
    starts = np.nonzero(np.r_[True, steps[1:] != steps[:-1]])[0]
    return (
        steps,
        local.size_frac[mine],
        distance.astype(np.int64),
        local.compute_frac[mine],
        starts.astype(np.int64),
    )


def _fast_phase_times(plan: Plan, request: CollectiveRequest) -> list[float] | None:
    topology = request.topology
    system = request.system
    if not topology.dims or plan.phases[0].dim < 0:
        return None
    _, chunk = _streams(request)
    buffers = _phase_buffers(plan, chunk)
    endpoint = system.endpoint_delay_ns
    out = []
    for ph, buf in zip(plan.phases, buffers, strict=True):
        dim = topology.dims[ph.dim]
        # A mesh line is not vertex-symmetric, so one member's steps do not bound the others.
        # A partial ring is not either; any subset of a switch or fully connected dimension
        # is (every pair is the same hops apart), so it takes the closed form too.
        partial = dim.npus != ph.group_size
        if dim.kind.value == "Mesh" or (partial and dim.kind.value == "Ring"):
            return None
        local = local_schedule(ph.algorithm, ph.op, ph.group_size, astra=system.astra_compatible)
        if not local.symmetric or local.uses_switch:
            return None
        _, size_frac, distance, compute_frac, starts = _profile(local)
        hops = _hops(dim.kind.value, dim.npus, distance)
        wire = hops * dim.latency_us * 1000.0 + size_frac * buf / dim.bandwidth_gbps
        cost = wire + endpoint + system.reduce_time_ns(1.0) * compute_frac * buf
        out.append(endpoint + float(np.maximum.reduceat(cost, starts).sum()))
    return out


def _hops(kind: str, n: int, distance: IntArray) -> FloatArray:
    if kind == "Ring":
        d = distance % n
        return np.minimum(d, n - d).astype(np.float64)
    if kind == "Switch":
        return np.where(distance != 0, 2.0, 0.0)
    return np.where(distance != 0, 1.0, 0.0)


def _pipeline(
    phase_times: Sequence[float], phase_dims: Sequence[int], splits: int, system: SystemConfig
) -> float:
    """Finish time of all splits flowing through the phases, queued per dimension."""
    done = run_streams(
        splits,
        phase_dims,
        system.active_chunks_per_dimension,
        system.scheduling_policy,
        lambda _s, p, start: start + phase_times[p],
        0.0,
        max,
        float,
    )
    return max((row[-1] for row in done), default=0.0) if phase_times else 0.0
