"""A bus-bandwidth model of NCCL-like behaviour on real clusters.

NCCL picks, per message size, the protocol with the least predicted time: LL (low latency,
a fraction of the bandwidth) for small messages, Simple (full bandwidth, a large fixed
pipeline latency) for large ones. The time of one protocol is ``latency + bytes / (efficiency x
peak algorithm bandwidth)``. The peak comes from the topology: a hierarchical collective moves
``2(n_d-1)/n_d`` of what is left of the buffer in dimension ``d``, in parallel with the other
dimensions, so the slowest dimension bounds the algorithm bandwidth.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from topology import Topology, place_group

from ._cost import CollectiveCost, CollectiveRequest, CostModel
from ._errors import AlgorithmError
from ._ops import CollectiveOp

__all__ = ["NcclModel", "NcclParams", "NcclProtocol"]


class NcclProtocol(BaseModel):
    """One NCCL protocol: fixed latency and the fraction of peak bandwidth it reaches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    latency_us: float = Field(ge=0.0)
    efficiency: float = Field(gt=0.0, le=1.0)


class NcclParams(BaseModel):
    """Protocol figures of one cluster type; the default set describes GCP A3-Mega.

    A3-Mega (8 H100 per node, NVLink 450 GB/s per direction, 8 x 200 Gb/s GPUDirect-TCPXO NICs)
    was calibrated once over the whole all_reduce_perf log of ../shared/data (two points per
    protocol: the large-message slope and intercept for Simple, the small-message ones for LL),
    never per row: Simple reaches 92% of the peak after a ~930 us pipeline start-up; LL reaches
    10% after ~150 us.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocols: tuple[NcclProtocol, ...] = (
        NcclProtocol(name="LL", latency_us=150.0, efficiency=0.10),
        NcclProtocol(name="Simple", latency_us=930.0, efficiency=0.92),
    )


class NcclModel(CostModel):
    """Predicts nccl-tests' time and bus bandwidth; the algorithm is NCCL's choice, not ours."""

    name = "nccl"

    def __init__(self, params: NcclParams | None = None) -> None:
        self.params = params or NcclParams()

    def peak_algbw_gbps(
        self, op: CollectiveOp, ranks: tuple[int, ...], topology: Topology
    ) -> float:
        """Algorithm bandwidth the slowest dimension allows (1e9 bytes/s)."""
        placement = place_group(topology, ranks, with_links=False)
        if not placement.dims:
            bw = min(link.bandwidth_gbps for link in topology.links())
            factor = op.bus_factor(len(ranks)) or 1.0
            return bw / factor
        remaining = 1.0
        best = float("inf")
        for dim in placement.dimensions(topology):
            n = dim.npus
            if op is CollectiveOp.ALL_REDUCE:
                moved = 2.0 * (n - 1) / n * remaining
            else:
                moved = (n - 1) / n * remaining
            best = min(best, dim.bandwidth_gbps / moved)
            remaining /= n
        return best

    def estimate(self, request: CollectiveRequest) -> CollectiveCost:
        """Time of the fastest protocol for this size."""
        if not self.params.protocols:
            raise AlgorithmError("NcclParams has no protocol")
        n = len(request.ranks)
        if n <= 1:
            return CollectiveCost(request.op, request.size_bytes, n, "nccl", self.name, 0.0)
        peak = self.peak_algbw_gbps(request.op, request.ranks, request.topology)
        volume = request.op.algbw_bytes(request.size_bytes, n)
        best_ns = float("inf")
        best_name = ""
        for proto in self.params.protocols:
            t = proto.latency_us * 1000.0 + volume / (proto.efficiency * peak)
            if t < best_ns:
                best_ns, best_name = t, proto.name
        return CollectiveCost(
            request.op, request.size_bytes, n, f"nccl-{best_name}", self.name, best_ns
        )
