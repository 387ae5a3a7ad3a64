"""Helpers shared by the builders: empty graphs with NPUs, duplex links, argument checks."""

from __future__ import annotations

import networkx as nx

from ._errors import LinkError, TopologyError
from ._model import NodeKind

__all__ = ["add_duplex", "add_switch", "check_positive", "npu_graph"]


def npu_graph(num_npus: int) -> nx.DiGraph:
    """A graph holding NPUs ``0 .. num_npus-1`` and no links."""
    check_positive("num_npus", num_npus)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(num_npus), kind=NodeKind.NPU.value)
    return graph


def add_switch(graph: nx.DiGraph, label: str) -> int:
    """Add a switch node after every existing node and return its id."""
    node: int = graph.number_of_nodes()
    while node in graph:
        node += 1
    graph.add_node(node, kind=NodeKind.SWITCH.value, label=label)
    return node


def add_duplex(
    graph: nx.DiGraph, u: int, v: int, bandwidth_gbps: float, latency_us: float, dim: int = -1
) -> None:
    """Add a full-duplex cable: one edge per direction, each with the full bandwidth."""
    if bandwidth_gbps <= 0:
        raise LinkError(f"link {u}<->{v}: bandwidth_gbps must be > 0, got {bandwidth_gbps}")
    if latency_us < 0:
        raise LinkError(f"link {u}<->{v}: latency_us must be >= 0, got {latency_us}")
    attrs = {"bandwidth_gbps": float(bandwidth_gbps), "latency_us": float(latency_us), "dim": dim}
    graph.add_edge(u, v, **attrs)
    graph.add_edge(v, u, **attrs)


def check_positive(field: str, value: float, minimum: float = 1) -> None:
    """Raise ``TopologyError`` naming ``field`` when ``value`` is below ``minimum``."""
    if value < minimum:
        raise TopologyError(f"{field} must be >= {minimum}, got {value}")
