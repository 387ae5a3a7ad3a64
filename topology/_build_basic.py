"""Builders of single-level and grid networks: ring, fully connected, switch, torus, mesh..."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import networkx as nx

from ._build_util import add_duplex, add_switch, check_positive, npu_graph
from ._model import Dimension, DimKind, Topology

__all__ = ["fully_connected", "hypercube", "mesh", "multi_dimensional", "ring", "switch", "torus"]


def ring(num_npus: int, *, bandwidth_gbps: float = 50.0, latency_us: float = 0.5) -> Topology:
    """A bidirectional ring of ``num_npus`` NPUs.

    >>> ring(8).num_npus
    8
    """
    return multi_dimensional([Dimension(DimKind.RING, num_npus, bandwidth_gbps, latency_us)])


def fully_connected(
    num_npus: int, *, bandwidth_gbps: float = 50.0, latency_us: float = 0.5
) -> Topology:
    """Every NPU linked directly to every other.

    >>> fully_connected(4).graph.number_of_edges()
    12
    """
    return multi_dimensional(
        [Dimension(DimKind.FULLY_CONNECTED, num_npus, bandwidth_gbps, latency_us)]
    )


def switch(num_npus: int, *, bandwidth_gbps: float = 50.0, latency_us: float = 0.5) -> Topology:
    """NPUs hanging off one switch (two hops between any pair).

    >>> len(switch(8).switches)
    1
    """
    return multi_dimensional([Dimension(DimKind.SWITCH, num_npus, bandwidth_gbps, latency_us)])


def torus(
    shape: Sequence[int], *, bandwidth_gbps: float = 50.0, latency_us: float = 0.5
) -> Topology:
    """A k-dimensional torus (a ring along every axis); axis 0 varies fastest in NPU ids.

    >>> torus([4, 4]).num_npus
    16
    """
    return multi_dimensional(
        [Dimension(DimKind.RING, n, bandwidth_gbps, latency_us) for n in shape]
    )


def mesh(
    shape: Sequence[int], *, bandwidth_gbps: float = 50.0, latency_us: float = 0.5
) -> Topology:
    """A k-dimensional mesh (a line along every axis, no wrap-around links).

    >>> mesh([2, 3]).graph.number_of_edges()
    14
    """
    return multi_dimensional(
        [Dimension(DimKind.MESH, n, bandwidth_gbps, latency_us) for n in shape]
    )


def hypercube(dimension: int, *, bandwidth_gbps: float = 50.0, latency_us: float = 0.5) -> Topology:
    """A ``dimension``-cube of ``2**dimension`` NPUs (NPUs differing in one bit are linked).

    >>> hypercube(3).num_npus
    8
    """
    check_positive("dimension", dimension)
    return multi_dimensional(
        [Dimension(DimKind.FULLY_CONNECTED, 2, bandwidth_gbps, latency_us)] * dimension,
        name=f"Hypercube({dimension})",
    )


def multi_dimensional(dims: Sequence[Dimension], *, name: str | None = None) -> Topology:
    """The ASTRA-sim multi-dimensional network: each dimension a Ring, FullyConnected or Switch.

    NPU ``r`` has coordinates ``(r % n0, (r // n0) % n1, ...)``; the NPUs that differ only in
    coordinate ``d`` form one group of dimension ``d``, wired as that dimension's kind says.

    >>> from trainsim.topology import Dimension, DimKind
    >>> t = multi_dimensional([Dimension(DimKind.RING, 4, 200, 0.1),
    ...                        Dimension(DimKind.SWITCH, 4, 50, 0.5)])
    >>> t.num_npus, len(t.switches)
    (16, 4)
    """
    if not dims:
        raise ValueError("a multi-dimensional network needs at least one dimension")
    for i, d in enumerate(dims):
        check_positive(f"dims[{i}].npus", d.npus)
        if d.bandwidth_gbps <= 0:
            raise ValueError(f"dims[{i}].bandwidth_gbps must be > 0, got {d.bandwidth_gbps}")
        if d.latency_us < 0:
            raise ValueError(f"dims[{i}].latency_us must be >= 0, got {d.latency_us}")
    sizes = [d.npus for d in dims]
    total = 1
    for n in sizes:
        total *= n
    strides = [1]
    for n in sizes[:-1]:
        strides.append(strides[-1] * n)
    graph = npu_graph(total)
    for index, dim in enumerate(dims):
        others = [range(n) if j != index else range(1) for j, n in enumerate(sizes)]
        for base_coords in itertools.product(*others):
            base = sum(c * s for c, s in zip(base_coords, strides, strict=True))
            members = [base + k * strides[index] for k in range(dim.npus)]
            _wire_group(graph, dim, index, members)
    label = name or "x".join(f"{d.kind.value}({d.npus})" for d in dims)
    return Topology(graph, name=label, dims=dims)


def _wire_group(graph: nx.DiGraph, dim: Dimension, index: int, members: list[int]) -> None:
    n = len(members)
    bw, lat = dim.bandwidth_gbps, dim.latency_us
    if n == 1:
        return
    if dim.kind is DimKind.RING:
        pairs = {(members[k], members[(k + 1) % n]) for k in range(n)}
        for u, v in pairs:
            if u != v:
                add_duplex(graph, u, v, bw, lat, index)
    elif dim.kind is DimKind.MESH:
        for k in range(n - 1):
            add_duplex(graph, members[k], members[k + 1], bw, lat, index)
    elif dim.kind is DimKind.FULLY_CONNECTED:
        for a, b in itertools.combinations(members, 2):
            add_duplex(graph, a, b, bw, lat, index)
    else:
        hub = add_switch(graph, f"dim{index}-switch")
        graph.graph.setdefault("switch_of", {})[(index, members[0])] = hub
        for m in members:
            add_duplex(graph, m, hub, bw, lat, index)
