"""``simulate(workload, system)``: compile the graphs, run the event loop, wrap the result."""

from __future__ import annotations

import gc
from dataclasses import replace
from functools import cache

from trainsim import chakra_et
from trainsim.collectives import CollectiveError, collective_time_us, compressed_sync_time_us
from trainsim.engine._errors import WorkloadError
from trainsim.engine._program import Program, compile_program, stretch_beside
from trainsim.engine._result import StepMetrics, StepResult
from trainsim.engine._sim import CollectiveCoster, run_programs
from trainsim.engine._system import System
from trainsim.engine._workload import Workload

__all__ = ["simulate", "system_coster"]

#: Group kinds whose collectives synchronize gradients (what compression applies to).
_GRADIENT_KINDS = frozenset(("dp", "dp_cp", "edp"))
_COMPRESSIBLE = frozenset(("all_reduce", "reduce_scatter"))


#: Precisions a roofline-costed node may compute in.
_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8")


def workload_dtype(graph: chakra_et.ETGraph, name: str) -> str:
    """The compute precision an ET states in its metadata (``bf16`` when it states none)."""
    value = chakra_et.get_attr(graph.metadata, "dtype")
    if value is None:
        return "bf16"
    if value not in _DTYPES:
        raise WorkloadError(f"{name}: metadata dtype={value!r} is not one of {', '.join(_DTYPES)}")
    return str(value)


def _comm_kinds(program: Program, workload: Workload) -> list[str]:
    """Group kind of each communication node (``tp``, ``dp``, ``pp``...), ``""`` when unknown.

    A collective's kind is its ``stream`` attribute or its process group's recorded kind; a
    send's or receive's is its own ``stream`` attribute (the generator writes ``pp`` on its
    pipeline exchanges). Nothing else names a kind: a converted trace's process groups and
    point-to-point pairs stay unknown rather than being guessed (the breakdown then calls them
    ``collective`` and ``p2p``).
    """
    kinds = ["" for _ in program.ids]
    for idx, (_, _, pg) in program.collectives.items():
        kinds[idx] = program.streams.get(idx) or workload.group_kinds.get(pg) or ""
    for idx in program.p2p:
        kinds[idx] = program.p2p_streams.get(idx, "")
    return kinds


def _all_comm_kinds(programs: dict[int, Program], workload: Workload) -> dict[int, list[str]]:
    """Group kinds of every rank's nodes, computed once per shared compiled graph."""
    shared: dict[int, list[str]] = {}
    out: dict[int, list[str]] = {}
    for rank, program in programs.items():
        key = id(program.kinds)
        kinds = shared.get(key) if not program.p2p else None
        if kinds is None:
            kinds = _comm_kinds(program, workload)
            shared[key] = kinds
        out[rank] = kinds
    return out


#: One coster per System object, shared by every simulation and fast evaluation of it.
_COSTERS: dict[int, tuple[System, CollectiveCoster]] = {}


def system_coster(system: System) -> CollectiveCoster:
    """The collective coster of ``system`` (ns), memoised for as long as the system lives.

    A collective costs what its algorithm's schedule costs on the topology its group spans,
    and gradient reductions of a compressing system what the compressed exchange costs.
    """
    entry = _COSTERS.get(id(system))
    if entry is not None and entry[0] is system:
        return entry[1]
    topo = system.topology
    compression = system.compression
    memory_bandwidth_gbps = system.device_spec.hbm_bandwidth_gbps

    @cache
    def coster(op: str, size: int, group: tuple[int, ...], kind: str) -> float:
        if len(group) <= 1 or (size == 0 and op != "barrier"):
            return 0.0
        algorithm = system.algorithm_for(op)
        try:
            if compression is not None and kind in _GRADIENT_KINDS and op in _COMPRESSIBLE:
                return 1000.0 * compressed_sync_time_us(
                    compression,
                    size,
                    group,
                    topo,
                    algorithm,
                    system.cost_model,
                    system.collective,
                    op=op,
                    memory_bandwidth_gbps=memory_bandwidth_gbps,
                )
            return 1000.0 * collective_time_us(
                op, size, group, topo, algorithm, system.cost_model, system.collective
            )
        except CollectiveError as exc:
            raise WorkloadError(f"{op} of {size} bytes on ranks {group[:8]}: {exc}") from None

    if len(_COSTERS) > 64:  # systems of finished sweeps: drop them rather than keep them all
        _COSTERS.clear()
    _COSTERS[id(system)] = (system, coster)
    return coster


