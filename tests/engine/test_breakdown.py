"""The step breakdown partitions every rank's step and names what it measured.

Converted traces (CPU ops, collectives on process groups of unknown kind, send/recv pairs
nothing calls pipeline exchanges) and generated workloads (group kinds known) go through the
same ``StepResult.breakdown``, ``parts``, ``summary`` and ``format``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES
from trainsim import chakra_et
from trainsim.chakra_et import CollectiveCommType, ETGraph, NodeType, new_node
from trainsim.engine import (
    Scheduling,
    StepResult,
    System,
    Workload,
    cluster_system,
    load_workload,
    predict,
    simulate,
)
from trainsim.models import (
    Granularity,
    InvalidPlanError,
    ParallelPlan,
    check_plan,
    model_preset,
)
from trainsim.studies.cli import main

COMP, COLL = NodeType.COMP_NODE, NodeType.COMM_COLL_NODE
SEND, RECV = NodeType.COMM_SEND_NODE, NodeType.COMM_RECV_NODE
AR = int(CollectiveCommType.ALL_REDUCE)
GLOO = FIXTURES / "pytorch-cpu" / "ddp_gloo_2rank"
SINGLE = FIXTURES / "pytorch-cpu" / "single_transformer"
GRANULARITIES: list[Granularity] = ["layer", "op"]


def _assert_partition(result: StepResult) -> None:
    """Every rank's parts, and their mean over ranks, add up to the step time."""
    step = result.step_time_ns
    assert step > 0
    for rank, b in result.breakdown.items():
        assert b.parts_total_ns == pytest.approx(step, rel=1e-9), f"rank {rank}"
        assert 0 <= b.overlapped_comm_ns <= b.compute_ns + 1e-6
        for value in (b.device_compute_ns, b.host_compute_ns, b.bubble_ns, b.idle_ns):
            assert value >= 0
        assert all(v > 0 for v in b.exposed_comm_ns.values())
    parts = result.parts()
    assert sum(p.ns for p in parts) == pytest.approx(step, rel=1e-9)
    summary = result.summary()["breakdown"]
    assert summary["sum_s"] == pytest.approx(result.step_time_s, rel=1e-9)
    assert summary["parts_s"] == {p.key: pytest.approx(p.ns * 1e-9) for p in parts}


def _comp_durations_ns(path: Path) -> tuple[float, float]:
    """(CPU-op, device) sums of the COMP nodes' recorded durations in an ET file (ns)."""
    host = device = 0.0
    for node in chakra_et.load(path).node_list:
        if node.type == COMP:
            if chakra_et.get_attr(node, "is_cpu_op") is True:
                host += node.duration_micros * 1000.0
            else:
                device += node.duration_micros * 1000.0
    return host, device


@pytest.fixture(scope="module")
def gloo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2-rank DDP gloo fixture converted to ``et.R.et`` files."""
    out = tmp_path_factory.mktemp("gloo")
    chakra_et.convert_directory(GLOO, out)
    return out


@pytest.mark.parametrize("network", ["ring:2", "switch:2@5/10"])
def test_converted_trace_compute_is_what_the_trace_recorded(gloo_dir: Path, network: str) -> None:
    """A gloo trace is CPU ops only, on one CPU thread per rank: host compute is the sum of
    each rank's recorded op durations, even where collectives ran beside them."""
    result = simulate(load_workload(gloo_dir / "et"), System(network=network))
    _assert_partition(result)
    for rank, b in result.breakdown.items():
        host_ns, device_ns = _comp_durations_ns(gloo_dir / f"et.{rank}.et")
        assert device_ns == 0 and host_ns > 0
        assert b.host_compute_ns == pytest.approx(host_ns, rel=1e-9)
        assert b.device_compute_ns == 0
        # Process groups of unknown kind and a send/recv pair nothing calls a pipeline.
        assert set(b.exposed_comm_ns) <= {"collective", "p2p"}
        assert "collective" in b.exposed_comm_ns
        assert b.bubble_ns == 0


def test_one_rank_trace_is_all_host_compute(tmp_path: Path) -> None:
    """One rank, one CPU thread, no communication: the step is the ops' recorded time."""
    chakra_et.convert_directory(SINGLE, tmp_path)
    result = simulate(load_workload(tmp_path / "et"), System(network="ring:2"))
    _assert_partition(result)
    host_ns, _ = _comp_durations_ns(tmp_path / "et.0.et")
    assert result.breakdown[0].host_compute_ns == pytest.approx(host_ns, rel=1e-9)
    assert result.step_time_ns == pytest.approx(host_ns, rel=1e-9)


