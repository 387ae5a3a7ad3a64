"""Schedules: every algorithm delivers what its operation promises, on flat and multi-dim groups."""

from __future__ import annotations

import numpy as np
import pytest

from trainsim import collectives
from trainsim.collectives import (
    ALGORITHMS,
    AlgorithmError,
    CollectiveOp,
    DeliveryError,
    GroupError,
    Schedule,
    build_schedule,
    local_schedule,
    verify_delivery,
)
from trainsim.collectives._ring import ring_reference
from trainsim.topology import parse_spec, ring, switch

NETWORKS = {
    "flat": None,
    "ring8": ring(8),
    "switch8": switch(8),
    "ring4xswitch2": parse_spec("ring:4,switch:2"),
    "2x2x2": parse_spec("ring:2,fc:2,switch:2"),
}

SUPPORTED = {
    "ring": list(CollectiveOp),
    "ring_bidir": [op for op in CollectiveOp if op is not CollectiveOp.REDUCE_SCATTER],
    "direct": list(CollectiveOp),
    "halving_doubling": [
        CollectiveOp.ALL_REDUCE,
        CollectiveOp.REDUCE_SCATTER,
        CollectiveOp.ALL_GATHER,
        CollectiveOp.BARRIER,
    ],
    "double_binary_tree": [CollectiveOp.ALL_REDUCE, CollectiveOp.BARRIER],
    "in_network": [
        CollectiveOp.ALL_REDUCE,
        CollectiveOp.REDUCE,
        CollectiveOp.BROADCAST,
        CollectiveOp.BARRIER,
    ],
}


def test_public_api_is_stable() -> None:
    # The public surface changes only on purpose: update this list with the API.
    assert sorted(collectives.__all__) == [
        "ALGORITHMS",
        "AdaComp",
        "AdaCompResult",
        "AlgorithmError",
        "AnalyticalModel",
        "CollectiveCost",
        "CollectiveError",
        "CollectiveOp",
        "CollectiveRequest",
        "CompressedSync",
        "CompressionError",
        "CompressionSpec",
        "CompressionStats",
        "ConfigError",
        "CongestionModel",
        "CostModel",
        "DeliveryError",
        "Evaluation",
        "GroupError",
        "LocalSchedule",
        "MODELS",
        "NCCL_REFERENCE_NET_HOP_US",
        "NCCL_REFERENCE_NVLINK_HOP_US",
        "NcclModel",
        "NcclParams",
        "NcclProtocol",
        "Phase",
        "Plan",
        "ScaleCom",
        "ScaleComResult",
        "Schedule",
        "ScheduleSizeError",
        "SystemConfig",
        "TacosResult",
        "build_schedule",
        "calibrate_compression",
        "clear_tacos_cache",
        "collective_cost",
        "collective_time_us",
        "compressed_sync_cost",
        "compressed_sync_time_us",
        "compression_overhead_us",
        "evaluate",
        "get_model",
        "local_schedule",
        "parse_algorithm",
        "plan_phases",
        "read_astra_system",
        "routes_for",
        "synthesize_tacos",
        "tacos_cache_info",
        "tacos_lower_bound_us",
        "tacos_schedule",
        "to_msccl_json",
        "to_msccl_xml",
        "verify_delivery",
        "write_msccl",
    ]


def test_algorithms_listed() -> None:
    assert set(SUPPORTED) == set(ALGORITHMS)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("network", list(NETWORKS))
def test_delivery(algorithm: str, network: str) -> None:
    topo = NETWORKS[network]
    checked = 0
    for op in SUPPORTED[algorithm]:
        n = 2 if op is CollectiveOp.SEND_RECV else 8
        if algorithm == "in_network" and (topo is None or not topo.switches):
            continue
        if (
            algorithm == "ring_bidir"
            and network == "ring4xswitch2"
            and op in (CollectiveOp.ALL_REDUCE, CollectiveOp.BARRIER)
        ):
            continue  # bidirectional reduce-scatter cannot feed a next dimension
        schedule = build_schedule(op, range(n), 4096, topology=topo, algorithm=algorithm)
        verify_delivery(schedule)
        checked += 1
    assert checked or algorithm == "in_network"


def test_hierarchical_phases_and_sizes() -> None:
    topo = parse_spec("ring:4,switch:4")
    s = build_schedule("all_reduce", range(16), 1 << 20, topology=topo)
    assert [(p.op.value, p.dim) for p in s.phases] == [
        ("reduce_scatter", 0),
        ("all_reduce", 1),
        ("all_gather", 0),
    ]
    # the dim-1 all-reduce works on a quarter of the buffer, in quarters again
    in_phase1 = s.transfer_bytes[s.phase == 1]
    assert np.allclose(in_phase1, (1 << 20) / 16)
    verify_delivery(s)
    ag = build_schedule("all_gather", range(16), 1000, topology=topo)
    assert [p.dim for p in ag.phases] == [1, 0]
    assert set(ag.transfer_bytes[ag.phase == 1].tolist()) == {4000.0}
    verify_delivery(ag)
    a2a = build_schedule("all_to_all", range(16), 1600, topology=topo, algorithm="direct")
    verify_delivery(a2a)


