"""The hybrid cost model: alpha-beta inside a node, NCCL's protocol costs across nodes."""

from __future__ import annotations

from trainsim.collectives import collective_time_us
from trainsim.topology import Dimension, DimKind, multi_dimensional

CLUSTER = multi_dimensional(
    [Dimension(DimKind.SWITCH, 8, 450.0, 0.5), Dimension(DimKind.SWITCH, 4, 50.0, 2.0)]
)


def test_intra_node_group_uses_alpha_beta() -> None:
    ranks = range(8)
    hybrid = collective_time_us("all_reduce", 8 << 20, ranks, CLUSTER, model="hybrid")
    assert hybrid == collective_time_us("all_reduce", 8 << 20, ranks, CLUSTER, model="analytical")
    assert hybrid < collective_time_us("all_reduce", 8 << 20, ranks, CLUSTER, model="nccl")


def test_cross_node_group_uses_nccl() -> None:
    ranks = range(0, 32, 8)
    hybrid = collective_time_us("all_reduce", 8 << 20, ranks, CLUSTER, model="hybrid")
    assert hybrid == collective_time_us("all_reduce", 8 << 20, ranks, CLUSTER, model="nccl")
    whole = collective_time_us("all_reduce", 8 << 20, range(32), CLUSTER, model="hybrid")
    assert whole == collective_time_us("all_reduce", 8 << 20, range(32), CLUSTER, model="nccl")