def test_simulate_cli_names_unknown_groups_and_point_to_point(
    gloo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    system = gloo_dir / "system.yaml"
    system.write_text('network: "ring:2"\n')
    args = ["simulate", "--workload", str(gloo_dir / "et"), "--system", str(system)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "compute, host (CPU ops)" in text
    assert "exposed communication, collective (group unknown)" in text
    assert "exposed communication, point-to-point" in text
    assert "these parts add up to the step time" in text and "mean over 2 rank(s)" in text
    assert "overlapped communication" in text and "not added" in text
    assert " pp " not in text and "comm communication" not in text
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    parts = data["breakdown"]["parts_s"]
    assert data["breakdown"]["sum_s"] == pytest.approx(data["step_time_s"], rel=1e-9)
    assert sum(parts.values()) == pytest.approx(data["step_time_s"], rel=1e-9)
    assert data["breakdown"]["labels"]["exposed:p2p"] == "exposed communication, point-to-point"
    assert set(data["exposed_comm_s_mean"]) == {"collective", "p2p"}
    # Each shown part is a line of the text with the value the JSON carries, rounded.
    shown = {
        line.rsplit(None, 2)[0].strip(): float(line.rsplit(None, 2)[1].replace(",", ""))
        for line in text.splitlines()
        if line.startswith("    ")
    }
    labels = data["breakdown"]["labels"]
    assert set(shown) == {*labels.values(), "sum"}
    for key, label in labels.items():
        assert shown[label] == pytest.approx(parts[key] * 1e3, abs=1e-3)
    assert shown["sum"] == pytest.approx(data["step_time_s"] * 1e3, abs=1e-3)


def _p2p_pair(stream: str | None) -> Workload:
    """Rank 1 computes 300 us, then sends to rank 0, whose receive waits from time 0."""
    attrs: dict[str, object] = {"comm_tag": 1, "comm_size": 1 << 20}
    if stream is not None:
        attrs["stream"] = stream
    rank0 = ETGraph(nodes=[new_node(0, "recv", RECV, attrs={"comm_src": 1, **attrs})])
    rank1 = ETGraph(
        nodes=[
            new_node(0, "work", COMP, duration_micros=300),
            new_node(1, "send", SEND, data_deps=[0], attrs={"comm_dst": 0, **attrs}),
        ]
    )
    return Workload.from_graphs({0: rank0, 1: rank1}, world_size=2)


def test_send_recv_are_pipeline_only_when_the_workload_says_so() -> None:
    system = System(network="ring:2@50/0.5")
    plain = simulate(_p2p_pair(None), system)
    piped = simulate(_p2p_pair("pp"), system)
    assert plain.step_time_ns == piped.step_time_ns
    for result in (plain, piped):
        _assert_partition(result)
    wait_ns = plain.timeline.end_ns[0][0] - plain.timeline.start_ns[0][0]
    send_ns = plain.timeline.end_ns[1][1] - plain.timeline.start_ns[1][1]
    assert wait_ns > 300_000 and send_ns > 0
    # Unlabelled: the receive's wait and the send are point-to-point communication.
    assert plain.breakdown[0].exposed_comm_ns == {"p2p": pytest.approx(wait_ns)}
    assert plain.breakdown[0].bubble_ns == 0
    assert plain.breakdown[1].exposed_comm_ns == {"p2p": pytest.approx(send_ns)}
    assert "point-to-point" in plain.format() and "pp" not in plain.summary()["exposed_comm_s_mean"]
    # Labelled pp: the receive's wait is a pipeline bubble, the send pp communication.
    assert piped.breakdown[0].bubble_ns == pytest.approx(wait_ns)
    assert piped.breakdown[0].exposed_comm_ns == {}
    assert piped.breakdown[1].exposed_comm_ns == {"pp": pytest.approx(send_ns)}
    assert "exposed communication, pp" in piped.format() and "pipeline bubble" in piped.format()


def test_device_compute_takes_precedence_over_host_ops() -> None:
    """A GPU kernel of 100 us beside a CPU op of 150 us: 100 us device, 50 us host."""
    graph = ETGraph(
        nodes=[
            new_node(0, "kernel", COMP, duration_micros=100, attrs={"is_cpu_op": False}),
            new_node(1, "op", COMP, duration_micros=150, attrs={"is_cpu_op": True}),
        ]
    )
    result = simulate(Workload.from_graphs({0: graph}, world_size=1), System(network="ring:2"))
    _assert_partition(result)
    b = result.breakdown[0]
    assert b.device_compute_ns == pytest.approx(100_000)
    assert b.host_compute_ns == pytest.approx(50_000)
    lines = result.format()
    assert "compute, device (kernels)" in lines and "compute, host (CPU ops)" in lines


def test_generated_pipeline_plan_names_its_group_kinds() -> None:
    model = model_preset("gpt-1.7b").model_copy(update={"num_layers": 4})
    plan = ParallelPlan.for_gpus(16, tp=2, pp=2, global_batch_size=32)
    result = predict(model, plan, cluster_system("a100-80gb", 16))
    _assert_partition(result)
    kinds = {k for b in result.breakdown.values() for k in b.exposed_comm_ns}
    assert {"tp", "pp"} <= kinds
    assert not kinds & {"collective", "p2p"}  # the generator names every group's kind
    assert any(b.bubble_ns > 0 for b in result.breakdown.values())
    summary = result.summary()
    assert summary["breakdown"]["mean_over_ranks"] == 16
    text = result.format()
    assert "exposed communication, pp" in text and "pipeline bubble" in text
    assert "group unknown" not in text and "point-to-point" not in text
    assert "mean over 16 rank(s)" in text and "MFU" in text


_PLANS = st.tuples(
    st.sampled_from([1, 2, 4]),  # tp
    st.sampled_from([1, 2, 4]),  # pp
    st.sampled_from([4, 8]),  # layers
    st.integers(1, 3),  # micro-batches per data-parallel replica
    st.booleans(),  # sequence parallelism
    st.sampled_from(GRANULARITIES),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PLANS)
def test_parts_add_up_for_random_small_plans(
    choice: tuple[int, int, int, int, bool, Granularity],
) -> None:
    tp, pp, layers, micro_batches, sequence_parallel, granularity = choice
    model = model_preset("gpt-1.7b").model_copy(update={"num_layers": layers})
    dp = 8 // (tp * pp)
    try:
        plan = ParallelPlan.for_gpus(
            8,
            tp=tp,
            pp=pp,
            global_batch_size=dp * micro_batches,
            sequence_parallel=sequence_parallel and tp > 1,
        )
        check_plan(model, plan)
    except (InvalidPlanError, ValueError):
        assume(False)
        return
    result = predict(model, plan, cluster_system("a100-80gb", 8), granularity=granularity)
    _assert_partition(result)
    assert result.summary()["breakdown"]["mean_over_ranks"] == 8


@st.composite
def _spmd_graphs(draw: st.DrawFn) -> tuple[ETGraph, float, float]:
    """A random graph of GPU kernels, CPU ops and world all-reduces, with its kernel and op
    duration sums (ns)."""
    count = draw(st.integers(1, 10))
    nodes = []
    device_ns = host_ns = 0.0
    for i in range(count):
        deps = sorted(draw(st.sets(st.integers(0, i - 1), max_size=2))) if i else []
        what = draw(st.sampled_from(["kernel", "op", "all_reduce"]))
        if what == "all_reduce":
            size = draw(st.integers(1, 1 << 22))
            attrs: dict[str, object] = {"comm_type": AR, "comm_size": size, "pg_name": ""}
            nodes.append(new_node(i, what, COLL, data_deps=deps, attrs=attrs))
            continue
        duration = draw(st.integers(1, 500))
        cpu = what == "op"
        nodes.append(
            new_node(
                i, what, COMP, duration_micros=duration, data_deps=deps, attrs={"is_cpu_op": cpu}
            )
        )
        if cpu:
            host_ns += duration * 1000.0
        else:
            device_ns += duration * 1000.0
    return ETGraph(nodes=nodes), device_ns, host_ns


@settings(max_examples=60, deadline=None)
@given(_spmd_graphs(), st.booleans())
def test_parts_add_up_for_random_spmd_graphs(
    drawn: tuple[ETGraph, float, float], overlap: bool
) -> None:
    """With one compute stream device compute is exactly the kernels' time (it outranks
    everything); host compute is what CPU ops add beyond it; the rest partitions the step."""
    graph, device_ns, host_ns = drawn
    workload = Workload.from_graphs({0: graph, 1: graph}, world_size=2)
    system = System(network="ring:2@50/0.5", scheduling=Scheduling(overlap_comm=overlap))
    result = simulate(workload, system)
    if result.step_time_ns == 0:
        return
    _assert_partition(result)
    for b in result.breakdown.values():
        assert b.device_compute_ns == pytest.approx(device_ns, rel=1e-9, abs=1e-6)
        assert b.host_compute_ns <= host_ns + 1e-6
        assert b.device_compute_ns + b.host_compute_ns >= max(device_ns, host_ns) - 1e-6
        assert set(b.exposed_comm_ns) <= {"collective"}
