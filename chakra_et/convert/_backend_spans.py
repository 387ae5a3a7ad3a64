"""Backend spans of collectives: which c10d op each ``gloo:*``/``nccl:*`` span executes, and
the worker thread it ran on.

gloo runs a collective on a worker thread of its process group; the host trace files the span
under whatever op the main thread was in, and ops the worker ran inside it belong to the
collective.
"""

from __future__ import annotations

import bisect

from trainsim.chakra_et.convert._collectives import compatible
from trainsim.chakra_et.convert._host_et import HostOp
from trainsim.chakra_et.convert._link import HostKinetoLink
from trainsim.chakra_et.convert._units import Unit

__all__ = ["absorb_worker_ops", "pair_backend_ops", "worker_thread"]


def worker_thread(unit: Unit, link: HostKinetoLink) -> int | str | None:
    """The thread a collective's backend ran on when it is not the issuing thread."""
    issue = link.span_of.get(unit.op.id)
    if issue is None:
        return None
    for op in unit.backend:
        span = link.span_of.get(op.id)
        if span is not None and span.tid != issue.tid:
            return span.tid
    return None


def pair_backend_ops(
    units: list[Unit], unit_of: dict[int, Unit], backend_ops: list[HostOp], by_id: dict[int, HostOp]
) -> list[HostOp]:
    """Attach each backend span (``gloo:*``) to the c10d op it executes; return the unpaired.

    A span nested under its c10d op (NCCL) pairs with it. gloo records its spans from worker
    threads, which the host trace files under whatever op the main thread was in: those pair
    first-in first-out, by record-function id, with the earliest compatible c10d op.
    """
    comm_units = sorted((u for u in units if u.kind == "comm"), key=lambda u: u.op.rf_id)
    taken: set[int] = set()
    unpaired: list[HostOp] = []
    loose: list[HostOp] = []
    for op in {op.id: op for op in backend_ops}.values():
        cursor, owner = by_id.get(op.parent), None
        for _ in range(4):
            if cursor is None:
                break
            candidate = unit_of.get(cursor.id)
            if candidate is not None and candidate.kind == "comm" and candidate.op is cursor:
                owner = candidate
                break
            cursor = by_id.get(cursor.parent) if cursor.parent != cursor.id else None
        if owner is not None and owner.spec is not None and compatible(owner.spec, op.name):
            owner.backend.append(op)
            taken.add(id(owner))
        else:
            loose.append(op)
    head = 0  # every comm unit before ``head`` is taken: scans start there
    for op in sorted(loose, key=lambda o: o.rf_id):
        match = None
        while head < len(comm_units) and id(comm_units[head]) in taken:
            head += 1
        for position in range(head, len(comm_units)):
            unit = comm_units[position]
            if unit.op.rf_id > op.rf_id:
                break
            if id(unit) in taken or unit.spec is None or not compatible(unit.spec, op.name):
                continue
            match = unit
            break
        if match is None:
            unpaired.append(op)
        else:
            match.backend.append(op)
            taken.add(id(match))
    return unpaired


def absorb_worker_ops(units: list[Unit], link: HostKinetoLink) -> tuple[list[Unit], int]:
    """Fold ops that ran inside a collective's backend span on its worker thread into it.

    gloo copies results (``aten::select``/``aten::copy_``) on the worker thread while it
    executes a collective: that time is part of the collective, not work of its own, and the
    worker's idle time before it is waiting for work, not CPU overhead. Returns the units left
    and how many were folded.
    """
    spans_by_tid: dict[int | str, list[tuple[float, float, Unit]]] = {}
    for unit in units:
        if unit.kind != "comm":
            continue
        issue = link.span_of.get(unit.op.id)
        for op in unit.backend:
            span = link.span_of.get(op.id)
            if span is not None and (issue is None or span.tid != issue.tid):
                spans_by_tid.setdefault(span.tid, []).append((span.ts_us, span.end_us, unit))
    if not spans_by_tid:
        return units, 0
    starts_by_tid = {}
    for tid, tid_spans in spans_by_tid.items():
        tid_spans.sort(key=lambda s: s[0])
        starts_by_tid[tid] = [s[0] for s in tid_spans]
    kept: list[Unit] = []
    folded = 0
    for unit in units:
        span = link.span_of.get(unit.op.id) if unit.kind == "comp" else None
        spans = spans_by_tid.get(span.tid) if span is not None else None
        if span is not None and spans is not None:
            position = bisect.bisect_right(starts_by_tid[span.tid], span.ts_us) - 1
            if position >= 0 and span.end_us <= spans[position][1]:
                owner = spans[position][2]
                owner.members.extend(unit.members)
                folded += 1
                continue
        kept.append(unit)
    return kept, folded
