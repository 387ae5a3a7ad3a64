"""Validation of an ET graph: the rules a graph must meet before it can be simulated.

Every problem is collected (not just the first), each with its node id and field, and raised
together as one ``ETValidationError``.
"""

from __future__ import annotations

from chakra_et._attrs import get_attr
from chakra_et._errors import ETValidationError, Problem
from chakra_et._graph import ETGraph, node_type_name
from chakra_et.schema import CollectiveCommType, Node, NodeType

__all__ = ["MAX_DURATION_MICROS", "check", "validate"]

#: A single node longer than a week is a unit mix-up (ns written as µs) or garbage.
MAX_DURATION_MICROS = 7 * 24 * 3600 * 1_000_000
#: A single message above 1 PiB is not a real transfer.
_MAX_COMM_BYTES = 2**50

_KNOWN_TYPES = frozenset(NodeType.values())
_KNOWN_COLLECTIVES = frozenset(CollectiveCommType.values())

# What ASTRA-sim needs to run a point-to-point node (src/dst default to the own rank).
_P2P_REQUIRED = {
    NodeType.COMM_SEND_NODE: ("comm_dst", "comm_size", "comm_tag"),
    NodeType.COMM_RECV_NODE: ("comm_src", "comm_size", "comm_tag"),
}


def _int_attr(node: Node, name: str, problems: list[Problem]) -> int | None:
    value = get_attr(node, name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(Problem(node.id, name, f"must be an integer, got {value!r}"))
        return None
    return value


def _check_node(node: Node, problems: list[Problem]) -> None:
    if node.type not in _KNOWN_TYPES:
        problems.append(Problem(node.id, "type", f"unknown node type {node.type}"))
        return
    if node.type == NodeType.INVALID_NODE:
        problems.append(Problem(node.id, "type", "INVALID_NODE is not executable"))
    if node.duration_micros > MAX_DURATION_MICROS:
        problems.append(
            Problem(
                node.id,
                "duration_micros",
                f"{node.duration_micros} µs is longer than a week ({MAX_DURATION_MICROS} µs)",
            )
        )
    if node.id in node.data_deps or node.id in node.ctrl_deps:
        problems.append(Problem(node.id, "deps", "node depends on itself"))
    if node.type == NodeType.COMM_COLL_NODE:
        comm_type = _int_attr(node, "comm_type", problems)
        if comm_type is None:
            problems.append(Problem(node.id, "comm_type", "collective node has no comm_type"))
        elif comm_type not in _KNOWN_COLLECTIVES:
            problems.append(Problem(node.id, "comm_type", f"unknown collective type {comm_type}"))
        required: tuple[str, ...] = ("comm_size",)
    else:
        required = _P2P_REQUIRED.get(node.type, ())
    for field in required:
        if get_attr(node, field) is None:
            problems.append(
                Problem(node.id, field, f"{node_type_name(node.type)} has no {field} attribute")
            )
    size = _int_attr(node, "comm_size", problems)
    if size is not None and not 0 <= size <= _MAX_COMM_BYTES:
        problems.append(Problem(node.id, "comm_size", f"{size} bytes is out of range [0, 2^50]"))
    for field in ("comm_src", "comm_dst"):
        rank = _int_attr(node, field, problems)
        if rank is not None and rank < 0:
            problems.append(Problem(node.id, field, f"rank {rank} is negative"))


def check(graph: ETGraph) -> list[Problem]:
    """Return every problem of a graph, errors and warnings (empty when it is clean)."""
    problems: list[Problem] = []
    seen: set[int] = set()
    for node in graph.node_list:
        if node.id in seen:
            problems.append(Problem(node.id, "id", "duplicate node id"))
        seen.add(node.id)
        _check_node(node, problems)
        for kind, deps in (("data_deps", node.data_deps), ("ctrl_deps", node.ctrl_deps)):
            for dep in deps:
                if dep not in seen and dep not in graph.nodes:
                    problems.append(
                        Problem(
                            node.id,
                            kind,
                            f"depends on missing node {dep} (treated as satisfied)",
                            severity="warning",
                        )
                    )
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