def simulate(
    workload: Workload,
    system: System,
    *,
    metrics: StepMetrics | None = None,
    label: str | None = None,
) -> StepResult:
    """Simulate one step of ``workload`` on ``system`` and return its ``StepResult``.

    Per-rank workloads simulate every rank; rank-class workloads simulate one representative
    per class, whose collectives wait only for the other simulated members of their groups.
    """
    # Compiling and simulating allocate millions of acyclic objects; full collections would
    # walk them all for nothing, so the collector is paused for the whole run.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _simulate(workload, system, metrics=metrics, label=label)
    finally:
        if was_enabled:
            gc.enable()


def _simulate(
    workload: Workload,
    system: System,
    *,
    metrics: StepMetrics | None,
    label: str | None,
) -> StepResult:
    """``simulate`` with the garbage collector paused by the caller."""
    topo = system.topology
    if workload.world_size > topo.num_npus:
        raise WorkloadError(
            f"{workload.name}: {workload.world_size} ranks do not fit the {topo.num_npus}-NPU "
            f"network {system.network!r}"
        )
    device = system.device_spec
    sched = system.scheduling
    notes: list[str] = []
    programs: dict[int, Program] = {}
    compiled: dict[int, Program] = {}  # id(graph) -> program of the first rank that ran it
    for rank, graph in sorted(workload.graphs.items()):
        template = compiled.get(id(graph))
        if template is not None and not template.p2p:
            # SPMD ranks sharing one graph object share its compiled arrays (read-only).
            programs[rank] = replace(template, rank=rank)
            continue
        programs[rank] = compile_program(
            rank,
            graph,
            device,
            dtype=workload_dtype(graph, workload.name),
            duration_scale=system.duration_scale,
            min_op_ns=sched.min_op_ns,
            memory_bandwidth_gbps=system.host_memory_bandwidth_gbps,
            world_size=workload.world_size,
            notes=notes,
        )
        compiled.setdefault(id(graph), programs[rank])

    group_ids: dict[tuple[int, str], int] = {}
    id_of_group: dict[tuple[int, ...], int] = {}
    groups: list[tuple[int, ...]] = []

    def group_of(rank: int, pg: str) -> int:
        key = (rank, pg)
        gid = group_ids.get(key)
        if gid is None:
            group = tuple(sorted(workload.group_ranks(pg)))
            if rank not in group:
                raise WorkloadError(
                    f"{workload.name}: rank {rank} issues a collective on process group {pg!r} "
                    f"{group[:8]} that does not contain it"
                )
            gid = id_of_group.setdefault(group, len(groups))
            if gid == len(groups):
                groups.append(group)
            group_ids[key] = gid
        return gid

    coster = system_coster(system)

    stretched: set[int] = set()
    for rank, program in programs.items():
        # Ranks sharing a compiled graph share its durations: stretch them once.
        if not program.beside or id(program.duration_ns) in stretched:
            continue
        stretched.add(id(program.duration_ns))

        def collective_ns(j: int, rank: int = rank, program: Program = program) -> float:
            op, size, pg = program.collectives[j]
            kind = program.streams.get(j, "")
            return coster(op, size, groups[group_of(rank, pg)], kind)

        stretch_beside(program, device, collective_ns)

    timeline = run_programs(
        programs,
        group_of,
        groups,
        coster,
        compute_streams=sched.compute_streams,
        comm_streams=sched.comm_streams,
        cpu_streams=sched.cpu_streams,
        issue_by_id=sched.issue_order == "node_id",
        overlap_comm=sched.overlap_comm,
        measured_comm=sched.measured_comm,
        comm_stream_per_kind=sched.comm_stream_per_kind,
    )
    return StepResult(
        programs=programs,
        timeline=timeline,
        comm_kinds=_all_comm_kinds(programs, workload),
        multiplicity=dict(workload.multiplicity),
        world_size=workload.world_size,
        metrics=metrics,
        label=label or workload.name,
        notes=notes + timeline.notes,
    )
