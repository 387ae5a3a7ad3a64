"""Building the Chakra ET from selected units, Kineto timing and process groups.

Nodes are wired in start order, then written in a topological order that keeps it where it
can. Dependencies: program order per thread and per GPU stream, data dependencies through
tensor ids (and through the storage a collective writes), and cross-thread links where the
timeline shows a thread idle until another one finished.

With GPU work in the Kineto trace, the host thread does not wait for the kernels and
collectives it issues: a kernel depends on the op that launched it, the work before it on
its stream and the work on other streams it waited for (``_gpu_deps``); a collective on its
issue, its NCCL stream and the same waits. A host op waits for the GPU only where it called a
blocking runtime function: it is split there, and the part after the call (``<op> [<call>]``,
attribute ``sync_of``) depends on the GPU work the call waited for, with the CPU time after
that work finished as its duration (the blocked time is ``gpu_wait_us``).
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass
from typing import Any

from trainsim.chakra_et._attrs import RESERVED_ATTR_KINDS, make_attr
from trainsim.chakra_et._graph import ETGraph, new_metadata
from trainsim.chakra_et.convert._backend_spans import worker_thread
from trainsim.chakra_et.convert._build_gpu import gpu_edges, gpu_nodes, sync_nodes
from trainsim.chakra_et.convert._build_node import COMP_NODE, ThreadKey, _Node
from trainsim.chakra_et.convert._collectives import comm_size_bytes, p2p_peer_and_tag
from trainsim.chakra_et.convert._gloo_threads import GroupSequences, infer_thread_groups
from trainsim.chakra_et.convert._gpu_deps import gpu_schedule
from trainsim.chakra_et.convert._host_et import HostOp, iter_tensors
from trainsim.chakra_et.convert._kineto import KinetoEvent, KinetoTrace
from trainsim.chakra_et.convert._link import LAUNCH_SKEW_US, HostKinetoLink
from trainsim.chakra_et.convert._process_groups import ProcessGroups
from trainsim.chakra_et.convert._report import ConversionReport
from trainsim.chakra_et.convert._units import Unit
from trainsim.chakra_et.schema import CollectiveCommType, Node, NodeType

__all__ = ["BuildOptions", "build_graph"]

_WAIT_LOOKBACK = 8
# Plain ints: attribute lookups on protobuf enum wrappers are slow in per-node loops.
_METADATA_NODE = int(NodeType.METADATA_NODE)
_COMM_COLL_NODE = int(NodeType.COMM_COLL_NODE)
_COMM_SEND_NODE = int(NodeType.COMM_SEND_NODE)
_COMM_RECV_NODE = int(NodeType.COMM_RECV_NODE)
_INT_BOUNDS = {
    "int32": (-(2**31), 2**31),
    "int64": (-(2**63), 2**63),
    "uint64": (0, 2**64),
}


@dataclass
class BuildOptions:
    """Knobs of graph building.

    ``host_gaps``: add the idle CPU time before an op on its thread (Python and framework
    overhead, not waiting on another thread) to the op's ``duration_micros``; the share is
    kept in the ``host_gap_us`` attribute. Before a collective, and after the profiled step's
    last op on the thread that marks steps, the time goes to the compute op before it
    (``host_gap_after_us``), or to a ``host_tail`` node when the step ends on a collective.
    ``known_sequences``: collectives other ranks issued on each group, which tell gloo worker
    threads apart (see ``_gloo_threads``).
    """

    host_gaps: bool = True
    schema_version: str = "0.0.4"
    known_sequences: GroupSequences | None = None


def _pg_name(
    unit: Unit,
    groups: ProcessGroups,
    link: HostKinetoLink | None,
    thread_groups: dict[int | str, str],
) -> tuple[str, str]:
    """The group of a comm unit and how it was found."""
    kineto_pg = unit.op.attrs.get("kineto_pg_name")
    if isinstance(kineto_pg, str):
        return kineto_pg, "NCCL metadata"
    pc = unit.param_comms
    if pc is not None:
        name = pc.attrs.get("pg_name")
        if isinstance(name, str) and name:
            return name, "record_param_comms"
        for value in pc.inputs[1:4]:
            if isinstance(value, list) and value and isinstance(value[0], str):
                return value[0], "record_param_comms"
            if isinstance(value, int) and not isinstance(value, bool):
                group = groups.by_backend_id(value)
                if group is not None:
                    return group.name, "backend id"
    if link is not None:
        tid = worker_thread(unit, link)
        if tid is not None and tid in thread_groups:
            return thread_groups[tid], "gloo worker thread"
    default = groups.default
    return (default.name if default is not None else "0"), "default group"


def build_graph(
    units: list[Unit],
    kineto: KinetoTrace | None,
    link: HostKinetoLink | None,
    groups: ProcessGroups,
    report: ConversionReport,
    options: BuildOptions,
) -> ETGraph:
    """Write the units (and GPU events) as an ``ETGraph``; fill the report's node counts."""
    inferred = infer_thread_groups(units, link, groups, options.known_sequences)
    thread_groups = inferred.by_thread
    if inferred.fits:
        report.pg_assignment_fits = inferred.fits
    if inferred.fits > 1:
        report.warnings.append(
            f"{inferred.fits} ways to give gloo worker threads to process groups fit this "
            "trace; the one with the widest thread-id gaps was used (convert all ranks "
            "together to tell them apart)"
        )
    nodes: list[_Node] = []
    node_of_unit: dict[int, _Node] = {}
    fallback_ts = 0.0
    for index, unit in enumerate(units):
        nodes.append(_unit_node(unit, index, link, groups, thread_groups, report))
        node = nodes[-1]
        if node.start_us is not None:
            fallback_ts = node.start_us
        else:
            node.order_key = (fallback_ts, unit.op.rf_id, index)
        node_of_unit[id(unit)] = node
    gpu_mode = False
    if kineto is not None and link is not None:
        gpu_list, node_of_event = gpu_nodes(kineto, link, units, node_of_unit, report)
        acausal = 0
        for gpu in gpu_list:
            launcher = node_of_unit.get(id(gpu.launcher)) if gpu.launcher is not None else None
            if (
                launcher is not None
                and launcher.start_us is not None
                and gpu.start_us is not None
                and launcher.start_us > gpu.start_us + LAUNCH_SKEW_US
            ):
                # Started before the op said to launch it: old Kineto reuses correlation ids,
                # and such a link is wrong. The kernel keeps its stream order only.
                gpu.launcher, launcher = None, None
                acausal += 1
            if launcher is not None and gpu.order_key < launcher.order_key:
                # Device and host clocks can disagree by microseconds; a kernel still
                # comes after the op that launched it.
                gpu.order_key = (launcher.order_key[0], gpu.order_key[1], gpu.order_key[2])
            nodes.append(gpu)
        if acausal:
            report.warnings.append(
                f"{acausal} GPU event(s) started before the host op linked as their launcher; "
                "those links were dropped (the events keep their stream order)"
            )
        if node_of_event:
            gpu_mode = True
            schedule = gpu_schedule(kineto)
            gpu_edges(kineto, schedule, node_of_event)
            nodes.extend(sync_nodes(schedule, link, units, node_of_unit, node_of_event, report))
    if options.host_gaps and kineto is not None and kineto.profiler_steps and link is not None:
        tail = _step_edges(nodes, kineto.profiler_steps[-1])
        if tail is not None:
            nodes.append(tail)
    nodes.sort(key=lambda n: n.order_key)
    _wire(nodes, node_of_unit, options, gpu_mode)
    if gpu_mode:  # only GPU-side dependencies can point forwards
        nodes = _topological(nodes, report)
    finish_us: list[int] = []
    messages: list[Node] = []
    for et_id, node in enumerate(nodes):
        duration_us = max(0, round(node.duration_us))
        # Nodes are in topological order: the critical path is one pass over them.
        deps = node.deps
        finish_us.append((max([finish_us[d] for d in deps]) if deps else 0) + duration_us)
        messages.append(_make_node(et_id, node, duration_us))
        if node.record is not None:
            # The report gives the figure written to the ET, not an intermediate one.
            node.record["duration_us"] = duration_us
    report.critical_path_us = max(finish_us, default=0)
    return ETGraph(new_metadata(options.schema_version), messages)


