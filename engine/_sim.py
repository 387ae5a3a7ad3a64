"""The discrete-event core: run compiled rank programs on a system and time every node.

One heap of completion events and a clock. A node becomes ready when all its dependencies
have completed, waits for a free slot on its stream (GPU compute, communication, CPU), and
issues in ascending node id (or file order). A collective starts when every simulated member
of its group has issued it (members outside the simulation are SPMD copies of one that is
inside) and costs what the configured algorithm and cost model say for that group on the
topology. A send costs the point-to-point transfer and completes on arrival; a receive takes no
slot and completes at the later of its issue and the matching send's arrival.

Every rank's nodes live in one flat numbering (rank offset + index) so the hot loop touches
plain lists only.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from heapq import heappop, heappush

from trainsim.engine._errors import DeadlockError, WorkloadError
from trainsim.engine._program import K_COLL, K_CPU, K_NOOP, K_RECV, K_SEND, Program

__all__ = [
    "CollectiveCoster",
    "RawTimeline",
    "comm_stream_slots",
    "program_slots",
    "run_programs",
]

#: (operation, size in bytes, group ranks, group kind such as "tp"/"dp"/"pp", "" when
#: unknown) -> time in ns
CollectiveCoster = Callable[[str, int, tuple[int, ...], str], float]

_NO_SLOT = -1


@dataclass
class RawTimeline:
    """Start and end time (ns) of every node of every simulated rank, and what was noticed."""

    start_ns: dict[int, list[float]]
    end_ns: dict[int, list[float]]
    notes: list[str]


def run_programs(
    programs: dict[int, Program],
    group_of: Callable[[int, str], int],
    groups: list[tuple[int, ...]],
    coster: CollectiveCoster,
    *,
    compute_streams: int = 1,
    comm_streams: int = 1,
    cpu_streams: int = 1,
    issue_by_id: bool = True,
    overlap_comm: bool = True,
    measured_comm: bool = False,
    comm_stream_per_kind: bool = False,
) -> RawTimeline:
    """Simulate every program to completion; raise ``DeadlockError`` if some never finish.

    ``group_of(rank, pg_name)`` returns the id of the rank's group, an index into ``groups``
    (the sorted member ranks): ids keep the hot loop from hashing long rank tuples. With
    ``measured_comm`` a communication node that recorded a duration replays it: a collective
    takes the shortest of its members' recorded durations (the last to arrive waited least),
    a send its own. With ``comm_stream_per_kind`` every group kind (a collective's ``stream``
    attribute; ``pp`` for sends) has its own ``comm_streams`` slots, as NCCL communicators of
    different groups run on their own CUDA streams; otherwise all communication shares them.
    """
    # The loop allocates millions of short-lived tuples; with the collector on, each full
    # collection walks every live container (all ranks' arrays), which made time grow faster
    # than the node count. Nothing here forms reference cycles.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(
            programs,
            group_of,
            groups,
            coster,
            compute_streams=compute_streams,
            comm_streams=comm_streams,
            cpu_streams=cpu_streams,
            issue_by_id=issue_by_id,
            overlap_comm=overlap_comm,
            measured_comm=measured_comm,
            comm_stream_per_kind=comm_stream_per_kind,
        )
    finally:
        if was_enabled:
            gc.enable()


def _run(
    programs: dict[int, Program],
    group_of: Callable[[int, str], int],
    groups: list[tuple[int, ...]],
    coster: CollectiveCoster,
    *,
    compute_streams: int,
    comm_streams: int,
    cpu_streams: int,
    issue_by_id: bool,
    overlap_comm: bool,
    measured_comm: bool,
    comm_stream_per_kind: bool,
) -> RawTimeline:
    """The event loop of ``run_programs`` (with the garbage collector paused by the caller)."""
    ranks = sorted(programs)
    simulated = set(ranks)
    stream_slot = comm_stream_slots(
        [programs[rank] for rank in ranks], comm_stream_per_kind and overlap_comm
    )
    nslots = 2 + len(stream_slot)

    # Flat numbering, interleaved by rank: local node i of rank position p is g = i * R + p.
    # SPMD ranks advance in near lockstep, so the nodes touched together sit side by side in
    # memory; rank-major numbering scattered them over the whole array (cache misses made
    # 1,024 ranks three times slower per node than 256). Shorter programs are padded with
    # nodes that never become ready.
    width = len(ranks)
    length = max((len(programs[rank]) for rank in ranks), default=0)
    total = width * length
    real_nodes = sum(len(programs[rank]) for rank in ranks)
    kind = [K_NOOP] * total
    slot = [_NO_SLOT] * total
    duration = [0.0] * total
    indegree = [1] * total  # padding keeps 1: it is never released
    order = [0] * total
    # Children stay in local numbering, shared by ranks that share a compiled graph; the hot
    # loop maps them to flat numbers. Slots are derived once per distinct graph.
    local_children: list[list[list[int]]] = []
    slots_of: dict[int, list[int]] = {}
    for p, rank in enumerate(ranks):
        program = programs[rank]
        n = len(program)
        pad = length - n
        kind[p::width] = program.kinds + [K_NOOP] * pad
        slots = slots_of.get(id(program.kinds))
        if slots is None:
            slots = program_slots(program, overlap_comm, stream_slot)
            slots_of[id(program.kinds)] = slots
        slot[p::width] = slots + [_NO_SLOT] * pad
        duration[p::width] = program.duration_ns + [0.0] * pad
        local_children.append(program.children)
        indegree[p::width] = program.indegree + [1] * pad
        order[p::width] = (program.ids if issue_by_id else list(range(n))) + [0] * pad

    start = [0.0] * total
    end = [-1.0] * total
    free = [compute_streams, cpu_streams, *([comm_streams] * (nslots - 2))] * len(ranks)
    ready: list[list[tuple[int, int]]] = [[] for _ in range(nslots * len(ranks))]
    events: list[tuple[float, int]] = []

    occurrences: dict[tuple[int, int], int] = {}
    pending_coll: dict[tuple[int, int], list[int]] = {}
    needed: dict[int, int] = {}
    sends_arrived: dict[tuple[int, int, int, int], deque[float]] = {}
    recvs_waiting: dict[tuple[int, int, int, int], deque[tuple[int, float]]] = {}

    def issue_comm(g: int, t: float) -> None:
        """Issue a collective, send or receive (anything not timed by its own duration)."""
        p = g % width
        program = programs[ranks[p]]
        local = g // width
        k = kind[g]
        if k == K_COLL:
            op, size, pg = program.collectives[local]
            gid = group_of(ranks[p], pg)
            count_key = (p, gid)
            occurrence = occurrences.get(count_key, 0)
            occurrences[count_key] = occurrence + 1
            key = (gid, occurrence)
            members = pending_coll.setdefault(key, [])
            members.append(g)
            need = needed.get(gid)
            if need is None:
                need = sum(1 for member in groups[gid] if member in simulated)
                needed[gid] = need
            if len(members) >= need:
                del pending_coll[key]
                recorded = [duration[m] for m in members] if measured_comm else []
                if recorded and min(recorded) > 0:
                    finish = t + min(recorded)
                else:
                    finish = t + coster(op, size, groups[gid], program.streams.get(local, ""))
                for member in members:
                    heappush(events, (finish, member))
        elif k == K_SEND:
            src, dst, tag, size = program.p2p[local]
            if dst not in simulated:
                raise WorkloadError(
                    f"rank {ranks[p]}: node {program.ids[local]} sends to rank {dst}, which is "
                    "not simulated"
                )
            if measured_comm and duration[g] > 0:
                arrival = t + duration[g]
            else:
                # The send's own group kind ("pp" where the workload says it is a pipeline
                # exchange), not an assumed one: the coster reads kinds (compression).
                send_kind = program.p2p_streams.get(local, "")
                arrival = t + coster("send_recv", size, (src, dst), send_kind)
            heappush(events, (arrival, g))
            key4 = (src, dst, tag, size)
            waiting = recvs_waiting.get(key4)
            if waiting:
                recv_g, recv_t = waiting.popleft()
                heappush(events, (arrival if arrival > recv_t else recv_t, recv_g))
            else:
                sends_arrived.setdefault(key4, deque()).append(arrival)
        else:  # receive
            key4 = program.p2p[local]
            arrived = sends_arrived.get(key4)
            if arrived:
                a = arrived.popleft()
                heappush(events, (a if a > t else t, g))
            else:
                recvs_waiting.setdefault(key4, deque()).append((g, t))

    def dispatch(p: int, t: float) -> None:
        base = nslots * p
        for s in range(base, base + nslots):
            queue = ready[s]
            while queue and free[s] > 0:
                free[s] -= 1
                g = heappop(queue)[1]
                start[g] = t
                if kind[g] <= K_CPU:
                    heappush(events, (t + duration[g], g))
                else:
                    issue_comm(g, t)

    def make_ready(g: int, t: float) -> None:
        s = slot[g]
        if s == _NO_SLOT:
            start[g] = t
            if kind[g] == K_RECV:
                issue_comm(g, t)
            else:  # memory or no-op: timed by its own duration
                heappush(events, (t + duration[g], g))
        else:
            heappush(ready[nslots * (g % width) + s], (order[g], g))

    for g in range(total):
        if indegree[g] == 0:
            make_ready(g, 0.0)
    for p in range(len(ranks)):
        dispatch(p, 0.0)

    remaining = real_nodes
    while events:
        t, g = heappop(events)
        end[g] = t
        remaining -= 1
        p = g % width
        s = slot[g]
        if s != _NO_SLOT:
            free[nslots * p + s] += 1
        for c in local_children[p][g // width]:
            c = c * width + p
            d = indegree[c] - 1
            indegree[c] = d
            if d == 0:
                sc = slot[c]
                if sc != _NO_SLOT:
                    heappush(ready[nslots * p + sc], (order[c], c))
                else:
                    make_ready(c, t)
        # dispatch(p, t), inlined: this loop runs once per node and a call costs ~5%.
        base = nslots * p
        for s in range(base, base + nslots):
            queue = ready[s]
            while queue and free[s] > 0:
                free[s] -= 1
                c = heappop(queue)[1]
                start[c] = t
                if kind[c] <= K_CPU:
                    heappush(events, (t + duration[c], c))
                else:
                    issue_comm(c, t)

    start_by_rank = {r: start[p::width][: len(programs[r])] for p, r in enumerate(ranks)}
    end_by_rank = {r: end[p::width][: len(programs[r])] for p, r in enumerate(ranks)}
    if remaining:
        raise DeadlockError(
            f"simulation stopped with {remaining} node(s) unfinished",
            _waiting(
                programs, ranks, width, end, indegree, pending_coll, needed, groups, recvs_waiting
            ),
        )
    notes = [
        f"{len(arrivals)} send(s) from rank {key[0]} to rank {key[1]} (tag {key[2]}, "
        f"{key[3]} bytes) were never received"
        for key, arrivals in sends_arrived.items()
        if arrivals
    ]
    return RawTimeline(start_by_rank, end_by_rank, notes)


def comm_stream_slots(programs: list[Program], per_kind: bool) -> dict[str, int]:
    """Slot number of each communication stream; ``""`` is the shared one (slot 2).

    A rank's slots are 0 compute, 1 CPU, then its communication streams: one, or with
    ``per_kind`` one per group kind the programs name (and ``pp`` for sends).
    """
    slots = {"": 2}
    if per_kind:
        # Ranks of one class share their compiled dicts: read each distinct one once.
        distinct = {id(program.streams): program.streams for program in programs}
        names = {name for streams in distinct.values() for name in streams.values()}
        for name in sorted(names | {"pp"}):
            slots.setdefault(name, len(slots) + 2)
    return slots


def program_slots(program: Program, overlap_comm: bool, stream_slot: dict[str, int]) -> list[int]:
    """The slot each node of ``program`` issues on (``_NO_SLOT`` for receives, memory, no-ops)."""
    comm_slot = 2 if overlap_comm else 0
    slot_of_kind = [0, 1, comm_slot, comm_slot, _NO_SLOT, _NO_SLOT, _NO_SLOT]
    slots = [slot_of_kind[k] for k in program.kinds]
    if len(stream_slot) > 1:
        for i, stream in program.streams.items():
            slots[i] = stream_slot.get(stream, 2)
        for i in program.p2p:
            if program.kinds[i] == K_SEND:
                slots[i] = stream_slot["pp"]
    return slots


def _locate(g: int, ranks: list[int], width: int) -> tuple[int, int]:
    """(rank, local index) of flat node number ``g``."""
    return ranks[g % width], g // width


def _waiting(
    programs: dict[int, Program],
    ranks: list[int],
    width: int,
    end: list[float],
    indegree: list[int],
    pending_coll: dict[tuple[int, int], list[int]],
    needed: dict[int, int],
    groups: list[tuple[int, ...]],
    recvs_waiting: dict[tuple[int, int, int, int], deque[tuple[int, float]]],
) -> list[str]:
    """Describe what each stuck node waits for, most telling first."""
    lines: list[str] = []
    for (gid, occurrence), members in pending_coll.items():
        group = groups[gid]
        located = [_locate(g, ranks, width) for g in members]
        rank, local = located[0]
        program = programs[rank]
        shown = group if len(group) <= 8 else (*group[:8], "...")
        arrived = sorted(r for r, _ in located)
        lines.append(
            f"collective node {program.ids[local]} ({program.names[local]}) on group {shown} "
            f"(occurrence {occurrence}) has {len(arrived)} of {needed.get(gid, 0)} members: "
            f"ranks {arrived[:8]} issued it"
        )
    for (src, _dst, tag, size), waiting in recvs_waiting.items():
        for g, _ in waiting:
            rank, local = _locate(g, ranks, width)
            lines.append(
                f"rank {rank} recv node {programs[rank].ids[local]} waits for a send from rank "
                f"{src} (tag {tag}, {size} bytes) that never came"
            )
    for p, rank in enumerate(ranks):
        program = programs[rank]
        blocked = [
            i for i in range(len(program)) if end[i * width + p] < 0 and indegree[i * width + p] > 0
        ]
        if blocked:
            first = blocked[0]
            lines.append(
                f"rank {rank}: {len(blocked)} node(s) wait on unfinished dependencies, first "
                f"node {program.ids[first]} ({program.names[first]})"
            )
    return lines
