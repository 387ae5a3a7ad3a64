"""Choosing the granularity of a converted ET: which host ops become nodes of their own.

A node is the outermost op on a thread that is neither a container (thread root, profiler
step, user annotation) nor an op wrapping communication: those are opened and their children
considered instead, so every ``c10d`` op becomes a node of its own and the rest of the time
stays in whole operators. Every host op gets exactly one fate for the report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from trainsim.chakra_et.convert._collectives import CommSpec, comm_spec, is_backend_op
from trainsim.chakra_et.convert._host_et import HostOp, HostTrace
from trainsim.chakra_et.convert._process_groups import PG_INIT_NAME

__all__ = ["Unit", "select_units"]

_ROOT_PREFIX = "[pytorch|profiler|execution_trace|"
_USER_SCOPE = 7  # RecordScope::USER_SCOPE: record_function() annotations
_RECORD_PARAM_COMMS = "record_param_comms"
_NON_COLLECTIVE_PARAM_COMMS = frozenset({"wait", "init", "", "barrier_wait"})


@dataclass(slots=True)
class Unit:
    """A host op that becomes one ET node, with what conversion learns about it."""

    op: HostOp
    kind: str  # "comp", "comm" or "metadata"
    spec: CommSpec | None = None
    param_comms: HostOp | None = None
    backend: list[HostOp] = field(default_factory=list)
    members: list[HostOp] = field(default_factory=list)  # folded host ops, the op included


def _kind(name: str) -> str:
    """Kind of a host op by name alone (user annotations are told apart afterwards)."""
    if name.startswith(_ROOT_PREFIX):
        return "thread_root"
    if name == PG_INIT_NAME:
        return "process_group_init"
    if name.startswith("ProfilerStep#"):
        return "profiler_step"
    if comm_spec(name) is not None:
        return "comm_op"
    if is_backend_op(name):
        return "comm_backend"
    if name == _RECORD_PARAM_COMMS:
        return "record_param_comms"
    return "operator"


def select_units(
    host: HostTrace,
) -> tuple[list[Unit], dict[int, Unit], dict[str, int], dict[str, int], list[HostOp]]:
    """Split a host trace into units.

    Returns the units in host order, each host op's unit (for ops folded into one), host op
    counts by kind, fates by op, and the backend spans (``gloo:*``, ``nccl:*``) still to pair.
    """
    by_id = host.by_id
    children: dict[int, list[HostOp]] = {}
    roots: list[HostOp] = []
    # Names repeat (aten::mm a thousand times): classify each name once.
    by_name: dict[str, str] = {}
    kinds: dict[int, str] = {}
    user_scoped: list[HostOp] = []  # operators that are annotations if they have children
    comm_ops: list[HostOp] = []
    for op in host.ops:
        op_id, parent = op.id, op.parent
        if parent == op_id or parent not in by_id:
            roots.append(op)
        elif parent in children:
            children[parent].append(op)
        else:
            children[parent] = [op]
        kind = by_name.get(op.name)
        if kind is None:
            kind = by_name[op.name] = _kind(op.name)
        if kind == "operator" and op.scope == _USER_SCOPE:
            user_scoped.append(op)
        elif kind == "comm_op":
            comm_ops.append(op)
        kinds[op_id] = kind
    for op in user_scoped:
        if op.id in children:
            kinds[op.id] = "annotation"
    counts = dict(Counter(kinds.values()))

    # Which ops wrap communication somewhere below them: walk up from each c10d op until an
    # ancestor already marked (comm ops are few, so this touches few ops).
    wraps_comm: set[int] = set()
    for op in comm_ops:
        cursor = by_id.get(op.parent) if op.parent != op.id else None
        steps = 0
        while cursor is not None and cursor.id not in wraps_comm and steps < len(by_id):
            wraps_comm.add(cursor.id)
            steps += 1  # bounds the walk on a parent cycle in a malformed trace
            cursor = by_id.get(cursor.parent) if cursor.parent != cursor.id else None

    units: list[Unit] = []
    unit_of: dict[int, Unit] = {}
    fates: dict[str, int] = {}
    backend_ops: list[HostOp] = []

    def fate(reason: str) -> None:
        fates[reason] = fates.get(reason, 0) + 1

    def fold(unit: Unit, top: HostOp) -> None:
        """Attach ``top``'s subtree to ``unit``; backend spans are paired later instead."""
        if top.id not in children:
            return  # most operators: nothing below them
        pending = list(children[top.id])
        inside = f"folded: inside {'c10d op' if unit.kind == 'comm' else 'operator'}"
        while pending:
            op = pending.pop()
            if op.id in unit_of:
                continue
            if kinds[op.id] == "comm_backend":
                # Its children are the enclosing op's own work that the trace filed under a
                # span started from another thread; they stay with the enclosing op.
                backend_ops.append(op)
                unit_of[op.id] = unit
                pending.extend(children.get(op.id, ()))
                continue
            unit_of[op.id] = unit
            unit.members.append(op)
            if kinds[op.id] == "record_param_comms" and unit.kind == "comm":
                unit.param_comms = unit.param_comms or op
                fate("folded: record_param_comms of its c10d op")
            else:
                fates[inside] = fates.get(inside, 0) + 1
            pending.extend(children.get(op.id, ()))

    stack = list(reversed(roots))
    visited: set[int] = set()
    emitted = 0
    while stack:
        op = stack.pop()
        op_id = op.id
        if op_id in visited or op_id in unit_of:
            continue
        visited.add(op_id)
        kind = kinds[op_id]
        if kind == "comm_backend":
            backend_ops.append(op)
            # See fold(): misfiled children of a worker span.
            stack.extend(reversed(children.get(op_id, ())))
            continue
        if kind in ("thread_root", "profiler_step", "annotation") or (
            kind == "operator" and op_id in wraps_comm
        ):
            reason = "wraps communication" if kind == "operator" else kind.replace("_", " ")
            fate(f"container: {reason}")
            stack.extend(reversed(children.get(op_id, ())))
            continue
        if kind == "process_group_init":
            unit = Unit(op, "metadata", members=[op])
        elif kind == "comm_op":
            unit = Unit(op, "comm", spec=comm_spec(op.name), members=[op])
        else:
            unit = Unit(op, "comp", members=[op])
        unit_of[op_id] = unit
        units.append(unit)
        emitted += 1
        fold(unit, op)
    if emitted:
        fates["emitted"] = emitted
    if len(visited.union(unit_of)) < len(host.ops):
        for op in host.ops:  # ops unreachable from any root (a parent cycle): counted, not lost
            if op.id not in visited and op.id not in unit_of and kinds[op.id] != "comm_backend":
                fate("dropped: unreachable from any thread root (parent cycle)")
    return units, unit_of, counts, fates, backend_ops
