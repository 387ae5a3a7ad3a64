"""Which process group each gloo worker thread serves, for traces that never name the group.

gloo writes no ``record_param_comms``: a ``c10d::`` op's only link to its group is the worker
thread its backend span (``gloo:all_reduce``) ran on. Every ``ProcessGroupGloo`` starts its own
worker threads (``Options.threads``, 2 by default) when it is created, so the threads follow
the groups' creation order. Thread ids alone do not say where one group's threads end:
the other ranks on the host start their threads at the same moments, and the ids interleave.
So every assignment that fits the trace is listed:

- thread ids sorted ascending fall into the groups in creation order (a contiguous run each),
  at most ``GLOO_WORKER_THREADS`` per group, only groups this rank belongs to;
- an op that shows its group's size (an all-gather's output is ``size`` times its input, a
  reduce-scatter's input ``size`` times its output) must be on a thread of a group that size;
- where other ranks' traces fixed a group's sequence of collectives (``known_sequences``),
  the assignment must give this rank the same sequence on that group: SPMD ranks issue the
  same collectives on a group in the same order.

One fitting assignment is certain; several are reported (the widest thread-id gaps choose).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from trainsim.chakra_et.convert._backend_spans import worker_thread
from trainsim.chakra_et.convert._collectives import comm_size_bytes
from trainsim.chakra_et.convert._link import HostKinetoLink
from trainsim.chakra_et.convert._process_groups import ProcessGroup, ProcessGroups
from trainsim.chakra_et.convert._units import Unit
from trainsim.chakra_et.schema import CollectiveCommType

__all__ = [
    "GLOO_WORKER_THREADS",
    "GroupSequences",
    "ThreadGroups",
    "collective_sequences",
    "infer_thread_groups",
]

GLOO_WORKER_THREADS = 2  # torch ProcessGroupGloo::Options::threads default
_MAX_TRIED = 100_000  # assignments examined at most: the search is exponential in groups

#: Per group name: the (comm type name, comm_size bytes) of every collective issued on it.
GroupSequences = Mapping[str, Sequence[tuple[str, int]]]
ThreadId = int | str


@dataclass
class ThreadGroups:
    """The inferred group of each gloo worker thread and how many assignments fit (1: sure)."""

    by_thread: dict[ThreadId, str] = field(default_factory=dict)
    fits: int = 0


@dataclass
class _CommOp:
    """A collective that ran on a worker thread: its place in the sequence and evidence."""

    comm_type: str
    size_bytes: int
    thread: ThreadId | None
    group_size: int | None  # the size of its group, where the op shows it


def _group_size_shown(unit: Unit) -> int | None:
    """The group size an all-gather or reduce-scatter shows by its output/input ratio."""
    spec = unit.spec
    if spec is None or spec.kind != "coll" or len(unit.op.inputs) < 2:
        return None
    if spec.comm_type not in (CollectiveCommType.ALL_GATHER, CollectiveCommType.REDUCE_SCATTER):
        return None
    out_bytes = comm_size_bytes(unit.op, replace(spec, size_arg=0))  # argument 0: the output
    in_bytes = comm_size_bytes(unit.op, spec)
    big, small = (
        (out_bytes, in_bytes)
        if spec.comm_type == CollectiveCommType.ALL_GATHER
        else (in_bytes, out_bytes)
    )
    if small <= 0 or big % small:
        return None
    return big // small


def _comm_ops(units: list[Unit], link: HostKinetoLink) -> list[_CommOp]:
    """Every collective in program order with the worker thread it ran on (if any)."""
    ops = []
    for unit in units:
        spec = unit.spec
        if unit.kind != "comm" or spec is None or spec.kind != "coll":
            continue
        thread = worker_thread(unit, link)
        ops.append(
            _CommOp(
                CollectiveCommType.Name(spec.comm_type),
                comm_size_bytes(unit.op, spec),
                thread,
                _group_size_shown(unit) if thread is not None else None,
            )
        )
    return ops


def _candidate_groups(groups: ProcessGroups) -> list[ProcessGroup]:
    """gloo groups, in creation order, that this rank has worker threads for."""
    out = []
    for group in groups.groups.values():
        if "gloo" not in group.backend or group.size == 1:
            continue  # a group of one rank exchanges nothing: no worker ever runs for it
        if groups.rank is not None and group.ranks and groups.rank not in group.ranks:
            continue  # a rank outside a group never creates its backend
        out.append(group)
    return out


def _assignments(
    threads: list[ThreadId],
    sizes: list[int],
    shown: dict[ThreadId, set[int]],
    per_group: int | None,
) -> Iterator[list[int]]:
    """Monotone assignments of sorted threads to group indices that fit the size evidence."""
    chosen: list[int] = []

    def extend(position: int, group: int, used: int) -> Iterator[list[int]]:
        if position == len(threads):
            yield list(chosen)
            return
        seen = shown.get(threads[position], set())
        for index in range(group, len(sizes)):
            count = used if index == group else 0
            if per_group is not None and count >= per_group:
                continue
            if seen and (sizes[index] and seen != {sizes[index]}):
                continue
            chosen.append(index)
            yield from extend(position + 1, index, count + 1)
            chosen.pop()

    yield from extend(0, 0, 0)


def _sequence_fits(
    ops: list[_CommOp],
    by_thread: dict[ThreadId, str],
    default: str,
    known: GroupSequences,
) -> bool:
    """Whether this assignment gives every group with a known sequence exactly that one."""
    mine: dict[str, list[tuple[str, int]]] = {}
    for op in ops:
        name = by_thread.get(op.thread, default) if op.thread is not None else default
        mine.setdefault(name, []).append((op.comm_type, op.size_bytes))
    return all(list(sequence) == mine.get(name, []) for name, sequence in known.items())


def _gap_score(threads: list[ThreadId], assignment: list[int]) -> list[int]:
    """Thread-id gaps at group boundaries, widest first: the tie-break among fits."""
    gaps = [
        (b - a) if isinstance(a, int) and isinstance(b, int) else 0
        for a, b, ga, gb in zip(threads, threads[1:], assignment, assignment[1:], strict=False)
        if ga != gb
    ]
    return sorted(gaps, reverse=True)


def infer_thread_groups(
    units: list[Unit],
    link: HostKinetoLink | None,
    groups: ProcessGroups,
    known_sequences: GroupSequences | None = None,
) -> ThreadGroups:
    """The group of every gloo worker thread that ran a collective (see the module docstring).

    An empty result means nothing could be said (no worker threads, no gloo groups, or no
    assignment fits); the caller then assumes the default group and says so.
    """
    if link is None:
        return ThreadGroups()
    candidates = _candidate_groups(groups)
    ops = _comm_ops(units, link)
    threads = sorted(
        {op.thread for op in ops if op.thread is not None},
        key=lambda t: (isinstance(t, str), str(t).zfill(20)),
    )
    if not candidates or not threads:
        return ThreadGroups()
    names = [g.name for g in candidates]
    sizes = [g.size for g in candidates]
    shown: dict[ThreadId, set[int]] = {}
    for op in ops:
        if op.thread is not None and op.group_size is not None:
            shown.setdefault(op.thread, set()).add(op.group_size)
    default = groups.default.name if groups.default is not None else "0"
    known = {k: v for k, v in (known_sequences or {}).items() if k in names}
    best: tuple[list[int], list[int]] | None = None
    fits = 0
    # gloo's default thread count first; a run with more threads per group falls back to any.
    for per_group in (GLOO_WORKER_THREADS, None):
        for tried, assignment in enumerate(_assignments(threads, sizes, shown, per_group)):
            if tried >= _MAX_TRIED:
                break
            by_thread = {t: names[i] for t, i in zip(threads, assignment, strict=True)}
            if known and not _sequence_fits(ops, by_thread, default, known):
                continue
            fits += 1
            score = _gap_score(threads, assignment)
            if best is None or score > best[0]:
                best = (score, assignment)
        if best is not None:
            break
    if best is None:
        return ThreadGroups()
    return ThreadGroups({t: names[i] for t, i in zip(threads, best[1], strict=True)}, fits)


def collective_sequences(
    collectives: Sequence[Mapping[str, object]],
) -> dict[str, list[tuple[str, int]]]:
    """Per group, the (comm type, bytes) sequence of a conversion report's collectives."""
    out: dict[str, list[tuple[str, int]]] = {}
    for record in collectives:
        name, kind, size = (
            record.get("pg_name"),
            record.get("comm_type"),
            record.get("comm_size_bytes"),
        )
        if isinstance(name, str) and isinstance(kind, str) and isinstance(size, int):
            out.setdefault(name, []).append((kind, size))
    return out