def _topological(nodes: list[_Node], report: ConversionReport) -> list[_Node]:
    """Reorder wired nodes so every dependency comes first, keeping start order where it can
    (a host sync depends on GPU work that started after the host op), and renumber them.

    Only GPU-side dependencies point forwards, so a cycle always holds one; where timestamps
    disagree that much (traces linked by name and order) those edges are dropped and
    counted in a warning instead."""
    if all(d < n.et_id for n in nodes for d in n.deps):
        return nodes
    waiting = [len(n.deps) for n in nodes]
    dependents: list[list[int]] = [[] for _ in nodes]
    for node in nodes:
        for dep in node.deps:
            dependents[dep].append(node.et_id)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    done = [False] * len(nodes)
    dropped = 0
    while len(order) < len(nodes):
        if not ready:
            # The first node still waiting waits only for later nodes: cut those edges.
            stuck = next(i for i, finished in enumerate(done) if not finished)
            kept = [d for d in nodes[stuck].deps if done[d]]
            dropped += len(nodes[stuck].deps) - len(kept)
            for dep in nodes[stuck].deps:
                if not done[dep]:
                    dependents[dep].remove(stuck)
            nodes[stuck].deps = kept
            waiting[stuck] = 0
            heapq.heappush(ready, stuck)
        index = heapq.heappop(ready)
        order.append(index)
        done[index] = True
        for dependent in dependents[index]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    if dropped:
        report.warnings.append(
            f"{dropped} GPU-side dependencies dropped: with them the graph had a cycle "
            "(host and GPU timestamps disagree)"
        )
    new_id = {old: new for new, old in enumerate(order)}
    out = [nodes[old] for old in order]
    for node in out:
        node.et_id = new_id[node.et_id]
        node.deps = [new_id[d] for d in node.deps]
    return out


