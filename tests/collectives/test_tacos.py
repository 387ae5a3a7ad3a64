"""TACOS synthesis: the reference runs of the official code, delivery, ports, engine path, cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from trainsim.collectives import (
    AlgorithmError,
    CollectiveOp,
    ConfigError,
    TacosResult,
    build_schedule,
    clear_tacos_cache,
    collective_cost,
    collective_time_us,
    synthesize_tacos,
    tacos_cache_info,
    tacos_lower_bound_us,
    tacos_schedule,
    verify_delivery,
)
from trainsim.collectives._tacos import gather_once
from trainsim.collectives._tacos_network import link_graph
from trainsim.topology import (
    DisconnectedError,
    Topology,
    read_edge_list,
    ring,
    slow_links,
    switch,
    torus,
)

REFERENCE = SHARED_DATA / "reference" / "tacos-allgather.json"
TOPOLOGIES = SHARED_DATA / "reference" / "tacos-topologies"
CASES = json.loads(REFERENCE.read_text())["cases"] if REFERENCE.is_file() else []


def assert_ports_exclusive(result: TacosResult) -> None:
    """No physical link carries two chunks at once in the synthesized timing."""
    port = result.ports.reshape(-1)
    start = result.port_start_us.reshape(-1)
    end = result.port_end_us.reshape(-1)
    used = port >= 0
    port, start, end = port[used], start[used], end[used]
    assert np.all(end > start)
    order = np.lexsort((start, port))
    port, start, end = port[order], start[order], end[order]
    same = port[1:] == port[:-1]
    overlap = start[1:] < end[:-1] - 1e-6
    assert not np.any(same & overlap), "a link carries two chunks at once"


def executed_us(result: TacosResult, topology_ranks: tuple[int, ...], topo: Topology) -> float:
    sched = result.schedule
    size = sched.size_bytes
    return collective_time_us(
        sched.op, size, topology_ranks, topo, algorithm="tacos", model="congestion"
    )


@pytest.mark.parametrize("case", CASES, ids=[f"{c['name']}-c{c['chunks_per_npu']}" for c in CASES])
def test_reference_all_gather_no_worse(case: dict[str, object], shared_data: Path) -> None:
    topo = read_edge_list(TOPOLOGIES / f"{case['name']}.txt")
    npus = int(case["npus"])  # type: ignore[call-overload]
    output = float(case["collective_output_bytes"])  # type: ignore[arg-type]
    cpn = int(case["chunks_per_npu"])  # type: ignore[call-overload]
    result = synthesize_tacos(
        "all_gather", output / npus, topo, chunks_per_npu=cpn, trials=3, seed=0
    )
    best = float(case["allgather_time_us"]["min"])  # type: ignore[index]
    assert topo.num_npus == npus and topo.graph.number_of_edges() == case["directed_links"]
    assert result.chunk_bytes == pytest.approx(float(case["chunk_bytes"]))  # type: ignore[arg-type]
    assert result.time_us <= best * (1 + 1e-6)
    bound = float(case["allgather_bw_lower_bound_us"])  # type: ignore[arg-type]
    assert result.lower_bound_us == pytest.approx(bound)
    assert 0.75 <= result.efficiency <= 1.0
    verify_delivery(result.schedule)
    assert_ports_exclusive(result)
    assert result.schedule.num_transfers == npus * (npus - 1) * cpn


@pytest.mark.parametrize("name", sorted({str(c["name"]) for c in CASES}))
def test_reference_reduce_scatter_and_all_reduce(name: str, shared_data: Path) -> None:
    case = next(c for c in CASES if c["name"] == name and c["chunks_per_npu"] == 1)
    topo = read_edge_list(TOPOLOGIES / f"{name}.txt")
    size = float(case["collective_output_bytes"])
    rs = synthesize_tacos("reduce_scatter", size, topo, trials=3, seed=0)
    ar = synthesize_tacos("all_reduce", size, topo, trials=3, seed=0)
    assert rs.time_us <= case["reducescatter_time_us_transposed"]["min"] * (1 + 1e-6)
    assert ar.time_us <= case["allreduce_time_us_RS_plus_AG"] * (1 + 1e-6)
    for result in (rs, ar):
        verify_delivery(result.schedule)
        assert_ports_exclusive(result)
        assert result.schedule.reduce.any()
    assert ar.lower_bound_us == pytest.approx(2 * rs.lower_bound_us)


def test_congestion_model_runs_the_schedule_no_slower() -> None:
    topo = torus([4, 4], bandwidth_gbps=50, latency_us=0.5)
    for op in ("all_gather", "reduce_scatter", "all_reduce"):
        result = synthesize_tacos(op, 1 << 20, topo, trials=2, seed=3)
        cost = collective_cost(op, 1 << 20, range(16), topo, algorithm="tacos", model="congestion")
        assert cost.algorithm == "tacos"
        # The executor frees a link before the latency has elapsed, so it is never slower.
        assert result.lower_bound_us * (1 - 1e-9) <= cost.time_us <= result.time_us * (1 + 1e-9)


def test_engine_path_all_ops_and_models() -> None:
    clear_tacos_cache()
    topo = torus([4, 4])
    for op in ("all_gather", "reduce_scatter", "all_reduce"):
        a = collective_time_us(op, 1 << 20, range(16), topo, algorithm="tacos")
        c = collective_time_us(op, 1 << 20, range(16), topo, algorithm="TACOS", model="congestion")
        assert 0 < a <= c * (1 + 1e-9)
    info = tacos_cache_info()
    assert info["misses"] == 3 and info["hits"] == 3
    with pytest.raises(AlgorithmError, match="all_to_all"):
        collective_time_us("all_to_all", 1 << 20, range(16), topo, algorithm="tacos")
    with pytest.raises(AlgorithmError, match="topology"):
        build_schedule("all_gather", range(4), 1024, algorithm="tacos")


def test_cache_keys_on_content_and_size_class() -> None:
    clear_tacos_cache()
    a = tacos_schedule("all_reduce", range(8), 1 << 20, ring(8))
    b = tacos_schedule("all_reduce", range(8), 1.2 * (1 << 20), ring(8))  # another object
    assert tacos_cache_info() == {"hits": 1, "misses": 1, "disk_hits": 0, "entries": 1}
    assert b.transfer_bytes[0] == pytest.approx(1.2 * a.transfer_bytes[0])
    assert np.array_equal(a.src, b.src) and np.array_equal(a.deps, b.deps)
    tacos_schedule("all_reduce", range(8), 1 << 24, ring(8))
    tacos_schedule("all_reduce", range(8), 1 << 20, ring(8, bandwidth_gbps=7))
    assert tacos_cache_info()["misses"] == 3


def test_cache_folder_is_shared_between_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINSIM_TACOS_CACHE", str(tmp_path))
    clear_tacos_cache()
    topo = torus([2, 4])
    first = tacos_schedule("all_reduce", range(8), 1 << 20, topo)
    assert len(list(tmp_path.glob("tacos-*.npz"))) == 1
    clear_tacos_cache()  # as a fresh worker process would start
    again = tacos_schedule("all_reduce", range(8), 1 << 20, topo)
    assert tacos_cache_info()["disk_hits"] == 1 and tacos_cache_info()["misses"] == 0
    for field in ("src", "dst", "step", "deps", "reduce", "chunk_lo", "transfer_bytes"):
        assert np.array_equal(getattr(first, field), getattr(again, field))
    assert again.phases == first.phases and again.ranks == first.ranks
    verify_delivery(again)
    (next(tmp_path.glob("tacos-*.npz"))).write_bytes(b"garbage")
    clear_tacos_cache()
    tacos_schedule("all_reduce", range(8), 1 << 20, topo)  # unreadable: synthesized again
    assert tacos_cache_info()["misses"] == 1


def test_same_seed_same_schedule() -> None:
    topo = torus([4, 4, 2])
    a = synthesize_tacos("all_gather", 1 << 16, topo, chunks_per_npu=2, trials=2, seed=11)
    b = synthesize_tacos("all_gather", 1 << 16, topo, chunks_per_npu=2, trials=2, seed=11)
    assert a.trial_times_us == b.trial_times_us
    for field in ("src", "dst", "step", "chunk_lo", "deps"):
        assert np.array_equal(getattr(a.schedule, field), getattr(b.schedule, field))


def test_switches_are_modelled_as_ports() -> None:
    topo = switch(8)
    for op in ("all_gather", "reduce_scatter", "all_reduce"):
        result = synthesize_tacos(op, 1 << 20, topo, trials=2)
        verify_delivery(result.schedule)
        assert_ports_exclusive(result)
        assert set(result.schedule.src.tolist()) <= set(range(8))
        assert executed_us(result, tuple(range(8)), topo) <= result.time_us * (1 + 1e-9)


def test_subgroup_relays_through_other_npus() -> None:
    topo = torus([4, 4])
    ranks = (0, 2, 8, 10)  # no two adjacent: every route crosses an NPU outside the group
    result = synthesize_tacos("all_reduce", 1 << 20, topo, ranks=ranks)
    verify_delivery(result.schedule)
    assert_ports_exclusive(result)
    assert result.schedule.ranks == ranks


def test_heterogeneous_links_race_and_drop_late_duplicates(tmp_path: Path) -> None:
    # 0 -> 1 is ten times slower than 0 -> 2 -> 1: the idle fast path races the chunk on the
    # slow link, and the late copy is swapped or dropped (TACOS's replacement rule).
    edges = tmp_path / "triangle.txt"
    fast = "50 0.5"
    edges.write_text(f"3\n0 1 5 0.5\n0 2 {fast}\n2 1 {fast}\n1 0 {fast}\n2 0 {fast}\n1 2 {fast}\n")
    topo = read_edge_list(edges)
    run = gather_once(link_graph(topo), 1 << 20, 2, np.random.default_rng(0))
    assert run.replaced + run.dropped >= 1
    assert run.link.size == 3 * 2 * 2  # every (member, foreign chunk) pair exactly once
    slow_time = link_graph(topo).chunk_time_us(1 << 20).max()
    assert run.time_us < slow_time
    result = synthesize_tacos("all_gather", 1 << 21, topo, chunks_per_npu=2, trials=2)
    verify_delivery(result.schedule)
    assert_ports_exclusive(result)
    slowed = slow_links(torus([4, 4]), [(0, 1), (5, 6), (10, 14), (3, 7)], factor=8)
    result = synthesize_tacos("all_reduce", 1 << 19, slowed, chunks_per_npu=2, trials=2)
    verify_delivery(result.schedule)
    assert_ports_exclusive(result)


def test_disconnected_topology_names_the_npus(tmp_path: Path) -> None:
    edges = tmp_path / "cut.txt"
    edges.write_text("4\n0 1 50 0.5\n1 0 50 0.5\n2 0 50 0.5\n3 2 50 0.5\n")
    with pytest.raises(DisconnectedError, match="2, 3") as info:
        synthesize_tacos("all_gather", 1024, read_edge_list(edges))
    assert info.value.cut_off == (2, 3)


def test_bad_arguments() -> None:
    topo = ring(4)
    with pytest.raises(ConfigError, match="chunks_per_npu"):
        synthesize_tacos("all_gather", 1024, topo, chunks_per_npu=0)
    with pytest.raises(ConfigError, match="trials"):
        synthesize_tacos("all_gather", 1024, topo, trials=0)
    with pytest.raises(AlgorithmError, match="broadcast"):
        synthesize_tacos("broadcast", 1024, topo)
    assert tacos_lower_bound_us(CollectiveOp.ALL_GATHER, 1000, topo, [0]) == 0.0
    single = synthesize_tacos("all_reduce", 1024, topo, ranks=[2])
    assert single.time_us == 0.0 and single.schedule.num_transfers == 0
