"""Linking a host execution trace to its Kineto trace: host op -> CPU span, kernel -> launcher.

Kineto in torch >= 2.2 stamps every CPU span with the ``Record function id`` the host trace
calls ``rf_id``; older traces are matched by name in start order instead. A GPU kernel names
its launch through ``External id`` (directly or through the runtime call's ``correlation``).
"""

from __future__ import annotations

import bisect
from collections import defaultdict

from trainsim.chakra_et.convert._host_et import HostOp, HostTrace
from trainsim.chakra_et.convert._kineto import KinetoEvent, KinetoTrace

__all__ = ["HostKinetoLink", "link_traces"]

_UNTIMED_PREFIXES = ("[pytorch|profiler|execution_trace|", "## process_group:init")


class HostKinetoLink:
    """The result of linking: CPU span by host op id, launching host op id by GPU event."""

    def __init__(self) -> None:
        self.span_of: dict[int, KinetoEvent] = {}
        self.launcher_of: dict[int, int] = {}  # index into KinetoTrace.gpu_events -> host op id
        self.eligible = 0
        self.matched = 0
        self.method = "none"

    @property
    def match_ratio(self) -> float:
        """Share of host ops that Kineto ought to have seen and has, with the same name."""
        return self.matched / self.eligible if self.eligible else 1.0


def _eligible(op: HostOp) -> bool:
    return not op.name.startswith(_UNTIMED_PREFIXES)


def link_traces(host: HostTrace, kineto: KinetoTrace) -> HostKinetoLink:
    """Match host ops to Kineto CPU spans and GPU events to the host op that launched them."""
    link = HostKinetoLink()
    ops = [op for op in host.ops if _eligible(op)]
    link.eligible = len(ops)
    if kineto.has_rf_ids:
        link.method = "record function id"
        by_rf = kineto.by_rf_id()
        for op in ops:
            event = by_rf.get(op.rf_id)
            if event is not None and event.name == op.name:
                link.span_of[op.id] = event
    else:
        link.method = "name and order"
        events_by_name: dict[str, list[KinetoEvent]] = defaultdict(list)
        for event in sorted(kineto.cpu_events, key=lambda e: e.ts_us):
            events_by_name[event.name].append(event)
        ops_by_name: dict[str, list[HostOp]] = defaultdict(list)
        for op in sorted(ops, key=lambda o: (o.rf_id, o.id)):
            ops_by_name[op.name].append(op)
        for name, named_ops in ops_by_name.items():
            events = events_by_name.get(name, [])
            # Kineto may hold warm-up steps before the recorded one: align the tails.
            offset = max(0, len(events) - len(named_ops))
            for op, event in zip(named_ops, events[offset:], strict=False):
                link.span_of[op.id] = event
    link.matched = len(link.span_of)

    host_by_external: dict[int, int] = {}
    spans_by_tid: dict[int | str, list[tuple[float, float, int]]] = defaultdict(list)
    for op_id, event in link.span_of.items():
        if event.external_id is not None:
            host_by_external[event.external_id] = op_id
        spans_by_tid[event.tid].append((event.ts_us, event.end_us, op_id))
    for spans in spans_by_tid.values():
        spans.sort()
    starts_by_tid = {tid: [s[0] for s in spans] for tid, spans in spans_by_tid.items()}
    for index, gpu in enumerate(kineto.gpu_events):
        runtime = kineto.runtime.get(gpu.correlation) if gpu.correlation is not None else None
        for external in (
            runtime.external_id if runtime is not None else None,
            gpu.external_id,
        ):
            if external is not None and external in host_by_external:
                link.launcher_of[index] = host_by_external[external]
                break
        else:
            # Older Kineto reuses the correlation as External id: find the innermost host
            # op whose span encloses the launch call on the launching thread instead.
            if runtime is not None and runtime.tid in spans_by_tid:
                launcher = _enclosing(
                    spans_by_tid[runtime.tid], starts_by_tid[runtime.tid], runtime.ts_us
                )
                if launcher is not None:
                    link.launcher_of[index] = launcher
    return link


def _enclosing(spans: list[tuple[float, float, int]], starts: list[float], ts: float) -> int | None:
    position = bisect.bisect_right(starts, ts)
    for cursor in range(position - 1, max(-1, position - 65), -1):
        start, end, op_id = spans[cursor]
        if start <= ts <= end:
            return op_id
    return None