def _make_node(et_id: int, node: _Node, duration_us: int) -> Node:
    """A ``Node`` with its attributes added in place (``new_node`` copies each attribute,
    which dominates conversion time at a million nodes); reserved names keep their kinds."""
    message = Node(
        id=et_id,
        name=node.name,
        type=node.node_type,  # type: ignore[arg-type]
        duration_micros=duration_us,
        ctrl_deps=node.deps,
    )
    attrs = node.attrs
    if node.node_type == COMP_NODE and len(attrs) == 2 and "host_id" in attrs:
        # The bulk of every trace: a host compute node with its two plain attributes.
        message.attr.add(name="host_id", int64_val=attrs["host_id"])
        message.attr.add(name="is_cpu_op", bool_val=attrs["is_cpu_op"])
        return message
    for name, value in attrs.items():
        kind = RESERVED_ATTR_KINDS.get(name)
        if kind is None:
            if isinstance(value, (list, tuple)):
                message.attr.append(make_attr(name, value))
                continue
            kind = (
                "bool"
                if isinstance(value, bool)
                else "int64"
                if isinstance(value, int)
                else "string"
            )
        if kind in _INT_BOUNDS and not _INT_BOUNDS[kind][0] <= value < _INT_BOUNDS[kind][1]:
            message.attr.append(make_attr(name, value))  # raises, naming the attribute
            continue
        message.attr.add(name=name, **{f"{kind}_val": value})
    return message


