"""A cost model for GPU clusters: NCCL protocol costs across nodes, alpha-beta inside a node.

The NCCL bus-bandwidth model (``NcclModel``) was calibrated on a two-node all-reduce log, so
its protocol start-up latencies (hundreds of microseconds) describe collectives that cross the
scale-out network; applied to an NVLink group inside one node they overstate small
collectives several times over. This model therefore sends a group that stays inside the
first (innermost, node) dimension of a multi-dimensional topology to the alpha-beta
``AnalyticalModel``, and every group that reaches an outer dimension to ``NcclModel``.
Topologies without dimensions have no node boundary and use the analytical model.
"""

from __future__ import annotations

from topology import place_group

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
