"""Cost models: closed form vs schedule walk, ASTRA-sim conventions, system files, entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainsim.collectives import (
    AlgorithmError,
    AnalyticalModel,
    CollectiveCost,
    CollectiveError,
    CollectiveOp,
    CollectiveRequest,
    ConfigError,
    CongestionModel,
    SystemConfig,
    collective_cost,
    collective_time_us,
    evaluate,
    get_model,
    read_astra_system,
    routes_for,
)
from trainsim.collectives._cost import _split_schedules
from trainsim.topology import Topology, parse_spec, remove_links, ring, slow_links, switch

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
WORKLOADS = DATA / "reference" / "astra-sim-workloads"


@pytest.mark.parametrize(
    "spec", ["ring:8", "switch:8", "fc:8", "ring:4,switch:4", "ring:2,fc:2,switch:4", "torus:4x4"]
)
@pytest.mark.parametrize("astra", [False, True])
def test_closed_form_equals_schedule_walk(spec: str, astra: bool) -> None:
    topo = parse_spec(spec)
    system = SystemConfig.astra_default() if astra else SystemConfig()
    compared = 0
    for op in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all"):
        for algorithm in ("ring", "direct", "halving_doubling"):
            try:
                closed = collective_cost(op, 1 << 20, topo.npus, topo, algorithm, system=system)
            except CollectiveError:
                continue
            request = CollectiveRequest(
                CollectiveOp.parse(op), float(1 << 20), tuple(topo.npus), topo, algorithm, system
            )
            schedules = _split_schedules(request)
            routes = [routes_for(schedules[0], topo)] * len(schedules)
            walked = evaluate(
                schedules, routes, system, congestion=False, num_nodes=max(topo.graph.nodes) + 1
            )
            assert closed.time_ns == pytest.approx(walked.time_ns, rel=1e-9), (op, algorithm)
            compared += 1
    assert compared >= 8


def test_ring_all_reduce_textbook_formula() -> None:
    # 2(n-1) steps of (latency + S/n / B) with no system overheads.
    n, size, bw, lat = 8, 8 << 20, 100.0, 2.0
    topo = ring(n, bandwidth_gbps=bw, latency_us=lat)
    expected_ns = 2 * (n - 1) * (lat * 1000 + size / n / bw)
    assert collective_cost("all_reduce", size, range(n), topo).time_ns == pytest.approx(expected_ns)


def test_astra_system_file_is_read_as_is() -> None:
    system = read_astra_system(WORKLOADS / "dp_overlap_8" / "system.json")
    assert system.endpoint_delay_ns == 10
    assert system.dataset_splits == 4
    assert system.local_mem_bw_gbps == 1600
    assert system.astra_compatible
    assert system.algorithms["all_reduce"] == ("ring",)


def test_bad_system_file_names_the_field(tmp_path: Path) -> None:
    f = tmp_path / "sys.json"
    f.write_text(json.dumps({"preferred-dataset-splits": 0}))
    with pytest.raises(ConfigError, match="dataset_splits"):
        read_astra_system(f)
    f.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_astra_system(f)


def test_algorithm_defaults_come_from_the_system() -> None:
    system = SystemConfig(algorithms={"all_reduce": ("direct",)})
    cost = collective_cost("all_reduce", 1 << 20, range(8), switch(8), system=system)
    assert cost.algorithm == "direct"


def test_entry_point_and_bandwidths() -> None:
    topo = ring(8, bandwidth_gbps=50)
    t_us = collective_time_us("all_reduce", 1 << 30, list(range(8)), topo, "ring")
    cost = collective_cost("all_reduce", 1 << 30, range(8), topo)
    assert t_us == pytest.approx(cost.time_us)
    # a ring all-reduce is bandwidth-optimal: bus bandwidth approaches the link bandwidth
    assert cost.busbw_gbps == pytest.approx(50.0, rel=0.01)
    assert isinstance(cost, CollectiveCost) and cost.to_dict()["time_ns"] == cost.time_ns
    assert collective_cost("all_reduce", 1 << 20, [3], topo).time_ns == 0.0


def test_models_by_name() -> None:
    assert isinstance(get_model("analytical"), AnalyticalModel)
    assert isinstance(get_model("congestion"), CongestionModel)
    with pytest.raises(ConfigError, match="unknown cost model"):
        get_model("magic")


def test_faulty_and_slowed_networks_still_run() -> None:
    base = ring(8)
    healthy = collective_cost("all_reduce", 1 << 20, range(8), base).time_ns
    broken = remove_links(base, [(3, 4)])
    assert not broken.dims
    rerouted = collective_cost("all_reduce", 1 << 20, range(8), broken).time_ns
    assert rerouted > healthy
    slowed = slow_links(base, [(0, 1)], factor=4)
    assert collective_cost("all_reduce", 1 << 20, range(8), slowed).time_ns > healthy


def test_subgroup_on_a_flat_graph_uses_routes() -> None:
    topo = Topology(ring(8).graph, name="flat-ring")
    cost = collective_cost("all_reduce", 1 << 20, [0, 2, 4, 6], topo, "ring")
    direct = collective_cost("all_reduce", 1 << 20, [0, 1, 2, 3], topo, "ring")
    assert cost.time_ns > direct.time_ns  # every hop is two links long


def test_in_network_reduction_beats_ring_on_a_switch() -> None:
    topo = switch(16, bandwidth_gbps=50, latency_us=1.0)
    ring_ns = collective_cost("all_reduce", 1 << 16, range(16), topo, "ring").time_ns
    sharp_ns = collective_cost("all_reduce", 1 << 16, range(16), topo, "in_network").time_ns
    assert sharp_ns < ring_ns
    with pytest.raises(AlgorithmError):
        collective_cost("all_to_all", 1 << 16, range(16), topo, "in_network")