def _unit_node(
    unit: Unit,
    index: int,
    link: HostKinetoLink | None,
    groups: ProcessGroups,
    thread_groups: dict[int | str, str],
    report: ConversionReport,
) -> _Node:
    op = unit.op
    span = link.span_of.get(op.id) if link is not None else None
    start = span.ts_us if span is not None else None
    end = span.end_us if span is not None else None
    duration = span.dur_us if span is not None else (op.duration_us or 0.0)
    thread: ThreadKey = ("kineto", span.tid) if span is not None else ("host", op.tid)
    attrs: dict[str, Any] = {"host_id": op.id}
    node = _Node(
        unit,
        op.name,
        COMP_NODE,
        start,
        end,
        duration,
        thread,
        (start if start is not None else 0.0, op.rf_id, index),
        attrs,
    )
    if unit.kind == "metadata":
        node.node_type = _METADATA_NODE
        node.duration_us = 0.0
        node.in_chain = False
        return node
    if unit.kind == "comp":
        attrs["is_cpu_op"] = True
        return node
    spec = unit.spec
    assert spec is not None
    pg_name, pg_source = _pg_name(unit, groups, link, thread_groups)
    known_size = op.attrs.get("kineto_comm_bytes")  # a Kineto-only trace's NCCL metadata
    size = known_size if isinstance(known_size, int) else comm_size_bytes(op, spec)
    attrs["comm_size"] = size
    attrs["pg_name"] = pg_name
    record: dict[str, Any] = {
        "name": op.name,
        "host_id": op.id,
        "comm_size_bytes": size,
        "pg_name": pg_name,
        "pg_source": pg_source,
    }
    if spec.kind == "coll":
        node.node_type = _COMM_COLL_NODE
        attrs["comm_type"] = spec.comm_type
        record["comm_type"] = CollectiveCommType.Name(spec.comm_type)
    else:
        peer, tag = p2p_peer_and_tag(op, spec)
        if peer is None:
            # A receive from any source (or a send whose peer the trace lost) cannot be
            # matched across ranks: its measured time stays, as a compute node.
            for key in ("comm_size", "pg_name"):
                attrs.pop(key)
            attrs["is_cpu_op"] = True
            report.warnings.append(
                f"node {op.id} ({op.name}): peer rank unknown; kept as a compute node"
            )
            report.host_fates["emitted"] -= 1
            report.host_fates["emitted as compute: point-to-point with unknown peer"] += 1
            return node
        own = groups.rank
        peer_global = groups.global_rank(pg_name, peer)
        attrs["comm_tag"] = tag
        src: int | None
        dst: int | None
        if spec.kind == "send":
            node.node_type = _COMM_SEND_NODE
            src, dst = own, peer_global
        else:
            node.node_type = _COMM_RECV_NODE
            src, dst = peer_global, own
        if src is not None:
            attrs["comm_src"] = src
        if dst is not None:
            attrs["comm_dst"] = dst
        record.update(kind=spec.kind, comm_src=src, comm_dst=dst, comm_tag=tag)
    # The collective lasts from its issue to the end of its backend execution.
    backend_spans = (
        [s for s in (link.span_of.get(b.id) for b in unit.backend) if s is not None]
        if link is not None
        else []
    )
    if backend_spans and start is not None and end is not None:
        finish = max([end, *(s.end_us for s in backend_spans)])
        node.end_us = finish
        node.duration_us = finish - start
        node.in_chain = all(s.tid == span.tid for s in backend_spans if span is not None)
    elif unit.backend and link is None:
        node.duration_us = max([node.duration_us, *(b.duration_us or 0.0 for b in unit.backend)])
    record["duration_us"] = round(node.duration_us)
    node.record = record
    (report.collectives if spec.kind == "coll" else report.p2p).append(record)
    return node


def _tensors(values: list[Any], types: list[Any]) -> list[tuple[int, int]]:
    """``(tensor_id, storage_id)`` of every tensor argument."""
    found: list[tuple[int, int]] = []
    for i, value in enumerate(values):
        type_str = types[i] if i < len(types) else ""
        if type(type_str) is not str:
            continue
        if type_str.startswith("Tensor(") and type(value) is list and len(value) == 6:
            found.append((value[0], value[1]))  # the common case: one plain tensor
        elif "Tensor" in type_str:
            found.extend((t, storage) for t, storage, _ in iter_tensors(value, type_str))
    return found


