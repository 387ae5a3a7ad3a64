"""A cost model for GPU clusters: NCCL protocol costs across nodes, alpha-beta inside a node.

Inside a node the alpha-beta ``AnalyticalModel`` prices a collective from the topology's own
link latencies and bandwidths (no protocol start-up, the full link bandwidth), where
``NcclModel`` applies NCCL's protocol latencies and achieved bandwidth. This model sends a
group that stays inside the first (innermost, node) dimension of a multi-dimensional topology
to the analytical model, and every group that reaches an outer dimension to ``NcclModel``.
Topologies without dimensions have no node boundary and use the analytical model.
"""

from __future__ import annotations

from trainsim.topology import place_group

from ._cost import AnalyticalModel, CollectiveCost, CollectiveRequest, CostModel
from ._nccl import NcclModel

__all__ = ["HybridModel"]


class HybridModel(CostModel):
    """NCCL's costs for groups that cross nodes, alpha-beta for groups inside a node."""

    name = "hybrid"

    def __init__(self, nccl: NcclModel | None = None) -> None:
        self.inside = AnalyticalModel()
        self.across = nccl or NcclModel()

    def estimate(self, request: CollectiveRequest) -> CollectiveCost:
        """Cost ``request`` with the model for where its group sits."""
        topology = request.topology
        if topology.dims and len(request.ranks) > 1:
            placement = place_group(topology, request.ranks, with_links=False)
            if placement.dims and max(placement.dims) > 0:
                return self.across.estimate(request)
        return self.inside.estimate(request)
