"""Gradient compression in the engine: data-parallel collectives take the compressed cost."""

from __future__ import annotations

import pytest

from trainsim.chakra_et import ETGraph, NodeType, new_node
from trainsim.collectives import CompressionSpec, collective_time_us, compressed_sync_time_us
from trainsim.engine import System, Workload, simulate

SIZE = 256 << 20


def _workload(kind: str, ranks: int = 16) -> Workload:
    attrs = {"comm_type": 0, "comm_size": SIZE, "pg_name": "1", "stream": kind}
    graph = ETGraph(nodes=[new_node(1, "grad_ar", NodeType.COMM_COLL_NODE, attrs=attrs)])
    return Workload.from_graphs(
        {r: graph for r in range(ranks)}, world_size=ranks, groups={"1": tuple(range(ranks))}
    )


@pytest.mark.parametrize("method", ["adacomp", "scalecom"])
def test_dp_collective_takes_the_compressed_time(method: str) -> None:
    spec = CompressionSpec(method=method, ratio=100.0)
    system = System(network="switch:16@12.5/1", compression=spec)
    result = simulate(_workload("dp"), system)
    expected_us = compressed_sync_time_us(
        spec,
        SIZE,
        tuple(range(16)),
        system.topology,
        None,
        system.cost_model,
        system.collective,
        op="all_reduce",
        memory_bandwidth_gbps=system.device_spec.hbm_bandwidth_gbps,
    )
    assert result.step_time_ns == pytest.approx(expected_us * 1000)
    dense_us = collective_time_us("all_reduce", SIZE, range(16), system.topology)
    assert expected_us < dense_us


def test_tensor_parallel_collectives_stay_dense() -> None:
    spec = CompressionSpec(method="scalecom", ratio=100.0)
    compressed = simulate(_workload("tp"), System(network="switch:16@12.5/1", compression=spec))
    dense = simulate(_workload("tp"), System(network="switch:16@12.5/1"))
    assert compressed.step_time_ns == dense.step_time_ns