def _wire(
    nodes: list[_Node], node_of_unit: dict[int, _Node], options: BuildOptions, gpu_mode: bool
) -> None:
    """Give every node its id and dependencies. Host-side dependencies point backwards in
    ``nodes`` order; GPU-side ones (``gpu_mode``: the trace has GPU work) may point forwards
    (a host sync on work that started later), which ``_topological`` then resolves."""
    for index, node in enumerate(nodes):
        node.et_id = index
    last_on_thread: dict[ThreadKey, _Node] = {}
    last_on_stream: dict[int, _Node] = {}
    writer: dict[int, _Node] = {}
    comm_storage: dict[int, _Node] = {}
    issued_until: dict[ThreadKey, float] = {}  # CPU end of the last GPU collective's issue
    ends: list[tuple[float, int]] = []  # (end time, index) of timed host nodes, for waits
    for index, node in enumerate(nodes):
        deps: list[int] = []
        unit = node.unit
        if unit is None:  # a GPU event
            launcher = node_of_unit.get(id(node.launcher)) if node.launcher else None
            if launcher is not None:
                deps.append(launcher.et_id)
            if gpu_mode:
                deps.extend(d.et_id for d in node.gpu_deps)
            else:
                prev = last_on_stream.get(node.stream if node.stream is not None else -1)
                if prev is not None:
                    deps.append(prev.et_id)
                last_on_stream[node.stream if node.stream is not None else -1] = node
            node.deps = [d for d in dict.fromkeys(deps) if d != index]
            continue
        if unit.kind == "metadata":
            continue
        thread = node.thread
        assert thread is not None
        # On a GPU the thread only issues a collective; its buffers are ordered on streams.
        on_gpu = gpu_mode and node.stream is not None
        prev = last_on_thread.get(thread)
        if prev is not None:
            deps.append(prev.et_id)
        if node.stream is not None and not gpu_mode:
            prev_stream = last_on_stream.get(node.stream)
            if prev_stream is not None:
                deps.append(prev_stream.et_id)
            last_on_stream[node.stream] = node
        op = unit.op
        inputs = _tensors(op.inputs, op.input_types)
        for tensor, storage in inputs:
            producer = writer.get(tensor)
            if producer is not None:
                deps.append(producer.et_id)
            if comm_storage:
                producer = comm_storage.get(storage)
                if producer is not None and unit.kind == "comp":
                    deps.append(producer.et_id)
        # A collective whose backend runs on a worker thread is off the chain, but its issue
        # is on this thread: the idle time before it counts the same way.
        if node.start_us is not None and (node.in_chain or unit.kind == "comm"):
            gap_start = prev.end_us if prev is not None and prev.end_us is not None else None
            issued = issued_until.get(thread)
            if issued is not None and (gap_start is None or issued > gap_start):
                gap_start = issued
            waited = _waited_on(nodes, ends, thread, gap_start, node.start_us)
            if waited is not None:
                deps.append(waited.et_id)
            # Idle time until the last dependency finished was waiting (for another thread,
            # a collective, or work on an idle worker thread); only the rest is overhead.
            busy_from = gap_start
            for dep in deps:
                dep_end = nodes[dep].end_us
                if dep_end is not None and (busy_from is None or dep_end > busy_from):
                    busy_from = dep_end
            if options.host_gaps and busy_from is not None:
                gap_us = max(0.0, node.start_us - busy_from)
                if gap_us > 0 and unit.kind == "comp":
                    node.duration_us += gap_us
                    node.attrs["host_gap_us"] = round(gap_us)
                elif gap_us > 0 and prev is not None and _is_host_comp(prev):
                    # Python work before issuing a collective: the op before it on the thread
                    # carries it, so the collective is still issued when it was.
                    _add_host_gap(prev, gap_us, "host_gap_after_us")
            if on_gpu and node.issue_end_us is not None:
                # The c10d op's own CPU time (enqueueing the kernel) stays on the thread,
                # carried by the op before it; the collective itself runs on the GPU.
                issue_us = node.issue_end_us - node.start_us
                if options.host_gaps and issue_us > 0 and prev is not None and _is_host_comp(prev):
                    _add_host_gap(prev, issue_us, "host_gap_after_us")
                issued_until[thread] = node.issue_end_us
        if node.gpu_deps:
            deps.extend(d.et_id for d in node.gpu_deps)
        if not on_gpu:  # a GPU collective's results are ordered by streams, not on the host
            for tensor, _ in _tensors(op.outputs, op.output_types):
                writer[tensor] = node
        if unit.kind == "comm" and not on_gpu:
            for tensor, storage in inputs:
                writer[tensor] = node  # collectives write their buffers in place
                comm_storage[storage] = node
        if node.in_chain:
            last_on_thread[thread] = node
        if node.end_us is not None and not on_gpu:
            bisect.insort(ends, (node.end_us, index))
        node.deps = [d for d in dict.fromkeys(deps) if d != index]


