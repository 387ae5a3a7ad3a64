"""Placement of a rank group (a TP or DP group, say) onto the network's dimensions and links."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ._errors import PlacementError
from ._model import Dimension, Topology

__all__ = ["Placement", "place_group"]


@dataclass(frozen=True)
class Placement:
    """Where a rank group sits: the dimensions it spans, its extent in each, the links it uses.

    ``dims`` lists the spanned dimension indices (lowest first) and ``sizes`` how many distinct
    coordinates the group takes in each. ``regular`` is true when the group is a full
    sub-grid (every combination of its coordinates present), which hierarchical algorithms
    need. ``links`` holds the directed links on routes between group members.
    """

    ranks: tuple[int, ...]
    dims: tuple[int, ...]
    sizes: tuple[int, ...]
    regular: bool
    links: frozenset[tuple[int, int]]
    local_coords: npt.NDArray[np.int64] | None = field(default=None, compare=False, repr=False)

    def dimensions(self, topology: Topology) -> list[Dimension]:
        """The ``Dimension`` objects spanned, in order, with ``npus`` set to the group extent."""
        out = []
        for d, size in zip(self.dims, self.sizes, strict=True):
            base = topology.dims[d]
            out.append(Dimension(base.kind, size, base.bandwidth_gbps, base.latency_us))
        return out


def place_group(topology: Topology, ranks: Sequence[int], *, with_links: bool = True) -> Placement:
    """Find the dimensions and links a rank group spans.

    >>> from trainsim.topology import parse_spec
    >>> p = place_group(parse_spec("ring:4,switch:4"), [0, 4, 8, 12])
    >>> p.dims, p.sizes, p.regular
    ((1,), (4,), True)
    """
    group = tuple(ranks) if isinstance(ranks, range) else tuple(map(int, ranks))
    if not group:
        raise PlacementError("empty rank group")
    if min(group) < 0 or max(group) >= topology.num_npus:
        bad = next(r for r in group if not 0 <= r < topology.num_npus)
        raise PlacementError(
            f"rank {bad} is not an NPU of {topology.name!r} (0..{topology.num_npus - 1})"
        )
    if len(set(group)) != len(group):
        seen: set[int] = set()
        for r in group:
            if r in seen:
                raise PlacementError(f"rank {r} appears twice in group {list(group)[:16]}")
            seen.add(r)
    links: set[tuple[int, int]] = set()
    if with_links and len(group) > 1:
        neighbours = _ring_neighbours(group)
        for a, b in neighbours:
            route = topology.path(a, b)
            links.update(itertools.pairwise(route))
    if not topology.dims:
        return Placement(group, (), (), len(group) > 0, frozenset(links))
    coords = topology.coords_array(group)
    spanned = []
    sizes = []
    local = []
    for d, dim in enumerate(topology.dims):
        # Coordinates are small integers: counting beats sorting for distinct values.
        present = np.bincount(coords[:, d], minlength=dim.npus) > 0
        count = int(present.sum())
        if count > 1:
            spanned.append(d)
            sizes.append(count)
            local.append((np.cumsum(present) - 1)[coords[:, d]])
    product = int(np.prod(sizes)) if sizes else 1
    regular = product == len(group)
    if regular and local:
        # Every combination of the spanned coordinates must occur exactly once.
        flat = np.ravel_multi_index(tuple(local), tuple(sizes))
        regular = int(np.bincount(flat, minlength=product).max()) == 1
    stacked = np.stack(local, axis=1) if local else np.zeros((len(group), 0), dtype=np.int64)
    return Placement(group, tuple(spanned), tuple(sizes), bool(regular), frozenset(links), stacked)


def _ring_neighbours(group: tuple[int, ...]) -> list[tuple[int, int]]:
    # Consecutive members both ways: enough to name the links any ring-ordered algorithm uses
    # without the quadratic cost of every pair on large groups.
    n = len(group)
    pairs = [(group[i], group[(i + 1) % n]) for i in range(n)]
    return pairs + [(b, a) for a, b in pairs]
