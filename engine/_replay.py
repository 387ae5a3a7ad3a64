"""The sample-independent structure of a step for stochastic replay.

From one deterministic run: every node's kind, duration and kernel class, the node issued
before it on its stream, collective occurrences (their simulated members, cost and group
kind, counted per rank and group in issue order as the engine does), the send each receive
matched, and a topological order of issue and end events that every sample can follow.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from trainsim import chakra_et
from trainsim.engine._errors import WorkloadError
from trainsim.engine._program import K_COLL, K_COMP, K_CPU, K_MEM, K_RECV, K_SEND
from trainsim.engine._result import StepResult
from trainsim.engine._sim import comm_stream_slots, program_slots
from trainsim.engine._system import System
from trainsim.engine._variability import classify_compute
from trainsim.engine._workload import Workload

__all__ = ["Occurrence", "Replay", "build_replay"]

_NO_SLOT = -1


@dataclass
class Occurrence:
    """One collective occurrence: its simulated members, cost and group bookkeeping."""

    members: list[int]
    cost_ns: float
    op: str
    gid: int
    sync_kind: int  # index of the group's kind (tp, dp_cp...) in ``Replay.sync_kinds``
    copies: int  # group members that are not simulated


@dataclass
class Replay:
    """The sample-independent structure of a step: nodes, streams, matching, event order."""

    ranks: list[int]
    owner: list[int]
    kind: list[int]
    duration_ns: list[float]
    kclass: list[str]
    occ_of: dict[int, int]
    send_of: dict[int, int]
    occurrences: list[Occurrence]
    group_sizes: list[int]
    inputs: list[list[int]]
    order: list[int]
    refcount: list[int]
    #: per rank position: the occurrence ending last, -1 if none (its kind is the one the
    #: copies of the rank class are last synchronised through)
    last_occ: list[int]
    sync_kinds: list[str]
    #: [k][j]: the wait for copies at a kind-k collective is common to kind-j copies
    shares_wait: list[list[bool]]
    multiplicity: list[int]
    deterministic_ns: float
    total: int


def _classes(workload: Workload, step: StepResult, rank: int) -> list[str]:
    """Kernel class of every node of one simulated rank."""
    program = step.programs[rank]
    graph = workload.graphs[rank]
    out: list[str] = []
    for i, node in enumerate(graph.node_list):
        k = program.kinds[i]
        if k == K_COMP:
            op = chakra_et.get_attr(node, "op")
            has_shape = chakra_et.get_attr(node, "gemm_shape") is not None
            out.append(classify_compute(node.name, op if isinstance(op, str) else None, has_shape))
        elif k == K_CPU:
            out.append("cpu")
        elif k == K_MEM:
            out.append("memory")
        elif k == K_COLL:
            out.append(program.collectives[i][0])
        elif k in (K_SEND, K_RECV):
            out.append("send_recv")
        else:
            out.append("noop")
    return out


def build_replay(workload: Workload, system: System, step: StepResult) -> Replay:
    """Fix issue order, matching and a topological order of issue/end events.

    ``step`` must be the deterministic run of ``workload`` on ``system``.
    """
    mismatch = [
        r
        for r, graph in workload.graphs.items()
        if r not in step.programs or len(step.programs[r]) != len(graph.node_list)
    ]
    if mismatch or len(step.programs) != len(workload.graphs):
        raise WorkloadError(
            f"{workload.name}: the step result was not simulated from this workload "
            f"(ranks {sorted(mismatch)[:8] or sorted(step.programs)[:8]} differ)"
        )
    sched = system.scheduling
    # Slots as the engine numbers them: 0 compute, 1 CPU, then the communication streams (or
    # compute when communication does not overlap).
    ranks = sorted(step.programs)
    stream_slot = comm_stream_slots(
        [step.programs[r] for r in ranks], sched.comm_stream_per_kind and sched.overlap_comm
    )
    streams_of_slot = [sched.compute_streams, sched.cpu_streams]
    streams_of_slot += [sched.comm_streams] * len(stream_slot)
    slot: list[int] = []
    simulated = set(ranks)
    owner: list[int] = []
    kind: list[int] = []
    duration: list[float] = []
    kclass: list[str] = []
    start: list[float] = []
    end: list[float] = []
    issue_key: list[int] = []
    parents: list[list[int]] = []
    offsets: list[int] = []
    total = 0
    for p, rank in enumerate(ranks):
        program = step.programs[rank]
        offsets.append(total)
        n = len(program)
        owner.extend([p] * n)
        kind.extend(program.kinds)
        slot.extend(program_slots(program, sched.overlap_comm, stream_slot))
        duration.extend(program.duration_ns)
        kclass.extend(_classes(workload, step, rank))
        start.extend(step.timeline.start_ns[rank])
        end.extend(step.timeline.end_ns[rank])
        issue_key.extend(program.ids if sched.issue_order == "node_id" else range(n))
        local_parents: list[list[int]] = [[] for _ in range(n)]
        for i, kids in enumerate(program.children):
            for c in kids:
                local_parents[c].append(total + i)
        parents.extend(local_parents)
        total += n

    # Stream predecessors: the node issued `streams` places earlier on the same slot.
    slot_pred = [-1] * total
    by_slot: dict[tuple[int, int], list[int]] = {}
    for g in range(total):
        s = slot[g]
        if s != _NO_SLOT:
            by_slot.setdefault((owner[g], s), []).append(g)
    for (_, s), nodes in by_slot.items():
        nodes.sort(key=lambda g: (start[g], issue_key[g], g))
        k = streams_of_slot[s]
        for j in range(k, len(nodes)):
            slot_pred[nodes[j]] = nodes[j - k]

    # Collective occurrences, counted per rank and group in issue order, as the engine does.
    group_id: dict[tuple[int, ...], int] = {}
    sync_kind_of: dict[str, int] = {}
    kind_of_node: dict[int, int] = {}
    group_sizes: list[int] = []
    copies_of_group: list[int] = []
    per_rank_group: dict[tuple[int, int], list[int]] = {}
    for p, rank in enumerate(ranks):
        program = step.programs[rank]
        for i, (_, _, pg) in program.collectives.items():
            group = tuple(sorted(workload.group_ranks(pg)))
            gid = group_id.setdefault(group, len(group_sizes))
            if gid == len(group_sizes):
                group_sizes.append(len(group))
                copies_of_group.append(sum(1 for r in group if r not in simulated))
            per_rank_group.setdefault((p, gid), []).append(offsets[p] + i)
            # Copies of a representative are coupled through groups of the same kind (the TP
            # peers of a stage send to the TP peers of the next): bases are kept per kind.
            label = step.comm_kinds[rank][i]
            label = label or f"pg:{pg}"
            kind_of_node[offsets[p] + i] = sync_kind_of.setdefault(label, len(sync_kind_of))
    members_of: dict[tuple[int, int], list[int]] = {}
    for (_, gid), nodes in per_rank_group.items():
        nodes.sort(key=lambda g: (start[g], issue_key[g], g))
        for occurrence, g in enumerate(nodes):
            members_of.setdefault((gid, occurrence), []).append(g)
    occurrences: list[Occurrence] = []
    occ_of: dict[int, int] = {}
    for gid, occurrence in sorted(members_of):
        members = members_of[(gid, occurrence)]
        arrival = max(start[m] for m in members)
        first = members[0]
        op = kclass[first]
        for m in members:
            occ_of[m] = len(occurrences)
        occurrences.append(
            Occurrence(
                members, end[first] - arrival, op, gid, kind_of_node[first], copies_of_group[gid]
            )
        )

    # Sends and receives pair up first-in first-out per (src, dst, tag, size).
    sends: dict[tuple[int, int, int, int], list[int]] = {}
    recvs: dict[tuple[int, int, int, int], list[int]] = {}
    for p, rank in enumerate(ranks):
        program = step.programs[rank]
        for i, key in program.p2p.items():
            g = offsets[p] + i
            (sends if kind[g] == K_SEND else recvs).setdefault(key, []).append(g)
    send_of: dict[int, int] = {}
    for key, waiting in recvs.items():
        sent = sorted(sends.get(key, []), key=lambda g: (start[g], g))
        waiting.sort(key=lambda g: (start[g], g))
        if len(sent) < len(waiting):
            raise WorkloadError(f"receive of {key} has no matching send in the step")
        for r, s in zip(waiting, sent, strict=False):
            send_of[r] = s
    for g in range(total):
        if kind[g] == K_SEND:
            duration[g] = end[g] - start[g]

    # Events: issue(g) = g, end(g) = total + g, occurrence end = 2 * total + o.
    n_events = 2 * total + len(occurrences)
    inputs: list[list[int]] = [[] for _ in range(n_events)]
    for g in range(total):
        inputs[g] = [total + q for q in parents[g]]
        if slot_pred[g] >= 0:
            inputs[g].append(total + slot_pred[g])
        ins = [g]
        if kind[g] == K_COLL:
            ins.append(2 * total + occ_of[g])
        elif kind[g] == K_RECV:
            ins.append(total + send_of[g])
        inputs[total + g] = ins
    for o, occ in enumerate(occurrences):
        inputs[2 * total + o] = list(occ.members)
    consumers: list[list[int]] = [[] for _ in range(n_events)]
    indegree = [0] * n_events
    refcount = [0] * n_events
    for e, ins in enumerate(inputs):
        indegree[e] = len(ins)
        for i in ins:
            consumers[i].append(e)
            refcount[i] += 1
    queue = deque(e for e in range(n_events) if indegree[e] == 0)
    order: list[int] = []
    while queue:
        e = queue.popleft()
        order.append(e)
        for c in consumers[e]:
            indegree[c] -= 1
            if indegree[c] == 0:
                queue.append(c)
    if len(order) != n_events:
        raise WorkloadError("the step's dependencies form a cycle once issue order is fixed")

    last_occ = [-1] * len(ranks)
    last_end = [-1.0] * len(ranks)
    for o, occ in enumerate(occurrences):
        for m in occ.members:
            p = owner[m]
            if end[m] >= last_end[p]:
                last_end[p], last_occ[p] = end[m], o
    return Replay(
        ranks=ranks,
        owner=owner,
        kind=kind,
        duration_ns=duration,
        kclass=kclass,
        occ_of=occ_of,
        send_of=send_of,
        occurrences=occurrences,
        group_sizes=group_sizes,
        inputs=inputs,
        order=order,
        refcount=refcount,
        last_occ=last_occ,
        multiplicity=[step.multiplicity.get(r, 1) for r in ranks],
        sync_kinds=list(sync_kind_of),
        shares_wait=_shares_wait(occurrences, len(sync_kind_of), owner),
        deterministic_ns=step.step_time_ns,
        total=total,
    )


def _shares_wait(occurrences: list[Occurrence], kinds: int, owner: list[int]) -> list[list[bool]]:
    """Whether kind-j copies share the wait at a kind-k collective: when kind j syncs more
    often than kind k on a rank (its groups are the tightly coupled ones, like TP in a
    data-parallel replica)."""
    counts: dict[tuple[int, int], int] = {}
    for occ in occurrences:
        key = (owner[occ.members[0]], occ.sync_kind)
        counts[key] = counts.get(key, 0) + 1
    per_kind = [
        max((c for (_, k), c in counts.items() if k == kind), default=0) for kind in range(kinds)
    ]
    return [[per_kind[j] > per_kind[k] for j in range(kinds)] for k in range(kinds)]
