"""The performance transform of compression against closed-form alpha-beta formulas."""

from __future__ import annotations

import pytest

from trainsim.collectives import (
    CompressionSpec,
    collective_time_us,
    compressed_sync_cost,
    compressed_sync_time_us,
)
from trainsim.topology import parse_spec

BW_GBPS, LINK_US = 12.5, 1.0
B = BW_GBPS * 1e3  # bytes per us
A = 2 * LINK_US  # a ring step through a switch crosses two links
D = 100e6
W_GBPS = 2000.0


def _net(n: int):  # type: ignore[no-untyped-def]
    return parse_spec(f"switch:{n}@{BW_GBPS}/{LINK_US}")


def _dense(n: int, nbytes: float) -> float:
    return 2 * (n - 1) * A + 2 * (n - 1) / n * nbytes / B


@pytest.mark.parametrize("n", [8, 32, 64])
def test_adacomp_is_an_all_gather_of_sparse_payloads(n: int) -> None:
    spec = CompressionSpec(method="adacomp", ratio=40.0, memory_bandwidth_gbps=W_GBPS)
    cost = compressed_sync_cost(spec, D, range(n), _net(n))
    s = D / 40.0
    overhead = (5.0 * D + 3.0 * (n - 1) * s) / (W_GBPS * 1e3)
    assert cost.dense_time_us == pytest.approx(_dense(n, D))
    assert cost.comm_time_us == pytest.approx((n - 1) * (A + s / B))
    assert cost.overhead_us == pytest.approx(overhead)
    assert cost.received_bytes == pytest.approx((n - 1) * s)
    assert [p[0] for p in cost.phases] == ["all_gather"]
    assert cost.mode == "compressed"


@pytest.mark.parametrize("n", [8, 64, 256])
def test_scalecom_is_index_broadcast_plus_all_reduce_of_k_values(n: int) -> None:
    spec = CompressionSpec(method="scalecom", ratio=100.0)
    cost = compressed_sync_cost(spec, D, range(n), _net(n))
    k = D / 4 / 100
    index, values = 4 * k, 4 * k
    broadcast = (n - 1) * A + (n - 1) / n * index / B + (n - 1) * (A + index / n / B)
    assert cost.comm_time_us == pytest.approx(broadcast + _dense(n, values))
    assert cost.payload_bytes == pytest.approx(index + values)
    assert cost.overhead_us == 0.0  # no memory bandwidth given: the compressor is free


def test_per_learner_traffic_grows_for_adacomp_and_not_for_scalecom() -> None:
    ada = CompressionSpec(method="adacomp", ratio=100.0, dense_fallback=False)
    scl = CompressionSpec(method="scalecom", ratio=100.0, dense_fallback=False)
    t_ada = [compressed_sync_time_us(ada, D, range(n), _net(n)) for n in (16, 64, 256)]
    t_scl = [compressed_sync_time_us(scl, D, range(n), _net(n)) for n in (16, 64, 256)]
    assert t_ada[2] / t_ada[0] == pytest.approx(255 / 15, rel=1e-9)
    bandwidth_part = [t - 4 * (n - 1) * A for t, n in zip(t_scl, (16, 64, 256), strict=True)]
    assert max(bandwidth_part) / min(bandwidth_part) < 1.07


def test_dense_fallback_when_compression_stops_paying() -> None:
    spec = CompressionSpec(method="adacomp", ratio=40.0)
    n = 128  # past 2 * CR learners the all-gather moves more than the ring all-reduce
    cost = compressed_sync_cost(spec, D, range(n), _net(n))
    assert cost.mode == "dense_fallback"
    assert cost.time_us == cost.dense_time_us
    assert cost.compressed_time_us > cost.dense_time_us
    no_fallback = CompressionSpec(method="adacomp", ratio=40.0, dense_fallback=False)
    assert compressed_sync_time_us(no_fallback, D, range(n), _net(n)) == cost.compressed_time_us


def test_layer_ratios_launch_overhead_and_memory_bandwidth_argument() -> None:
    spec = CompressionSpec(
        method="adacomp", ratio=40.0, layer_ratios={"fc": 200.0}, launch_overhead_us=10.0
    )
    fc = compressed_sync_cost(spec, D, range(8), _net(8), layer_type="fc")
    assert fc.ratio == 200.0
    assert fc.overhead_us == 10.0
    timed = compressed_sync_cost(spec, D, range(8), _net(8), memory_bandwidth_gbps=1000.0)
    assert timed.overhead_us == pytest.approx(10.0 + (5 * D + 3 * 7 * D / 40) / 1e6)


def test_other_ops_and_single_learner_stay_dense() -> None:
    spec = CompressionSpec(method="scalecom")
    gather = compressed_sync_cost(spec, D, range(8), _net(8), op="all_gather")
    assert gather.mode == "dense"
    assert gather.time_us == collective_time_us("all_gather", D, range(8), _net(8))
    assert compressed_sync_time_us(spec, D, [3], _net(8)) == 0.0


def test_reduce_scatter_maps_to_all_to_all_and_reduce_scatter() -> None:
    n = 16
    net = _net(n)
    ada = CompressionSpec(method="adacomp", ratio=50.0, dense_fallback=False)
    rs = compressed_sync_cost(ada, D, range(n), net, op="reduce_scatter")
    assert rs.phases[0][0] == "all_to_all"
    assert rs.comm_time_us == collective_time_us("all_to_all", D / 50, range(n), net)
    scl = CompressionSpec(method="scalecom", ratio=50.0, dense_fallback=False)
    rs2 = compressed_sync_cost(scl, D, range(n), net, op="reduce_scatter")
    assert [p[0] for p in rs2.phases] == ["broadcast", "reduce_scatter"]


def test_algorithm_the_compressed_collective_lacks_takes_the_default() -> None:
    spec = CompressionSpec(method="adacomp", dense_fallback=False)
    net = _net(8)
    tree = compressed_sync_cost(spec, D, range(8), net, "double_binary_tree")
    assert tree.comm_time_us == collective_time_us("all_gather", D / 40, range(8), net)
    assert tree.dense_time_us == collective_time_us(
        "all_reduce", D, range(8), net, "double_binary_tree"
    )
