"""GPU work in the ET builder: a node per kernel, collectives timed by their kernels, stream
order and cross-stream waits, and host ops split where they blocked on the GPU.

See ``_build``'s module docstring for the dependencies these give; ``_gpu_deps`` finds the
waits and the blocking calls in the Kineto trace.
"""

from __future__ import annotations

from trainsim.chakra_et.convert._build_node import COMP_NODE, _Node
from trainsim.chakra_et.convert._gpu_deps import GpuSchedule
from trainsim.chakra_et.convert._host_et import HostOp
from trainsim.chakra_et.convert._kineto import KinetoEvent, KinetoTrace
from trainsim.chakra_et.convert._link import HostKinetoLink
from trainsim.chakra_et.convert._report import ConversionReport
from trainsim.chakra_et.convert._units import Unit

__all__ = ["gpu_edges", "gpu_nodes", "sync_nodes"]


def gpu_nodes(
    kineto: KinetoTrace,
    link: HostKinetoLink,
    units: list[Unit],
    node_of_unit: dict[int, _Node],
    report: ConversionReport,
) -> tuple[list[_Node], dict[int, _Node]]:
    """One node per GPU kernel/memcpy/memset; a communication kernel times its collective.

    Returns the new nodes and the node of every GPU event that has one (a collective's
    first kernel maps to the collective)."""
    unit_of_op = _unit_of_op(units)
    out: list[_Node] = []
    node_of_event: dict[int, _Node] = {}
    for index, event in enumerate(kineto.gpu_events):
        report.device_events_in += 1
        launcher_op = link.launcher_of.get(index)
        unit = unit_of_op.get(launcher_op) if launcher_op is not None else None
        if unit is not None and unit.kind == "comm":
            node = node_of_unit[id(unit)]
            if node.stream is None and event.stream is not None:
                node.issue_end_us = node.end_us
                node.duration_us = event.dur_us
                node.stream = event.stream
                node.in_chain = False
                node.end_us = event.end_us
                node.attrs["stream"] = event.stream
                if node.record is not None:
                    node.record["stream"] = event.stream
                node_of_event[index] = node
                report.device_fates["timed its collective"] += 1
                continue
        if unit is None:
            # Kineto usually spans more steps than the host trace: a kernel whose launch is
            # not in the host trace belongs to another step.
            report.device_fates["dropped: launched outside the host trace"] += 1
            continue
        report.device_fates["emitted"] += 1
        out.append(_kernel_node(event, index, unit))
        node_of_event[index] = out[-1]
    return out, node_of_event


def _unit_of_op(units: list[Unit]) -> dict[int, Unit]:
    """The unit every host op (folded members and backend spans included) belongs to."""
    unit_of_op: dict[int, Unit] = {}
    for owner in units:
        for member in (*owner.members, *owner.backend):
            unit_of_op[member.id] = owner
    return unit_of_op


def gpu_edges(kineto: KinetoTrace, schedule: GpuSchedule, node_of_event: dict[int, _Node]) -> None:
    """Give each GPU node the node before it on its stream and the nodes it waited for.

    Events without a node (launched outside the host trace) are skipped over on a stream:
    the previous node is the last one written for that stream."""
    last_written: dict[int, _Node] = {}
    for index, event in enumerate(kineto.gpu_events):
        node = node_of_event.get(index)
        stream = event.stream
        if node is None or stream is None:
            continue
        previous = last_written.get(stream)
        if previous is not None and previous is not node:
            node.gpu_deps.append(previous)
        for waited in schedule.waits.get(index, ()):
            other = node_of_event.get(waited)
            if other is not None and other is not node and other not in node.gpu_deps:
                node.gpu_deps.append(other)
        last_written[stream] = node


def sync_nodes(
    schedule: GpuSchedule,
    link: HostKinetoLink,
    units: list[Unit],
    node_of_unit: dict[int, _Node],
    node_of_event: dict[int, _Node],
    report: ConversionReport,
) -> list[_Node]:
    """Split every host op that blocked on the GPU at its first blocking call (module
    docstring); return the nodes of the parts after the calls."""
    unit_of_op = _unit_of_op(units)
    blocked: dict[int, tuple[_Node, float, list[_Node], str]] = {}
    for sync in schedule.syncs:
        call = sync.call
        op_id = link.enclosing_op(call.tid, call.ts_us)
        unit = unit_of_op.get(op_id) if op_id is not None else None
        if unit is None:
            report.gpu_syncs["ignored: not inside a host op of the trace"] += 1
            continue
        node = node_of_unit[id(unit)]
        if unit.kind != "comp" or node.start_us is None or node.end_us is None:
            # A collective's own syncs are part of its execution.
            report.gpu_syncs[f"ignored: inside a {unit.kind} node"] += 1
            continue
        waits = [node_of_event[i] for i in sync.waits if i in node_of_event]
        if not waits:
            report.gpu_syncs["no GPU work left to wait for"] += 1
            continue
        report.gpu_syncs[f"host op waits for the GPU ({call.name})"] += 1
        entry = blocked.get(id(node))
        if entry is None:
            blocked[id(node)] = (node, call.ts_us, waits, call.name)
        else:
            merged = entry[2] + [w for w in waits if w not in entry[2]]
            blocked[id(node)] = (node, min(entry[1], call.ts_us), merged, entry[3])
    out: list[_Node] = []
    for node, call_ts, waits, call_name in blocked.values():
        assert node.unit is not None and node.start_us is not None and node.end_us is not None
        split_us = min(max(call_ts, node.start_us), node.end_us)
        gpu_end = max(w.end_us if w.end_us is not None else split_us for w in waits)
        resume_us = min(max(split_us, gpu_end), node.end_us)
        op = node.unit.op
        after = _Node(
            Unit(HostOp(-1, f"{op.name} [{call_name}]", -1, tid=op.tid), "comp", members=[]),
            f"{op.name} [{call_name}]",
            COMP_NODE,
            split_us,
            node.end_us,
            node.end_us - resume_us,
            node.thread,
            (split_us, node.order_key[1], node.order_key[2]),
            {"is_cpu_op": True, "sync_of": op.id, "gpu_wait_us": round(resume_us - split_us)},
        )
        after.gpu_deps = waits
        node.end_us = split_us
        node.duration_us = split_us - node.start_us
        out.append(after)
    return out


def _kernel_node(event: KinetoEvent, index: int, unit: Unit | None) -> _Node:
    return _Node(
        None,
        event.name,
        COMP_NODE,
        event.ts_us,
        event.end_us,
        event.dur_us,
        None,
        (event.ts_us, 1 << 62, index),
        {"is_cpu_op": False, "stream": event.stream if event.stream is not None else -1},
        in_chain=False,
        stream=event.stream if event.stream is not None else -1,
        launcher=unit,
    )
