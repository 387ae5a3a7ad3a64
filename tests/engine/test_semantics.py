"""Scheduling semantics: per-rank and rank-class agree, deadlocks are reported, properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainsim.chakra_et import CollectiveCommType, ETGraph, NodeType, new_metadata, new_node
from trainsim.engine import DeadlockError, Scheduling, System, Workload, WorkloadError, simulate

COMP, COLL = NodeType.COMP_NODE, NodeType.COMM_COLL_NODE
SEND, RECV = NodeType.COMM_SEND_NODE, NodeType.COMM_RECV_NODE
AR = int(CollectiveCommType.ALL_REDUCE)


def _system(npus: int = 8) -> System:
    return System(network=f"ring:{npus}@50/0.5")


def _pipeline_rank(stage: int, dp: int, dp_size: int, micro_batches: int = 3) -> ETGraph:
    """A 2-stage pipeline with data parallelism: fwd/bwd per micro-batch, then a DP all-reduce.

    The sends and receives say they are pipeline exchanges (``stream`` ``pp``, as generated
    workloads do), so the breakdown counts them as ``pp`` and their waits as bubble.
    """
    rank = stage * dp_size + dp
    peer = (1 - stage) * dp_size + dp
    nodes = []
    nid = 0
    prev: list[int] = []
    pp = {"stream": "pp"}

    def add(name: str, kind: int, dur: int = 0, attrs: dict[str, object] | None = None) -> int:
        nonlocal nid, prev
        nodes.append(new_node(nid, name, kind, duration_micros=dur, data_deps=prev, attrs=attrs))
        prev = [nid]
        nid += 1
        return nid - 1

    for mb in range(micro_batches):
        if stage == 1:
            add(
                f"recv_f{mb}",
                RECV,
                attrs={"comm_src": peer, "comm_tag": mb, "comm_size": 1 << 20, **pp},
            )
        add(f"fwd{mb}", COMP, 100 + 10 * stage)
        if stage == 0:
            add(
                f"send_f{mb}",
                SEND,
                attrs={"comm_dst": peer, "comm_tag": mb, "comm_size": 1 << 20, **pp},
            )
    for mb in range(micro_batches):
        if stage == 0:
            add(
                f"recv_b{mb}",
                RECV,
                attrs={"comm_src": peer, "comm_tag": 100 + mb, "comm_size": 1 << 20, **pp},
            )
        add(f"bwd{mb}", COMP, 200)
        if stage == 1:
            add(
                f"send_b{mb}",
                SEND,
                attrs={"comm_dst": peer, "comm_tag": 100 + mb, "comm_size": 1 << 20, **pp},
            )
    add("grad_ar", COLL, attrs={"comm_type": AR, "comm_size": 64 << 20, "pg_name": f"dp{stage}"})
    add("optimizer", COMP, 50)
    meta = new_metadata(attrs={"rank": rank})
    return ETGraph(meta, nodes)


def _groups(dp_size: int) -> dict[str, tuple[int, ...]]:
    return {f"dp{s}": tuple(s * dp_size + d for d in range(dp_size)) for s in range(2)}


def test_rank_class_equals_per_rank() -> None:
    dp_size = 4
    world = 2 * dp_size
    per_rank = Workload.from_graphs(
        {s * dp_size + d: _pipeline_rank(s, d, dp_size) for s in range(2) for d in range(dp_size)},
        world_size=world,
        groups=_groups(dp_size),
    )
    classes = Workload.from_graphs(
        {0: _pipeline_rank(0, 0, dp_size), dp_size: _pipeline_rank(1, 0, dp_size)},
        world_size=world,
        groups=_groups(dp_size),
        multiplicity={0: dp_size, dp_size: dp_size},
    )
    full = simulate(per_rank, _system(world))
    reps = simulate(classes, _system(world))
    assert reps.step_time_ns == full.step_time_ns
    for rank in (0, dp_size):
        assert reps.rank_finish_ns[rank] == full.rank_finish_ns[rank]
        assert reps.timeline.end_ns[rank] == full.timeline.end_ns[rank]
    assert full.breakdown[0].exposed_comm_ns.get("pp", 0) > 0
    assert full.breakdown[dp_size].bubble_ns > 0
    assert reps.breakdown[dp_size].bubble_ns == full.breakdown[dp_size].bubble_ns


def test_recv_without_send_is_a_deadlock_naming_the_node() -> None:
    graphs = {
        0: ETGraph(
            nodes=[
                new_node(
                    5, "lonely_recv", RECV, attrs={"comm_src": 1, "comm_tag": 7, "comm_size": 8}
                )
            ]
        ),
        1: ETGraph(nodes=[new_node(1, "work", COMP, duration_micros=3)]),
    }
    with pytest.raises(
        DeadlockError, match=r"rank 0 recv node 5 waits for a send from rank 1 \(tag 7"
    ):
        simulate(Workload.from_graphs(graphs, world_size=2), _system(2))


def test_crossed_collectives_deadlock() -> None:
    def rank_graph(order: list[str]) -> ETGraph:
        nodes = []
        for i, pg in enumerate(order):
            attrs = {"comm_type": AR, "comm_size": 1024, "pg_name": pg}
            nodes.append(new_node(i, f"ar_{pg}", COLL, data_deps=[i - 1] if i else [], attrs=attrs))
        return ETGraph(nodes=nodes)

    groups = {"a": (0, 1, 2), "b": (1, 2)}
    graphs = {0: rank_graph(["a"]), 1: rank_graph(["a", "b"]), 2: rank_graph(["b", "a"])}
    with pytest.raises(DeadlockError, match=r"has 1 of 2 members|has 2 of 3 members"):
        simulate(Workload.from_graphs(graphs, world_size=3, groups=groups), _system(3))


def test_unmatched_send_is_noted() -> None:
    graphs = {
        0: ETGraph(
            nodes=[new_node(1, "s", SEND, attrs={"comm_dst": 1, "comm_tag": 1, "comm_size": 8})]
        ),
        1: ETGraph(nodes=[new_node(1, "c", COMP, duration_micros=1)]),
    }
    result = simulate(Workload.from_graphs(graphs, world_size=2), _system(2))
    assert any("never received" in note for note in result.notes)


@st.composite
def _dags(draw: st.DrawFn) -> tuple[list[int], list[list[int]]]:
    n = draw(st.integers(1, 25))
    durations = draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n))
    deps = [sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else [] for i in range(n)]
    return durations, deps


@settings(max_examples=60, deadline=None)
@given(_dags(), st.integers(1, 3))
def test_compute_schedule_properties(dag: tuple[list[int], list[list[int]]], streams: int) -> None:
    durations, deps = dag
    graph = ETGraph(
        nodes=[
            new_node(i, f"n{i}", COMP, duration_micros=d, data_deps=deps[i])
            for i, d in enumerate(durations)
        ]
    )
    system = System(network="ring:2", scheduling=Scheduling(compute_streams=streams))
    result = simulate(Workload.from_graphs({0: graph}, world_size=1), system)
    critical_us, _ = graph.critical_path()
    step_us = result.step_time_ns / 1000
    assert step_us >= critical_us - 1e-6
    assert step_us <= sum(durations) + 1e-6
    if streams == 1:
        assert step_us == pytest.approx(sum(durations))
    start, end = result.timeline.start_ns[0], result.timeline.end_ns[0]
    for i, node_deps in enumerate(deps):
        for d in node_deps:
            assert start[i] >= end[d]
    breakdown = result.breakdown[0]
    assert breakdown.compute_ns + breakdown.idle_ns == pytest.approx(result.step_time_ns)


def test_roofline_when_no_duration() -> None:
    node = new_node(1, "gemm", COMP, attrs={"num_ops": 10**12, "tensor_size": 10**6})
    result = simulate(Workload.from_graphs({0: ETGraph(nodes=[node])}, world_size=1), _system(2))
    device = System().device_spec
    assert result.step_time_ns == pytest.approx(device.op_time_us(10**12, 10**6) * 1000)


def test_a_node_beside_sm_holding_communication_computes_on_the_other_sms() -> None:
    """``comm_sms`` on a node (Transformer Engine's margin) slows its compute by SMs/(SMs-k);
    a margin that leaves no SM is a clear error naming the node."""
    attrs: dict[str, object] = {"num_ops": 10**12, "tensor_size": 10**6, "gemm_shape": [8192] * 3}
    device = System().device_spec
    assert device.num_sms is not None
    times = []
    for held in (0, 16):
        node = new_node(1, "gemm", COMP, attrs={**attrs, "comm_sms": held})
        graphs = {0: ETGraph(nodes=[node])}
        times.append(simulate(Workload.from_graphs(graphs, world_size=1), _system(2)).step_time_ns)
    assert times[1] / times[0] == pytest.approx(device.num_sms / (device.num_sms - 16))
    # A node listing its operations (``roofline_ops``: one 8192^3 GEMM) likewise.
    ops = [1, 2 * 8192**3, 0, 8192, 8192, 8192]
    listed = []
    for held in (0, 16):
        node = new_node(1, "layer", COMP, attrs={"roofline_ops": ops, "comm_sms": held})
        graphs = {0: ETGraph(nodes=[node])}
        listed.append(simulate(Workload.from_graphs(graphs, world_size=1), _system(2)).step_time_ns)
    assert listed[1] / listed[0] == pytest.approx(device.num_sms / (device.num_sms - 16))
    node = new_node(7, "fc2.chunk0", COMP, attrs={**attrs, "comm_sms": device.num_sms})
    with pytest.raises(WorkloadError, match=r"node 7 \(fc2.chunk0\): comm_sms="):
        simulate(Workload.from_graphs({0: ETGraph(nodes=[node])}, world_size=1), _system(2))


def test_a_node_beside_a_collective_loses_its_sms_only_while_it_runs() -> None:
    """``comm_beside`` bounds the margin to the collective's time: a node of d ns beside a
    collective of c ns holding k of N SMs takes min(d N / (N - k), d + c k / N)."""
    device = System().device_spec
    assert device.num_sms is not None
    total, held = device.num_sms, 16
    for size in (1 << 20, 1 << 28):  # a collective shorter, then longer, than the node
        graphs = {}
        for rank in range(2):
            coll = new_node(
                0, "tp_ag", COLL, attrs={"comm_type": AR, "comm_size": size, "pg_name": "tp"}
            )
            attrs = {"num_ops": 10**12, "comm_sms": held, "comm_beside": 0}
            graphs[rank] = ETGraph(nodes=[coll, new_node(1, "dgrad", COMP, attrs=attrs)])
        workload = Workload.from_graphs(graphs, world_size=2, groups={"tp": (0, 1)})
        result = simulate(workload, _system(2))
        starts, ends = result.timeline.start_ns[0], result.timeline.end_ns[0]
        collective, node = ends[0] - starts[0], ends[1] - starts[1]
        alone = device.op_time_us(10**12, 0) * 1000
        expected = min(alone * total / (total - held), alone + collective * held / total)
        assert node == pytest.approx(expected)
        assert alone < node <= alone * total / (total - held)
    bad = new_node(1, "dgrad", COMP, attrs={"num_ops": 10**12, "comm_sms": 16, "comm_beside": 5})
    message = r"node 1 \(dgrad\): comm_beside names node 5, which is not a collective"
    with pytest.raises(WorkloadError, match=message):
        simulate(Workload.from_graphs({0: ETGraph(nodes=[bad])}, world_size=1), _system(2))