def test_per_dimension_algorithms() -> None:
    topo = parse_spec("ring:4,switch:4")
    s = build_schedule(
        "all_reduce", range(16), 1 << 20, topology=topo, algorithm=["ring", "halving_doubling"]
    )
    assert [p.algorithm for p in s.phases] == ["ring", "halving_doubling", "ring"]
    verify_delivery(s)
    with pytest.raises(AlgorithmError, match="3 algorithms"):
        build_schedule("all_reduce", range(16), 1, topology=topo, algorithm=["ring"] * 3)


def test_subgroup_on_one_dimension() -> None:
    topo = parse_spec("switch:8,switch:4")
    s = build_schedule("all_reduce", [1, 9, 17, 25], 1 << 16, topology=topo)
    assert [p.dim for p in s.phases] == [1]
    assert set(s.src.tolist()) == {1, 9, 17, 25}
    verify_delivery(s)


def test_vectorised_ring_equals_reference() -> None:
    for op in (CollectiveOp.ALL_REDUCE, CollectiveOp.REDUCE_SCATTER, CollectiveOp.ALL_GATHER):
        for bidir in (False, True):
            for n in (2, 3, 5, 8):
                fast = local_schedule("ring_bidir" if bidir else "ring", op, n)
                slow = ring_reference(op, n, bidirectional=bidir)

                def key(s: collectives.LocalSchedule) -> list[tuple[int, ...]]:
                    return sorted(
                        zip(
                            s.step.tolist(),
                            s.src.tolist(),
                            s.dst.tolist(),
                            s.piece_ids.tolist(),
                            s.reduce.tolist(),
                            strict=True,
                        )
                    )

                assert key(fast) == key(slow)
                assert np.array_equal(fast.piece_dst, slow.piece_dst)


def test_tree_shapes_follow_astra() -> None:
    tree = collectives._tree.binary_tree(8)
    assert tree[7] == (-1, [3])
    assert sorted(tree[3][1]) == [1, 5]
    mirror = collectives._tree.binary_tree(8, mirrored=True)
    assert mirror[0] == (-1, [4])
    astra = local_schedule("double_binary_tree", CollectiveOp.ALL_REDUCE, 8, astra=True)
    assert astra.num_pieces == 1 and np.all(astra.size_frac == 1.0)
    nccl = local_schedule("double_binary_tree", CollectiveOp.ALL_REDUCE, 8)
    assert nccl.num_pieces == 2 and np.all(nccl.size_frac == 0.5)


def test_halving_doubling_sizes_and_errors() -> None:
    s = local_schedule("halving_doubling", CollectiveOp.ALL_REDUCE, 8)
    sizes = [float(s.size_frac[s.step == k][0]) for k in range(6)]
    assert sizes == [0.5, 0.25, 0.125, 0.125, 0.25, 0.5]
    with pytest.raises(AlgorithmError, match="power-of-two"):
        local_schedule("halving_doubling", CollectiveOp.ALL_REDUCE, 6)
    with pytest.raises(AlgorithmError, match="all_to_all"):
        local_schedule("halving_doubling", CollectiveOp.ALL_TO_ALL, 8)


def test_verify_catches_broken_schedules() -> None:
    good = build_schedule("all_reduce", range(4), 64)
    broken = Schedule(
        **{
            **good.__dict__,
            "src": good.src[:-4],
            "dst": good.dst[:-4],
            "step": good.step[:-4],
            "reduce": good.reduce[:-4],
            "deps": good.deps[:-4],
            "chunk_ptr": good.chunk_ptr[:-4],
        }
    )
    with pytest.raises(DeliveryError, match="ends without chunk"):
        verify_delivery(broken)
    doubled = Schedule(**{**good.__dict__, "reduce": np.ones_like(good.reduce)})
    with pytest.raises(DeliveryError, match="twice"):
        verify_delivery(doubled)


def test_errors_name_the_problem() -> None:
    with pytest.raises(GroupError, match="duplicates"):
        build_schedule("all_reduce", [0, 1, 1], 8)
    with pytest.raises(AlgorithmError, match="unknown algorithm 'bogus'"):
        build_schedule("all_reduce", range(4), 8, algorithm="bogus")
    with pytest.raises(collectives.CollectiveError, match="unknown collective"):
        build_schedule("allsum", range(4), 8)
    with pytest.raises(AlgorithmError, match="send_recv needs a group of 2"):
        build_schedule("send_recv", range(4), 8)
    with pytest.raises(AlgorithmError, match="switch"):
        build_schedule("all_reduce", range(8), 8, topology=ring(8), algorithm="in_network")
