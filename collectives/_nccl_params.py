"""The figures of the NCCL model: protocol latencies per hop and achieved bandwidth fractions.

The defaults are NCCL's own tuning model (``src/graph/tuning.cc`` of NCCL 2.x, ring
algorithm): a fixed start-up per protocol plus a latency per ring step, one figure for steps
over NVLink and one for steps over the network (InfiniBand/RoCE). LL moves flags with the data
and reaches a quarter of the bandwidth, LL128 0.92 of it, Simple all of it.

Bandwidth: NCCL's tuning caps the NVLink bus bandwidth of an A100 (sm80) node at 235 GB/s of
its 300 GB/s per direction, so a scale-up dimension reaches ``235 / 300 = 0.78`` of its link
bandwidth; a scale-out dimension reaches 0.92 of its NIC bandwidth: in the nccl-tests log of
../shared/data (2 nodes of 8 H100, 8 x 25 GB/s NICs per node) the slope between the two
largest messages is a bus bandwidth of 346 GB/s, 0.92 of the 375 GB/s the NICs allow
(200 GB/s algorithm bandwidth x 2 x 15/16).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "NCCL_REFERENCE_NET_HOP_US",
    "NCCL_REFERENCE_NVLINK_HOP_US",
    "NcclParams",
    "NcclProtocol",
]

#: The wire latency of one hop on the fabric the protocol figures describe: an NVLink/NVSwitch
#: hop and an InfiniBand hop (switch and NIC traversal), the latencies the built-in clusters
#: state. NCCL's per-step figures include this much wire time; a topology whose hops take
#: longer or shorter moves every step by the difference.
NCCL_REFERENCE_NVLINK_HOP_US = 0.5
NCCL_REFERENCE_NET_HOP_US = 2.0


class NcclProtocol(BaseModel):
    """One NCCL protocol: start-up and per-step latencies, and its share of the bandwidth."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    base_latency_us: float = Field(ge=0.0, description="once per collective")
    scale_up_hop_us: float = Field(ge=0.0, description="per ring step inside a node")
    scale_out_hop_us: float = Field(ge=0.0, description="per ring step across the network")
    bandwidth_factor: float = Field(gt=0.0, le=1.0, description="of the achieved bandwidth")


#: NCCL 2.x ring figures (tuning.cc ``baseLat``/``hwLat``; LL and LL128 bandwidth shares).
NCCL_PROTOCOLS: tuple[NcclProtocol, ...] = (
    NcclProtocol(
        name="LL",
        base_latency_us=3.6,
        scale_up_hop_us=0.47,
        scale_out_hop_us=2.7,
        bandwidth_factor=0.25,
    ),
    NcclProtocol(
        name="LL128",
        base_latency_us=10.0,
        scale_up_hop_us=1.9,
        scale_out_hop_us=4.0,
        bandwidth_factor=0.92,
    ),
    NcclProtocol(
        name="Simple",
        base_latency_us=8.4,
        scale_up_hop_us=3.4,
        scale_out_hop_us=9.6,
        bandwidth_factor=1.0,
    ),
)


class NcclParams(BaseModel):
    """Protocol figures of one cluster type; the defaults are NVLink inside, InfiniBand across.

    Dimension 0 of a multi-dimensional topology is the node (scale-up, e.g. NVLink/NVSwitch);
    every outer dimension is the scale-out network. ``scale_up_efficiency`` and
    ``scale_out_efficiency`` are the fractions of a dimension's link bandwidth NCCL's Simple
    protocol reaches there. The protocols' hop figures hold for hops of
    ``reference_scale_up_hop_us`` and ``reference_scale_out_hop_us``; on a topology whose
    dimensions state other hop latencies, each step moves by the difference.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocols: tuple[NcclProtocol, ...] = NCCL_PROTOCOLS
    scale_up_efficiency: float = Field(0.78, gt=0.0, le=1.0)
    scale_out_efficiency: float = Field(0.92, gt=0.0, le=1.0)
    reference_scale_up_hop_us: float = Field(
        NCCL_REFERENCE_NVLINK_HOP_US, ge=0.0, description="wire latency in scale_up_hop_us"
    )
    reference_scale_out_hop_us: float = Field(
        NCCL_REFERENCE_NET_HOP_US, ge=0.0, description="wire latency in scale_out_hop_us"
    )
