"""The ``Topology`` type: a directed graph of NPUs and switches with per-link bandwidth/latency."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cached_property

import networkx as nx
import numpy as np
import numpy.typing as npt

from ._errors import LinkError, NodeError

__all__ = ["DimKind", "Dimension", "Link", "NodeKind", "Topology"]

#: ASTRA-sim and TACOS write "GB/s" but divide by 2^30; multiply such values by this.
GIB_PER_GB = 2**30 / 1e9


class NodeKind(str, Enum):
    """What a graph node is: an endpoint that computes (NPU) or a forwarding switch."""

    NPU = "npu"
    SWITCH = "switch"


class DimKind(str, Enum):
    """Shape of one network dimension, as ASTRA-sim's multi-dimensional form names them."""

    RING = "Ring"
    FULLY_CONNECTED = "FullyConnected"
    SWITCH = "Switch"
    MESH = "Mesh"

    @classmethod
    def parse(cls, text: str) -> DimKind:
        """Read a dimension kind case-insensitively (``ring``, ``FC``, ``switch``...)."""
        key = text.strip().lower().replace("_", "").replace("-", "")
        aliases = {
            "ring": cls.RING,
            "fullyconnected": cls.FULLY_CONNECTED,
            "fc": cls.FULLY_CONNECTED,
            "switch": cls.SWITCH,
            "mesh": cls.MESH,
        }
        if key not in aliases:
            allowed = ", ".join(k.value for k in cls)
            raise ValueError(f"unknown dimension kind {text!r} (allowed: {allowed})")
        return aliases[key]


@dataclass(frozen=True)
class Dimension:
    """One dimension of a multi-dimensional network: its shape, size and per-link figures.

    ``bandwidth_gbps`` is in 1e9 bytes per second per link direction; ``latency_us`` is the
    per-link (per-hop) latency.
    """

    kind: DimKind
    npus: int
    bandwidth_gbps: float
    latency_us: float

    def hops(self, distance: int) -> int:
        """Links a message crosses between two NPUs ``distance`` positions apart in this dim."""
        if distance == 0:
            return 0
        if self.kind is DimKind.RING:
            d = distance % self.npus
            return min(d, self.npus - d)
        if self.kind is DimKind.MESH:
            return abs(distance)
        if self.kind is DimKind.SWITCH:
            return 2
        return 1


@dataclass(frozen=True)
class Link:
    """One directed link: endpoints, bandwidth (1e9 bytes/s), latency and owning dimension."""

    src: int
    dst: int
    bandwidth_gbps: float
    latency_us: float
    dim: int = -1

    def transfer_time_us(self, size_bytes: float) -> float:
        """Time for one message of ``size_bytes`` to cross this link, latency included."""
        return self.latency_us + size_bytes / (self.bandwidth_gbps * 1e3)


