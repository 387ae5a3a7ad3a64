"""The NCCL model: NCCL's ring latencies per hop and hierarchical bus bandwidth."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from trainsim.collectives import NcclModel, NcclParams, SystemConfig, collective_cost
from trainsim.topology import dgx_cluster, parse_spec

# 8 GPUs per node on NVLink (300 GB/s per direction, A100), one 25 GB/s NIC per GPU.
DGX_A100 = dgx_cluster(1, nvlink_bandwidth_gbps=300.0, nic_bandwidth_gbps=25.0)
TWO_NODES = dgx_cluster(2, nvlink_bandwidth_gbps=450.0, nic_bandwidth_gbps=25.0)


def test_small_all_reduce_in_a_node_pays_ll_latency_per_ring_step() -> None:
    cost = collective_cost("all_reduce", 8, range(8), DGX_A100, model="nccl")
    ll = NcclParams().protocols[0]
    # 2(n-1) = 14 ring steps over NVLink, plus LL's start-up; 8 bytes cost next to nothing.
    # Each step is NCCL's figure moved by this NVLink's hop latency minus NCCL's reference.
    shift = DGX_A100.dims[0].latency_us - NcclParams().reference_scale_up_hop_us
    assert cost.algorithm == "nccl-LL"
    expected = ll.base_latency_us + 14 * (ll.scale_up_hop_us + shift)
    assert cost.time_us == pytest.approx(expected, rel=1e-3)


def test_large_all_reduce_in_a_node_reaches_the_nvlink_efficiency() -> None:
    cost = collective_cost("all_reduce", 2**33, range(8), DGX_A100, model="nccl")
    assert cost.algorithm == "nccl-Simple"
    # NCCL's own A100 cap: 235 of 300 GB/s bus bandwidth.
    assert cost.busbw_gbps == pytest.approx(0.78 * 300.0, rel=0.01)


def test_steps_between_nodes_pay_the_network_hop() -> None:
    simple = NcclParams().protocols[2]
    params = NcclParams(protocols=(simple,))
    model = NcclModel(params)
    cost = collective_cost("all_reduce", 0, range(16), TWO_NODES, model=model)
    # 30 ring steps, 2 of them between the two nodes.
    up = TWO_NODES.dims[0].latency_us - params.reference_scale_up_hop_us
    out = TWO_NODES.dims[1].latency_us - params.reference_scale_out_hop_us
    expected = (
        simple.base_latency_us
        + 28 * (simple.scale_up_hop_us + up)
        + 2 * (simple.scale_out_hop_us + out)
    )
    assert cost.time_us == pytest.approx(expected)


@pytest.mark.parametrize("where", ["nvlink", "nic"])
def test_hop_latency_of_the_topology_moves_every_step(where: str) -> None:
    # A what-if on latency must change the prediction: 2 network steps or 28 NVLink steps of a
    # small all-reduce over two nodes each take 10 us longer when the hop does.
    def time_us(extra_us: float) -> float:
        topo = dgx_cluster(
            2,
            nvlink_bandwidth_gbps=450.0,
            nic_bandwidth_gbps=25.0,
            nvlink_latency_us=0.25 + (extra_us if where == "nvlink" else 0.0),
            nic_latency_us=2.0 + (extra_us if where == "nic" else 0.0),
        )
        return collective_cost("all_reduce", 1024, range(16), topo, model="nccl").time_us

    steps = 28 if where == "nvlink" else 2
    assert time_us(10.0) - time_us(0.0) == pytest.approx(steps * 10.0, rel=1e-6)


def test_peak_comes_from_the_scale_out_nics() -> None:
    op = collective_cost("all_reduce", 1, range(16), TWO_NODES).op
    peak = NcclModel().peak_algbw_gbps(op, tuple(range(16)), TWO_NODES)
    # inter-node: each GPU moves 1/8 of the buffer once over its 25 GB/s NIC, at 0.92 of it
    assert peak == pytest.approx(0.92 * 200.0)


def test_system_figures_replace_the_defaults() -> None:
    slow = NcclParams(
        protocols=tuple(
            p.model_copy(update={"scale_out_hop_us": 100.0}) for p in NcclParams().protocols
        )
    )
    base = collective_cost("all_reduce", 2**20, range(16), TWO_NODES, model="nccl")
    cost = collective_cost(
        "all_reduce", 2**20, range(16), TWO_NODES, model="nccl", system=SystemConfig(nccl=slow)
    )
    assert cost.time_us > base.time_us + 150.0


@pytest.mark.parametrize("op", ["send_recv", "broadcast"])
def test_a_whole_buffer_crosses_the_nic_at_no_more_than_its_bandwidth(op: str) -> None:
    # A pipeline send between GPU 0 and GPU 8 (two nodes) goes through one 25 GB/s NIC; a
    # two-rank broadcast the same. Nothing is split between the ranks, so 0.92 of 25 GB/s.
    size = 2**30
    cost = collective_cost(op, size, (0, 8), TWO_NODES, model="nccl")
    assert size / cost.time_us / 1e3 == pytest.approx(0.92 * 25.0, rel=0.01)
    inside = collective_cost(op, size, (0, 1), TWO_NODES, model="nccl")
    assert size / inside.time_us / 1e3 == pytest.approx(0.78 * 450.0, rel=0.01)


def _mi300x_sweep() -> list[tuple[int, float]]:
    path = (
        Path(__file__).resolve().parents[2].parent
        / "shared/data/reference/device-measurements/comm_collectives.csv"
    )
    with path.open() as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if r["device"] == "MI300X"
            and r["library"].startswith("rccl-tests")
            and r["collective"] == "all_reduce"
        ]
    return [(int(r["size_bytes"]), float(r["busbw_GBps"])) for r in rows]


def test_a_fully_connected_node_drives_all_its_links() -> None:
    # MI300X: 7 Infinity Fabric links of 64 GB/s; RCCL's rings run over all of them.
    mesh = parse_spec("fc:8@64")
    cost = collective_cost("all_reduce", 2**34, range(8), mesh, model="nccl")
    assert cost.busbw_gbps == pytest.approx(0.78 * 7 * 64.0, rel=0.01)


@pytest.mark.parametrize(("size", "busbw"), [r for r in _mi300x_sweep() if r[0] >= 2**26])
def test_mi300x_large_all_reduce_near_the_published_rccl_sweep(size: int, busbw: float) -> None:
    # The efficiency is NCCL's A100 NVLink cap, not fitted to this sweep: about 10% above it.
    cost = collective_cost("all_reduce", size, range(8), parse_spec("fc:8@64"), model="nccl")
    assert cost.busbw_gbps == pytest.approx(busbw, rel=0.12)
