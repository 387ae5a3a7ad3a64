"""A model of NCCL's collective times on GPU clusters, after NCCL's own tuning model.

NCCL picks, per message size, the protocol with the least predicted time: LL (low latency, a
quarter of the bandwidth) for small messages, LL128 in between, Simple (full bandwidth, the
largest start-up) for large ones. The time of one protocol is its latency plus the bytes over
its bandwidth:

* latency: a start-up plus one hop latency per ring step, ``2(n-1)`` steps for all-reduce and
  ``n-1`` for all-gather and reduce-scatter, of which the steps between nodes (``2(N-1)`` or
  ``N-1`` for a group over ``N`` nodes) pay the network's hop latency and the rest the node's;
  NCCL's per-step figures hold for the hop latencies of its reference fabric
  (``NcclParams.reference_*_hop_us``); a step moves by the topology's own hop latency minus
  that, node steps by dimension 0's, network steps by the slowest spanned outer dimension's;
* bandwidth: hierarchical, as NCCL's multi-node algorithms run: the collective moves
  ``2(n_d-1)/n_d`` (all-reduce) or ``(n_d-1)/n_d`` of what is left of the buffer in dimension
  ``d``, in parallel with the other dimensions, so the slowest dimension bounds the algorithm
  bandwidth; a dimension reaches its efficiency (``NcclParams``) of the bandwidth a rank has
  into it: one link on a switch or ring, all ``n - 1`` links of a fully connected node. A
  send/recv, broadcast or reduce moves its whole buffer over every dimension it crosses.

The figures come from ``NcclParams``: ``request.system.nccl`` when the system states them (a
cluster whose network differs from InfiniBand), NCCL's defaults otherwise.
"""

from __future__ import annotations

from trainsim.topology import Dimension, DimKind, Placement, Topology, place_group

from ._cost import CollectiveCost, CollectiveRequest, CostModel
from ._errors import AlgorithmError
from ._nccl_params import NcclParams
from ._ops import CollectiveOp

__all__ = ["NcclModel"]


def _ring_steps(op: CollectiveOp, n: int) -> int:
    """Steps of NCCL's ring for ``op`` over ``n`` participants (ranks or nodes)."""
    if n <= 1:
        return 0
    if op in (CollectiveOp.ALL_REDUCE, CollectiveOp.BARRIER):
        return 2 * (n - 1)
    if op in (CollectiveOp.BROADCAST, CollectiveOp.REDUCE):
        return n
    return n - 1


#: Operations whose whole buffer crosses each dimension (nothing is split among the ranks).
_WHOLE_BUFFER = frozenset((CollectiveOp.SEND_RECV, CollectiveOp.BROADCAST, CollectiveOp.REDUCE))


def _dimension_bandwidth_gbps(dim: Dimension) -> float:
    """Bandwidth one rank drives into a dimension, as NCCL/RCCL's channels use it.

    A switch or ring gives a rank its one port; a fully connected dimension (AMD's Infinity
    Fabric mesh) has a link to each of the other ``npus - 1`` ranks, and RCCL runs one ring
    channel per link pairing (``NCCL_MIN_NCHANNELS`` grows to cover the xGMI links), so the
    collective moves over all of them at once.
    """
    if dim.kind is DimKind.FULLY_CONNECTED:
        return dim.bandwidth_gbps * max(dim.npus - 1, 1)
    return dim.bandwidth_gbps


def _peak_algbw(
    op: CollectiveOp, n: int, placement: Placement, topology: Topology, params: NcclParams
) -> float:
    """Algorithm bandwidth (1e9 bytes/s) of a group placed as ``placement``."""
    if not placement.dims:
        bw = min(link.bandwidth_gbps for link in topology.links())
        return params.scale_up_efficiency * bw / (op.bus_factor(n) or 1.0)
    remaining = 1.0
    best = float("inf")
    for index, dim in zip(placement.dims, placement.dimensions(topology), strict=True):
        size = dim.npus
        if op is CollectiveOp.ALL_REDUCE:
            moved = 2.0 * (size - 1) / size * remaining
        elif op in _WHOLE_BUFFER:
            # A message, or a pipelined broadcast/reduce chain, crosses every link whole.
            moved = remaining
        else:
            moved = (size - 1) / size * remaining
        efficiency = params.scale_up_efficiency if index == 0 else params.scale_out_efficiency
        best = min(best, efficiency * _dimension_bandwidth_gbps(dim) / moved)
        remaining /= size
    return best


def _hop_shifts_us(
    placement: Placement, topology: Topology, params: NcclParams
) -> tuple[float, float]:
    """How much longer a node step and a network step take here than on NCCL's fabric."""
    dims = topology.dims
    if not dims:
        # A graph without dimensions (fat-tree, custom): no per-dimension latency to read.
        return 0.0, 0.0
    up = dims[0].latency_us - params.reference_scale_up_hop_us
    outer = [dims[d].latency_us for d in placement.dims if d > 0]
    if not outer:
        outer = [d.latency_us for d in dims[1:]] or [params.reference_scale_out_hop_us]
    return up, max(outer) - params.reference_scale_out_hop_us


class NcclModel(CostModel):
    """Predicts nccl-tests' time and bus bandwidth; the algorithm is NCCL's choice, not ours."""

    name = "nccl"

    def __init__(self, params: NcclParams | None = None) -> None:
        self.params = params or NcclParams()

    def peak_algbw_gbps(
        self,
        op: CollectiveOp,
        ranks: tuple[int, ...],
        topology: Topology,
        params: NcclParams | None = None,
    ) -> float:
        """Algorithm bandwidth the slowest dimension allows (1e9 bytes/s)."""
        placement = place_group(topology, ranks, with_links=False)
        return _peak_algbw(op, len(ranks), placement, topology, params or self.params)

    def estimate(self, request: CollectiveRequest) -> CollectiveCost:
        """Time of the fastest protocol for this size."""
        params = request.system.nccl or self.params
        if not params.protocols:
            raise AlgorithmError("NcclParams has no protocol")
        n = len(request.ranks)
        if n <= 1:
            return CollectiveCost(request.op, request.size_bytes, n, "nccl", self.name, 0.0)
        topology = request.topology
        placement = place_group(topology, request.ranks, with_links=False)
        nodes = 1
        for index, size in zip(placement.dims, placement.sizes, strict=True):
            if index > 0:
                nodes *= size
        steps = _ring_steps(request.op, n)
        inter = _ring_steps(request.op, nodes)
        intra = max(steps - inter, 0)
        peak = _peak_algbw(request.op, n, placement, topology, params)
        volume = request.op.algbw_bytes(request.size_bytes, n)
        up_shift_us, out_shift_us = _hop_shifts_us(placement, topology, params)
        best_ns = float("inf")
        best_name = ""
        for proto in params.protocols:
            latency_us = (
                proto.base_latency_us
                + intra * max(proto.scale_up_hop_us + up_shift_us, 0.0)
                + inter * max(proto.scale_out_hop_us + out_shift_us, 0.0)
            )
            t = latency_us * 1000.0 + volume / (proto.bandwidth_factor * peak)
            if t < best_ns:
                best_ns, best_name = t, proto.name
        return CollectiveCost(
            request.op, request.size_bytes, n, f"nccl-{best_name}", self.name, best_ns
        )