class Topology:
    """A network of NPUs and switches as a directed ``networkx`` graph.

    NPUs are the nodes ``0 .. num_npus-1``; switches take the ids after them. Every edge carries
    ``bandwidth_gbps`` (1e9 bytes/s) and ``latency_us``; a full-duplex cable is two edges.
    ``dims`` is set when the network has the ASTRA-sim multi-dimensional form (NPU ``r`` has
    coordinates with dimension 0 varying fastest); algorithms and the analytical cost model use
    it to find which dimensions a rank group spans.

    >>> from trainsim.topology import ring
    >>> t = ring(4, bandwidth_gbps=50, latency_us=0.5)
    >>> t.num_npus, t.link(0, 1).bandwidth_gbps
    (4, 50.0)
    """

    def __init__(
        self, graph: nx.DiGraph, *, name: str = "custom", dims: Sequence[Dimension] = ()
    ) -> None:
        self._graph = graph
        self._name = name
        self._dims = tuple(dims)
        npus = sorted(n for n, k in graph.nodes(data="kind") if k == NodeKind.NPU.value)
        if npus != list(range(len(npus))):
            raise NodeError(f"topology {name!r}: NPU ids must be 0..N-1, got {npus[:8]}...")
        self._num_npus = len(npus)
        for u, v, data in graph.edges(data=True):
            bw = data.get("bandwidth_gbps")
            lat = data.get("latency_us")
            if not isinstance(bw, (int, float)) or bw <= 0:
                raise LinkError(f"link {u}->{v}: bandwidth_gbps must be > 0, got {bw!r}")
            if not isinstance(lat, (int, float)) or lat < 0:
                raise LinkError(f"link {u}->{v}: latency_us must be >= 0, got {lat!r}")
        if self._dims:
            product = 1
            for d in self._dims:
                product *= d.npus
            if product != self._num_npus:
                raise NodeError(
                    f"topology {name!r}: dims multiply to {product} NPUs but the graph has "
                    f"{self._num_npus}"
                )

    @property
    def graph(self) -> nx.DiGraph:
        """The underlying graph; treat it as read-only (faults return new topologies)."""
        return self._graph

    @property
    def name(self) -> str:
        """A short human-readable description, e.g. ``Ring(8)``."""
        return self._name

    @property
    def dims(self) -> tuple[Dimension, ...]:
        """The multi-dimensional form, or ``()`` when the network has none."""
        return self._dims

    @property
    def num_npus(self) -> int:
        """Number of NPUs (ranks)."""
        return self._num_npus

    @property
    def npus(self) -> range:
        """The NPU node ids."""
        return range(self._num_npus)

    @property
    def switches(self) -> list[int]:
        """The switch node ids."""
        return [n for n, k in self._graph.nodes(data="kind") if k == NodeKind.SWITCH.value]

    def __repr__(self) -> str:
        return (
            f"Topology({self._name!r}, npus={self._num_npus}, switches={len(self.switches)}, "
            f"links={self._graph.number_of_edges()})"
        )

    def link(self, src: int, dst: int) -> Link:
        """The directed link ``src -> dst``; raises ``LinkError`` naming both ends if absent."""
        data = self._graph.get_edge_data(src, dst)
        if data is None:
            raise LinkError(f"no link {src}->{dst} in topology {self._name!r}")
        return Link(
            src,
            dst,
            float(data["bandwidth_gbps"]),
            float(data["latency_us"]),
            int(data.get("dim", -1)),
        )

    def links(self) -> Iterator[Link]:
        """Every directed link."""
        for u, v, data in self._graph.edges(data=True):
            yield Link(
                u,
                v,
                float(data["bandwidth_gbps"]),
                float(data["latency_us"]),
                int(data.get("dim", -1)),
            )

    @cached_property
    def _link_index(self) -> dict[tuple[int, int], int]:
        return {(u, v): i for i, (u, v) in enumerate(self._graph.edges())}

    def link_id(self, src: int, dst: int) -> int:
        """Dense integer id of the link ``src -> dst`` (stable for this topology object)."""
        try:
            return self._link_index[(src, dst)]
        except KeyError:
            raise LinkError(f"no link {src}->{dst} in topology {self._name!r}") from None

    def coords(self, rank: int) -> tuple[int, ...]:
        """Coordinates of NPU ``rank`` in the multi-dimensional form (dimension 0 fastest)."""
        self._check_npu(rank)
        out = []
        rest = rank
        for d in self._dims:
            out.append(rest % d.npus)
            rest //= d.npus
        return tuple(out)

    def coords_array(self, ranks: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Coordinates of many NPUs at once, one row per rank (dimension 0 first)."""
        values = np.asarray(ranks, dtype=np.int64).reshape(-1)
        if values.size and (values.min() < 0 or values.max() >= self._num_npus):
            bad = int(values[(values < 0) | (values >= self._num_npus)][0])
            self._check_npu(bad)
        sizes = np.asarray([d.npus for d in self._dims], dtype=np.int64)
        strides = np.asarray(self._strides, dtype=np.int64)
        result: npt.NDArray[np.int64] = (values[:, None] // strides[None, :]) % sizes[None, :]
        return result

    def path(self, src: int, dst: int) -> list[int]:
        """Nodes of the route from node ``src`` to node ``dst``.

        Multi-dimensional networks use dimension-order routing (dimension 0 first, the short
        way round a ring), as ASTRA-sim does; other graphs use a fewest-hops path.
        """
        if src == dst:
            return [src]
        if self._dims and 0 <= src < self._num_npus and 0 <= dst < self._num_npus:
            return self._dim_order_route(src, dst)
        cached = self._routes.get(src)
        if cached is None:
            if src not in self._graph:
                raise NodeError(f"node {src} does not exist in {self._name!r}")
            cached = nx.single_source_shortest_path(self._graph, src)
            self._routes[src] = cached
        route = cached.get(dst)
        if route is None:
            raise LinkError(f"no route from node {src} to node {dst} in {self._name!r}")
        return list(route)

    def _dim_order_route(self, src: int, dst: int) -> list[int]:
        switch_of: dict[tuple[int, int], int] = self._graph.graph.get("switch_of", {})
        strides = self._strides
        route = [src]
        cur = list(self.coords(src))
        target = self.coords(dst)

        def node() -> int:
            return sum(c * s for c, s in zip(cur, strides, strict=True))

        for d, dim in enumerate(self._dims):
            n = dim.npus
            if cur[d] == target[d]:
                continue
            if dim.kind is DimKind.RING or dim.kind is DimKind.MESH:
                forward = (target[d] - cur[d]) % n
                if dim.kind is DimKind.MESH:
                    step = 1 if target[d] > cur[d] else -1
                else:
                    step = 1 if forward <= n - forward else -1
                while cur[d] != target[d]:
                    cur[d] = (cur[d] + step) % n
                    route.append(node())
            elif dim.kind is DimKind.SWITCH:
                cur[d] = 0
                route.append(switch_of[(d, node())])
                cur[d] = target[d]
                route.append(node())
            else:
                cur[d] = target[d]
                route.append(node())
        return route

    @cached_property
    def _strides(self) -> tuple[int, ...]:
        out = [1]
        for d in self._dims[:-1]:
            out.append(out[-1] * d.npus)
        return tuple(out)

    @cached_property
    def _routes(self) -> dict[int, dict[int, list[int]]]:
        return {}

    def _check_npu(self, rank: int) -> None:
        if not (0 <= rank < self._num_npus):
            raise NodeError(
                f"NPU {rank} does not exist (topology {self._name!r} has {self._num_npus} NPUs)"
            )
