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

__all__ = ["LAUNCH_SKEW_US", "HostKinetoLink", "link_launchers", "link_spans", "link_traces"]

#: Host and device timestamps come from different clocks: a kernel may seem to start this
#: much before the op that launched it.
LAUNCH_SKEW_US = 50.0
_UNTIMED_PREFIXES = ("[pytorch|profiler|execution_trace|", "## process_group:init")


class HostKinetoLink:
    """The result of linking: CPU span by host op id, launching host op id by GPU event."""

    def __init__(self) -> None:
        self.span_of: dict[int, KinetoEvent] = {}
        self.launcher_of: dict[int, int] = {}  # index into KinetoTrace.gpu_events -> host op id
        self.eligible = 0
        self.matched = 0
        self.method = "none"
        # Linked CPU spans per Kineto thread, sorted by start: (start, end, host op id).
        self.spans_by_tid: dict[int | str, list[tuple[float, float, int]]] = {}
        self.starts_by_tid: dict[int | str, list[float]] = {}

    def enclosing_op(self, tid: int | str, ts_us: float) -> int | None:
        """The innermost linked host op whose span on thread ``tid`` contains ``ts_us``."""
        spans = self.spans_by_tid.get(tid)
        if spans is None:
            return None
        return _enclosing(spans, self.starts_by_tid[tid], ts_us)

    @property
    def match_ratio(self) -> float:
        """Share of host ops that Kineto ought to have seen and has, with the same name."""
        return self.matched / self.eligible if self.eligible else 1.0


def _eligible(op: HostOp) -> bool:
    return not op.name.startswith(_UNTIMED_PREFIXES)


def link_spans(host: HostTrace, spans: dict[int, KinetoEvent], method: str) -> HostKinetoLink:
    """A link from host op spans found some other way (an ET+ trace's own times)."""
    link = HostKinetoLink()
    link.method = method
    link.eligible = sum(1 for op in host.ops if _eligible(op))
    link.span_of = spans
    link.matched = sum(1 for op_id in spans if _eligible(host.by_id[op_id]))
    _index_spans(link)
    return link


def _index_spans(link: HostKinetoLink) -> None:
    """Sort the linked spans per thread, for finding the op that encloses a call."""
    spans_by_tid: dict[int | str, list[tuple[float, float, int]]] = defaultdict(list)
    for op_id, event in link.span_of.items():
        spans_by_tid[event.tid].append((event.ts_us, event.end_us, op_id))
    for spans in spans_by_tid.values():
        spans.sort()
    link.spans_by_tid = dict(spans_by_tid)
    link.starts_by_tid = {tid: [s[0] for s in spans] for tid, spans in spans_by_tid.items()}


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
    _index_spans(link)
    link_launchers(link, kineto)
    return link


def link_launchers(link: HostKinetoLink, kineto: KinetoTrace) -> None:
    """Find the host op that launched each GPU event (``launcher_of``) from the linked spans."""
    host_by_external: dict[int, int] = {}
    for op_id, event in link.span_of.items():
        if event.external_id is not None:
            host_by_external[event.external_id] = op_id
    spans_by_tid, starts_by_tid = link.spans_by_tid, link.starts_by_tid
    for index, gpu in enumerate(kineto.gpu_events):
        runtime = kineto.runtime.get(gpu.correlation) if gpu.correlation is not None else None
        launcher: int | None = None
        for external in (
            runtime.external_id if runtime is not None else None,
            gpu.external_id,
        ):
            if external is not None and external in host_by_external:
                launcher = host_by_external[external]
                break
        if launcher is not None and link.span_of[launcher].ts_us > gpu.ts_us + LAUNCH_SKEW_US:
            # Older Kineto reuses ids: an op that started after the kernel did not launch it.
            launcher = None
        if launcher is None and runtime is not None and runtime.tid in spans_by_tid:
            # Older Kineto reuses the correlation as External id: find the innermost host
            # op whose span encloses the launch call on the launching thread instead.
            launcher = _enclosing(
                spans_by_tid[runtime.tid], starts_by_tid[runtime.tid], runtime.ts_us
            )
        if launcher is not None:
            link.launcher_of[index] = launcher


def _enclosing(spans: list[tuple[float, float, int]], starts: list[float], ts: float) -> int | None:
    position = bisect.bisect_right(starts, ts)
    for cursor in range(position - 1, max(-1, position - 65), -1):
        start, end, op_id = spans[cursor]
        if start <= ts <= end:
            return op_id
    return None
