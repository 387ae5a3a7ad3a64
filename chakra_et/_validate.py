"""Validation of an ET graph: the rules a graph must meet before it can be simulated.

Every problem is collected (not just the first), each with its node id and field, and raised
together as one ``ETValidationError``.
"""

from __future__ import annotations

from trainsim.chakra_et._attrs import attrs_dict
from trainsim.chakra_et._errors import ETValidationError, Problem
from trainsim.chakra_et._graph import ETGraph, node_type_name
from trainsim.chakra_et.schema import CollectiveCommType, Node, NodeType

__all__ = ["MAX_DURATION_MICROS", "check", "validate"]

#: A single node longer than a week is a unit mix-up (ns written as µs) or garbage.
MAX_DURATION_MICROS = 7 * 24 * 3600 * 1_000_000
#: A single message above 1 PiB is not a real transfer.
_MAX_COMM_BYTES = 2**50

_KNOWN_TYPES = frozenset(NodeType.values())
_KNOWN_COLLECTIVES = frozenset(CollectiveCommType.values())
# Plain ints: attribute lookups on the protobuf enum wrapper are slow in a million-node loop.
_INVALID = int(NodeType.INVALID_NODE)
_COLL = int(NodeType.COMM_COLL_NODE)
_SEND = int(NodeType.COMM_SEND_NODE)
_RECV = int(NodeType.COMM_RECV_NODE)

# What ASTRA-sim needs to run a communication node (p2p src/dst default to the own rank).
_REQUIRED: dict[int, tuple[str, ...]] = {
    _COLL: ("comm_type", "comm_size"),
    _SEND: ("comm_dst", "comm_size", "comm_tag"),
    _RECV: ("comm_src", "comm_size", "comm_tag"),
}


def _check_comm(node: Node, node_type: int, problems: list[Problem]) -> None:
    attrs = attrs_dict(node)
    for field in _REQUIRED[node_type]:
        if field not in attrs:
            what = (
                "collective node has no comm_type"
                if field == "comm_type"
                else (f"{node_type_name(node_type)} has no {field} attribute")
            )
            problems.append(Problem(node.id, field, what))
    for field in ("comm_type", "comm_size", "comm_src", "comm_dst", "comm_tag"):
        value = attrs.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append(Problem(node.id, field, f"must be an integer, got {value!r}"))
            attrs.pop(field)
    comm_type = attrs.get("comm_type")
    if node_type == _COLL and isinstance(comm_type, int) and comm_type not in _KNOWN_COLLECTIVES:
        problems.append(Problem(node.id, "comm_type", f"unknown collective type {comm_type}"))
    size = attrs.get("comm_size")
    if isinstance(size, int) and not 0 <= size <= _MAX_COMM_BYTES:
        problems.append(Problem(node.id, "comm_size", f"{size} bytes is out of range [0, 2^50]"))
    for field in ("comm_src", "comm_dst"):
        rank = attrs.get(field)
        if isinstance(rank, int) and rank < 0:
            problems.append(Problem(node.id, field, f"rank {rank} is negative"))


def check(graph: ETGraph) -> list[Problem]:
    """Return every problem of a graph, errors and warnings (empty when it is clean)."""
    problems: list[Problem] = []
    all_ids = graph.nodes.keys()
    seen: set[int] = set()
    forward_refs = False  # a dependency on a later node: only then can there be a cycle
    for node in graph.node_list:
        node_id, node_type = node.id, node.type
        if node_id in seen:
            problems.append(Problem(node_id, "id", "duplicate node id"))
        seen.add(node_id)
        if node_type not in _KNOWN_TYPES:
            problems.append(Problem(node_id, "type", f"unknown node type {node_type}"))
        elif node_type == _INVALID:
            problems.append(Problem(node_id, "type", "INVALID_NODE is not executable"))
        elif node_type in _REQUIRED:
            _check_comm(node, node_type, problems)
        duration = node.duration_micros
        if duration > MAX_DURATION_MICROS:
            problems.append(
                Problem(
                    node_id,
                    "duration_micros",
                    f"{duration} µs is longer than a week ({MAX_DURATION_MICROS} µs)",
                )
            )
        for kind, deps in (("data_deps", node.data_deps), ("ctrl_deps", node.ctrl_deps)):
            for dep in deps:
                if dep in seen:
                    if dep == node_id:
                        problems.append(Problem(node_id, "deps", "node depends on itself"))
                elif dep in all_ids:
                    forward_refs = True
                else:
                    problems.append(
                        Problem(
                            node_id,
                            kind,
                            f"depends on missing node {dep} (treated as satisfied)",
                            severity="warning",
                        )
                    )
    if forward_refs:
        cycle = graph.find_cycle()
        if cycle:
            path = " -> ".join(str(c) for c in cycle)
            problems.append(Problem(cycle[0], "deps", f"dependency cycle {path}"))
    return problems


def validate(graph: ETGraph, *, source: str = "graph") -> list[Problem]:
    """Raise ``ETValidationError`` listing every error; return the warnings when it is valid."""
    problems = check(graph)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ETValidationError(errors, source=source)
    return problems
