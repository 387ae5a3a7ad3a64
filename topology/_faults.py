"""Faults and irregularity: remove or slow links and NPUs, keeping a usable topology."""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from ._errors import DisconnectedError, LinkError, NodeError
from ._model import NodeKind, Topology

__all__ = ["check_connected", "remove_links", "remove_npus", "slow_links"]


def remove_links(
    topology: Topology, links: Iterable[tuple[int, int]], *, both_directions: bool = True
) -> Topology:
    """A copy of ``topology`` without ``links``; raises if that cuts NPUs off from each other.

    >>> from trainsim.topology import ring
    >>> remove_links(ring(4), [(0, 1)]).graph.has_edge(1, 0)
    False
    """
    graph = topology.graph.copy()
    for u, v in links:
        if not graph.has_edge(u, v):
            raise LinkError(f"cannot remove link {u}->{v}: no such link in {topology.name!r}")
        graph.remove_edge(u, v)
        if both_directions and graph.has_edge(v, u):
            graph.remove_edge(v, u)
    result = Topology(graph, name=f"{topology.name}-faulty", dims=())
    check_connected(result)
    return result


def slow_links(
    topology: Topology,
    links: Iterable[tuple[int, int]],
    *,
    factor: float,
    both_directions: bool = True,
) -> Topology:
    """A copy where ``links`` run at ``bandwidth / factor`` (degraded cables, throttled NICs).

    The multi-dimensional form is dropped: the network is no longer uniform per dimension.
    """
    if factor < 1:
        raise LinkError(f"slow-down factor must be >= 1, got {factor}")
    graph = topology.graph.copy()
    for u, v in links:
        pairs = [(u, v), (v, u)] if both_directions else [(u, v)]
        if not graph.has_edge(u, v):
            raise LinkError(f"cannot slow link {u}->{v}: no such link in {topology.name!r}")
        for a, b in pairs:
            if graph.has_edge(a, b):
                graph[a][b]["bandwidth_gbps"] = graph[a][b]["bandwidth_gbps"] / factor
    return Topology(graph, name=f"{topology.name}-slowed", dims=())


def remove_npus(topology: Topology, npus: Iterable[int]) -> Topology:
    """A copy without the given NPUs; the survivors are renumbered ``0..N-1`` in order.

    The mapping old id -> new id is stored in ``graph.graph["renumbered"]``.
    """
    dead = set(npus)
    for n in dead:
        if n not in topology.npus:
            raise NodeError(
                f"cannot remove NPU {n}: {topology.name!r} has {topology.num_npus} NPUs"
            )
    if len(dead) >= topology.num_npus:
        raise NodeError("cannot remove every NPU")
    graph = topology.graph.copy()
    graph.remove_nodes_from(dead)
    survivors = [n for n in topology.npus if n not in dead]
    mapping = {old: new for new, old in enumerate(survivors)}
    others = [n for n in graph.nodes if n not in mapping]
    for offset, node in enumerate(others):
        mapping[node] = len(survivors) + offset
    relabelled = nx.relabel_nodes(graph, mapping, copy=True)
    relabelled.graph["renumbered"] = {old: new for old, new in mapping.items() if old in survivors}
    result = Topology(relabelled, name=f"{topology.name}-minus{len(dead)}", dims=())
    check_connected(result)
    return result


def check_connected(topology: Topology) -> None:
    """Raise ``DisconnectedError`` naming the NPUs that NPU 0 cannot reach (or vice versa)."""
    graph = topology.graph
    if topology.num_npus <= 1:
        return
    reach = nx.descendants(graph, 0) | {0}
    back = nx.ancestors(graph, 0) | {0}
    npus = {n for n, k in graph.nodes(data="kind") if k == NodeKind.NPU.value}
    cut = sorted(npus - (reach & back))
    if cut:
        shown = ", ".join(str(n) for n in cut[:16]) + (" ..." if len(cut) > 16 else "")
        raise DisconnectedError(
            f"{topology.name!r}: NPUs cut off from NPU 0: {shown}", cut_off=tuple(cut)
        )
