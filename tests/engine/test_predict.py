"""``predict`` on generated workloads and the built-in clusters."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainsim.engine import (
    SystemConfigError,
    cluster_system,
    default_granularity,
    plan_workload,
    predict,
    simulate,
)
from trainsim.models import Granularity, ParallelPlan, model_preset, step_flops


def test_cluster_presets_shape() -> None:
    system = cluster_system("h100-sxm", 64)
    assert system.topology.num_npus == 64
    assert [d.npus for d in system.topology.dims] == [8, 8]
    assert system.topology.dims[0].bandwidth_gbps == 450.0
    assert cluster_system("a100-80gb", 4).topology.num_npus == 4
    with pytest.raises(SystemConfigError, match="multiple of the 8 GPUs"):
        cluster_system("h100-sxm", 12)
    with pytest.raises(SystemConfigError, match="not a preset"):
        cluster_system("h100-sxm", 8, cluster="nope")


def test_predict_metrics_are_consistent() -> None:
    model = model_preset("gpt-1.7b")
    plan = ParallelPlan.for_gpus(16, tp=2, pp=2, global_batch_size=32)
    result = predict(model, plan, cluster_system("a100-80gb", 16))
    flops = step_flops(model, plan)
    assert result.tokens_per_s == pytest.approx(flops.tokens / result.step_time_s)
    assert result.mfu == pytest.approx(
        flops.model_flops / (16 * 312e12 * result.step_time_s), rel=1e-6
    )
    assert 0 < result.mfu < 1 and result.hfu >= result.mfu
    summary = result.summary()
    assert {"step_time_s", "tokens_per_s", "tflops_per_gpu", "mfu", "memory_gib_per_gpu"} <= set(
        summary
    )
    # two pipeline stages, one representative each
    assert sorted(result.programs) == [0, 8]
    assert result.breakdown[0].bubble_ns > 0


@pytest.mark.parametrize(
    ("sequence_parallel", "granularity"),
    [(False, "layer"), (True, "layer"), (True, "op")],
    ids=["plain", "sp-layer", "sp-op"],
)
def test_rank_class_equals_per_rank_on_a_generated_plan(
    sequence_parallel: bool, granularity: Granularity
) -> None:
    """The generated rank-class ETs and the full per-rank expansion give the same step, also
    with the SM-holding exchanges of sequence parallelism's backward (``comm_beside``)."""
    from trainsim.engine import Workload
    from trainsim.models import RankLayout, generate_rank

    model = model_preset("gpt-1.7b").model_copy(update={"num_layers": 8})
    plan = ParallelPlan.for_gpus(
        8, tp=2, pp=2, global_batch_size=8, sequence_parallel=sequence_parallel
    )
    system = cluster_system("h100-sxm", 8)
    classes = simulate(plan_workload(model, plan, granularity=granularity), system)
    layout = RankLayout(plan)
    graphs = {
        r: generate_rank(model, plan, r, granularity=granularity) for r in range(plan.num_gpus)
    }
    full = simulate(Workload.from_graphs(graphs, world_size=plan.num_gpus), system)
    assert full.step_time_ns == pytest.approx(classes.step_time_ns, rel=1e-12)
    for stage in range(plan.pp):
        rank = layout.rank_of(pp=stage)
        assert full.rank_finish_ns[rank] == pytest.approx(classes.rank_finish_ns[rank], rel=1e-12)


def test_predict_notes_memory_over_capacity() -> None:
    model = model_preset("llama3-70b")
    plan = ParallelPlan.for_gpus(64, tp=8, pp=1, global_batch_size=8)
    result = predict(model, plan, cluster_system("h100-sxm", 64))
    assert any("would not fit" in note for note in result.notes)


def test_load_system_yaml_and_errors(tmp_path: Path) -> None:
    from trainsim.engine import load_system

    folder = tmp_path
    good = folder / "sys.yaml"
    good.write_text(
        "name: lab\nnetwork: ring:8@100/1\ncollective:\n  endpoint_delay_ns: 10\n"
        "scheduling:\n  comm_streams: 2\ncompression:\n  method: scalecom\n  ratio: 50\n"
    )
    system = load_system(good)
    assert system.collective.endpoint_delay_ns == 10
    assert system.scheduling.comm_streams == 2
    assert system.compression is not None and system.compression.ratio == 50
    bad = folder / "bad.yaml"
    bad.write_text("scheduling:\n  comm_streams: 0\n")
    with pytest.raises(SystemConfigError, match=r"scheduling.comm_streams: .* \(got 0\)"):
        load_system(bad)


def test_tp_overlap_plans_are_predicted_at_op_granularity() -> None:
    """Only op nodes put each TE exchange beside its GEMM; a layer node hides the pipelined
    reduce-scatter's last chunk, so the overlapped plan's default is op granularity, which
    exposes more TP time than layer nodes do, and other plans stay at layer granularity."""
    model = model_preset("gpt-1.7b").model_copy(update={"num_layers": 4})
    plan = ParallelPlan.for_gpus(
        8, tp=8, global_batch_size=2, sequence_parallel=True, overlap_tp_comm=True
    )
    system = cluster_system("h100-sxm", 8)
    assert default_granularity(plan) == "op"
    assert default_granularity(plan.model_copy(update={"overlap_tp_comm": False})) == "layer"
    auto = predict(model, plan, system)
    assert auto.step_time_s == predict(model, plan, system, granularity="op").step_time_s
    coarse = predict(model, plan, system, granularity="layer")
    exposed_tp = {
        g: r.breakdown[0].exposed_comm_ns.get("tp", 0.0)
        for g, r in (("op", auto), ("layer", coarse))
    }
    assert exposed_tp["op"] > exposed_tp["layer"]


def test_sequence_parallel_backward_overlap_agrees_at_both_granularities() -> None:
    """Sequence parallelism's backward re-gathers and reduce-scatters beside the gradient
    GEMMs: op nodes place each beside its GEMM, a layer node puts them beside itself; both
    charge the SMs NCCL holds while they run and overlap communication. Op nodes also expose
    what a GEMM too short to hide its exchange leaves (2% of this small model's step; the
    Korthikanti et al. rows agree to 0.1%)."""
    model = model_preset("gpt-1.7b").model_copy(update={"num_layers": 4})
    plan = ParallelPlan.for_gpus(
        8, tp=8, global_batch_size=2, sequence_parallel=True, recompute="selective"
    )
    system = cluster_system("a100-80gb", 8)
    steps = {g: predict(model, plan, system, granularity=g) for g in ("layer", "op")}
    assert steps["op"].step_time_s == pytest.approx(steps["layer"].step_time_s, rel=0.03)
    for result in steps.values():
        breakdown = result.breakdown[0]
        assert breakdown.overlapped_comm_ns > 0
