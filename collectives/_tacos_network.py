"""The link graph TACOS matches chunks over: group members joined by direct or relayed links.

TACOS itself refuses switches. Here every member-to-member route whose interior holds no
member (switches, NPUs outside the group) becomes one *virtual link* over the physical links
(switch ports) of its route. A chunk is stored and forwarded hop by hop, as the
congestion-aware cost model executes it: each port is busy only while its own hop lasts, and
two virtual links through one port never use it at the same time.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainsim.topology import DisconnectedError, Topology

from ._errors import GroupError
from ._local import FloatArray, IntArray

__all__ = ["LinkGraph", "link_graph"]


@dataclass(frozen=True, eq=False)
class LinkGraph:
    """Virtual links between the members of a group, each a route of physical links.

    ``members[i]`` is the NPU id of member ``i``; virtual link ``v`` goes from member
    ``src[v]`` to member ``dst[v]`` over the physical links ``hops[v]`` (ids as in
    ``topology.graph.edges()`` order, ``-1`` pads). A chunk of ``b`` bytes takes
    ``hop_latency_us + b * hop_us_per_byte`` on each hop (zero on pads), and the sum of those
    on the whole virtual link.
    """

    members: IntArray
    src: IntArray
    dst: IntArray
    hops: IntArray
    hop_latency_us: FloatArray
    hop_us_per_byte: FloatArray
    num_physical: int
    ingress_bytes_per_us: FloatArray
    egress_bytes_per_us: FloatArray

    @property
    def num_members(self) -> int:
        """Number of group members."""
        return int(self.members.size)

    @property
    def num_links(self) -> int:
        """Number of virtual links."""
        return int(self.src.size)

    @property
    def relayed(self) -> bool:
        """Whether some virtual link crosses a switch or a non-member NPU."""
        return bool(self.hops.shape[1] > 1)

    def hop_time_us(self, chunk_bytes: float) -> FloatArray:
        """Time one chunk of ``chunk_bytes`` takes on each hop of each virtual link."""
        out: FloatArray = self.hop_latency_us + chunk_bytes * self.hop_us_per_byte
        return out

    def chunk_time_us(self, chunk_bytes: float) -> FloatArray:
        """Time one chunk of ``chunk_bytes`` takes on each virtual link, end to end."""
        out: FloatArray = self.hop_time_us(chunk_bytes).sum(axis=1)
        return out

    def reversed(self) -> LinkGraph:
        """The transposed graph (every link turned round), for reduce-scatter synthesis."""
        return LinkGraph(
            members=self.members,
            src=self.dst,
            dst=self.src,
            hops=self.hops[:, ::-1].copy(),
            hop_latency_us=self.hop_latency_us[:, ::-1].copy(),
            hop_us_per_byte=self.hop_us_per_byte[:, ::-1].copy(),
            num_physical=self.num_physical,
            ingress_bytes_per_us=self.egress_bytes_per_us,
            egress_bytes_per_us=self.ingress_bytes_per_us,
        )


def link_graph(topology: Topology, ranks: Sequence[int] | None = None) -> LinkGraph:
    """Build the virtual links among ``ranks`` (default: every NPU) of ``topology``.

    Raises ``GroupError`` for an unknown or repeated rank and ``DisconnectedError`` naming
    the members that cannot reach, or be reached from, the first member.

    >>> from trainsim.topology import torus
    >>> g = link_graph(torus([4, 4]))
    >>> g.num_members, g.num_links
    (16, 64)
    """
    members = list(range(topology.num_npus)) if ranks is None else [int(r) for r in ranks]
    if not members:
        raise GroupError("empty rank group")
    if len(set(members)) != len(members):
        raise GroupError(f"rank group has duplicates: {members[:16]}")
    bad = [r for r in members if not 0 <= r < topology.num_npus]
    if bad:
        raise GroupError(
            f"rank {bad[0]} is not an NPU of {topology.name!r} ({topology.num_npus} NPUs)"
        )
    graph = topology.graph
    edges = list(graph.edges(data=True))
    link_id = {(u, v): i for i, (u, v, _) in enumerate(edges)}
    bytes_per_us = np.asarray([float(d["bandwidth_gbps"]) * 1e3 for _, _, d in edges])
    latency = np.asarray([float(d["latency_us"]) for _, _, d in edges])
    index = {npu: i for i, npu in enumerate(members)}
    routes: list[tuple[int, int, list[int]]] = []
    for u in members:
        for v, nodes in _reachable_members(graph, u, index).items():
            # A relayed transfer is executed along the cost models' route; where that route
            # crosses another member, the members' own links already cover it.
            route = topology.path(u, v) if len(nodes) > 2 else nodes
            if any(n in index for n in route[1:-1]):
                continue
            ids = [link_id[(a, b)] for a, b in itertools.pairwise(route)]
            routes.append((index[u], index[v], ids))
    width = max((len(r[2]) for r in routes), default=1)
    hops = np.full((len(routes), width), -1, dtype=np.int64)
    for k, (_, _, ids) in enumerate(routes):
        hops[k, : len(ids)] = ids
    valid = hops >= 0
    safe = np.maximum(hops, 0)
    src = np.asarray([r[0] for r in routes], dtype=np.int64)
    dst = np.asarray([r[1] for r in routes], dtype=np.int64)
    _check_strongly_connected(members, src, dst, topology.name)
    ingress = np.zeros(len(members))
    egress = np.zeros(len(members))
    for i, (a, b, _) in enumerate(edges):
        if b in index:
            ingress[index[b]] += bytes_per_us[i]
        if a in index:
            egress[index[a]] += bytes_per_us[i]
    return LinkGraph(
        members=np.asarray(members, dtype=np.int64),
        src=src,
        dst=dst,
        hops=hops,
        hop_latency_us=np.where(valid, latency[safe], 0.0),
        hop_us_per_byte=np.where(valid, 1.0 / bytes_per_us[safe], 0.0),
        num_physical=len(edges),
        ingress_bytes_per_us=ingress,
        egress_bytes_per_us=egress,
    )


def _reachable_members(graph: object, start: int, index: dict[int, int]) -> dict[int, list[int]]:
    """Members reachable from ``start`` through non-members only, with a fewest-hops route."""
    parent: dict[int, int] = {start: start}
    found: dict[int, list[int]] = {}
    queue = deque([start])
    successors = graph.successors  # type: ignore[attr-defined]
    while queue:
        node = queue.popleft()
        for nxt in successors(node):
            if nxt in parent:
                continue
            parent[nxt] = node
            if nxt in index:
                route = [nxt]
                while route[-1] != start:
                    route.append(parent[route[-1]])
                found[nxt] = route[::-1]
            else:
                queue.append(nxt)
    return found


def _check_strongly_connected(members: list[int], src: IntArray, dst: IntArray, name: str) -> None:
    n = len(members)
    if n <= 1:
        return
    forward = _reach(n, src, dst)
    backward = _reach(n, dst, src)
    cut = [members[i] for i in range(n) if not (forward[i] and backward[i])]
    if cut:
        shown = ", ".join(str(r) for r in cut[:16]) + (" ..." if len(cut) > 16 else "")
        raise DisconnectedError(
            f"{name!r}: NPUs that cannot reach or be reached from NPU {members[0]}: {shown}",
            cut_off=tuple(cut),
        )


def _reach(n: int, src: IntArray, dst: IntArray) -> list[bool]:
    order = np.argsort(src, kind="stable")
    starts = np.searchsorted(src[order], np.arange(n + 1))
    targets = dst[order].tolist()
    seen = [False] * n
    seen[0] = True
    stack = [0]
    while stack:
        node = stack.pop()
        for k in range(int(starts[node]), int(starts[node + 1])):
            t = targets[k]
            if not seen[t]:
                seen[t] = True
                stack.append(t)
    return seen