def _is_host_comp(node: _Node) -> bool:
    """Whether a node is a host compute op on its thread's chain (it can carry idle time)."""
    return node.unit is not None and node.unit.kind == "comp" and node.in_chain


def _add_host_gap(node: _Node, gap_us: float, attr: str) -> None:
    """Add idle CPU time to a node's duration and record it under ``attr``."""
    node.duration_us += gap_us
    node.attrs[attr] = node.attrs.get(attr, 0) + round(gap_us)


def _step_edges(nodes: list[_Node], step: KinetoEvent) -> _Node | None:
    """Keep the profiled step's CPU time before its first op and after its last one on the
    thread that marks the steps (Python work the step's time includes).

    The lead-in goes to the first op; the tail to the last one when it is a compute op, else
    (the step ends waiting for a collective) to a ``host_tail`` node returned to be added.
    """
    thread: ThreadKey = ("kineto", step.tid)
    mine = [
        n
        for n in nodes
        if n.thread == thread
        and n.stream is None  # a GPU-timed collective ends on the GPU, not on the thread
        and n.start_us is not None
        and n.end_us is not None
        and step.ts_us <= n.start_us <= step.end_us
    ]
    if not mine:
        return None
    # A collective whose backend ran on a worker thread ends with it, off the chain: it
    # still bounds what the thread did.
    first = min(mine, key=lambda n: n.start_us or 0.0)
    last = max(mine, key=lambda n: n.end_us or 0.0)
    assert first.start_us is not None and last.end_us is not None
    if _is_host_comp(first) and first.start_us > step.ts_us:
        _add_host_gap(first, first.start_us - step.ts_us, "host_gap_us")
    tail_us = step.end_us - last.end_us
    if tail_us <= 0:
        return None
    if _is_host_comp(last):
        _add_host_gap(last, tail_us, "host_gap_after_us")
        return None
    op = HostOp(-1, "host_tail", -1, tid=last.unit.op.tid if last.unit is not None else 0)
    return _Node(
        Unit(op, "comp", members=[]),
        "host_tail",
        COMP_NODE,
        last.end_us,
        step.end_us,
        tail_us,
        thread,
        (last.end_us, 2**62, 2**62),
        {"is_cpu_op": True, "host_gap_us": round(tail_us)},
    )


def _waited_on(
    nodes: list[_Node],
    ends: list[tuple[float, int]],
    thread: ThreadKey,
    gap_start: float | None,
    start_us: float,
) -> _Node | None:
    """The node of another thread (or an off-thread collective) that finished last inside the
    idle gap before ``start_us``: the thread was waiting for it."""
    position = bisect.bisect_right(ends, (start_us, len(nodes)))
    for cursor in range(position - 1, max(-1, position - 1 - _WAIT_LOOKBACK), -1):
        end_us, index = ends[cursor]
        if gap_start is not None and end_us <= gap_start:
            return None
        candidate = nodes[index]
        if candidate.thread != thread or not candidate.in_chain:
            return candidate
    return None
