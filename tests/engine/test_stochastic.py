"""Sample-vectorized stochastic execution: exactness without noise, modes agree, seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp

from trainsim.engine import (
    Distribution,
    ForecastConfigError,
    VariabilitySpec,
    Workload,
    cluster_system,
    default_granularity,
    load_variability,
    plan_workload,
    sample_steps,
    simulate,
)
from trainsim.models import ModelSpec, ParallelPlan, generate_rank, model_from_mapping, model_preset

GEMM_NOISE = VariabilitySpec(kernels={"gemm": Distribution(kind="normal", cv=0.035)})


def _small_model(layers: int = 4) -> ModelSpec:
    return model_from_mapping({**model_preset("llama3-8b").model_dump(), "num_layers": layers})


def _both_modes(plan: ParallelPlan, layers: int = 4) -> tuple[Workload, Workload]:
    """The rank-class workload of a plan and its per-rank counterpart (every rank)."""
    model = _small_model(layers)
    granularity = default_granularity(plan)  # what plan_workload uses
    per_rank = Workload.from_graphs(
        {r: generate_rank(model, plan, r, granularity=granularity) for r in range(plan.num_gpus)},
        world_size=plan.num_gpus,
    )
    return plan_workload(model, plan), per_rank


@pytest.mark.parametrize(
    ("tp", "pp", "dp", "micro_batches"),
    [(4, 1, 1, 1), (1, 2, 4, 4), (4, 2, 1, 4)],
    ids=["tp4", "pp2xdp4", "tp4xpp2"],
)
def test_rank_class_matches_per_rank_ks(tp: int, pp: int, dp: int, micro_batches: int) -> None:
    """Order statistics over copies give the distribution explicit members give.

    The two modes draw different random numbers, so this is a two-sample test at 0.5%: over 12
    seed pairs of the tp4 case the means differ by -0.002% +- 0.013% (no bias)."""
    plan = ParallelPlan(
        tp=tp, pp=pp, dp=dp, global_batch_size=dp * micro_batches, sequence_parallel=tp > 1
    )
    system = cluster_system("h100-sxm", max(plan.num_gpus, 8))
    classes, per_rank = _both_modes(plan)
    a = sample_steps(classes, system, GEMM_NOISE, samples=1000, seed=1)
    b = sample_steps(per_rank, system, GEMM_NOISE, samples=1000, seed=2)
    assert not a.per_rank and b.per_rank
    assert a.mean_s > a.deterministic_step_time_s
    assert ks_2samp(a.step_time_s, b.step_time_s).pvalue > 0.005


def test_rank_class_mean_matches_per_rank_with_tp_dp_pp() -> None:
    """With TP, DP and PP together the copies are coupled; the mean still agrees closely."""
    plan = ParallelPlan(tp=4, pp=2, dp=4, global_batch_size=16, sequence_parallel=True)
    system = cluster_system("h100-sxm", 32)
    classes, per_rank = _both_modes(plan)
    a = sample_steps(classes, system, GEMM_NOISE, samples=800, seed=1)
    b = sample_steps(per_rank, system, GEMM_NOISE, samples=800, seed=2)
    assert a.mean_s == pytest.approx(b.mean_s, rel=2e-3)
    slowdown_a = a.mean_s / a.deterministic_step_time_s - 1
    slowdown_b = b.mean_s / b.deterministic_step_time_s - 1
    assert slowdown_a == pytest.approx(slowdown_b, rel=0.15)


def test_no_variability_reproduces_the_deterministic_step() -> None:
    plan = ParallelPlan(tp=2, pp=2, dp=2, global_batch_size=8, sequence_parallel=True)
    system = cluster_system("h100-sxm", 8)
    workload = plan_workload(_small_model(), plan)
    deterministic = simulate(workload, system).step_time_s
    got = sample_steps(workload, system, VariabilitySpec(), samples=10, seed=0)
    assert np.allclose(got.step_time_s, deterministic, rtol=1e-12, atol=0)


def test_same_seed_same_numbers() -> None:
    plan = ParallelPlan(tp=2, pp=2, dp=2, global_batch_size=8, sequence_parallel=True)
    system = cluster_system("h100-sxm", 8)
    workload = plan_workload(_small_model(), plan)
    spec = VariabilitySpec.prism()
    first = sample_steps(workload, system, spec, samples=200, seed=7)
    again = sample_steps(workload, system, spec, samples=200, seed=7)
    other = sample_steps(workload, system, spec, samples=200, seed=8)
    assert np.array_equal(first.step_time_s, again.step_time_s)
    assert not np.array_equal(first.step_time_s, other.step_time_s)


def test_prism_like_gemm_variation_at_64k_gpus() -> None:
    """PRISM-like GEMM variation on 65,536 GPUs: the step slows and the collectives that
    wait for the slowest GEMMs carry the step-time variability (PRISM: AllGather and
    ReduceScatter). Llama 3 405B's shape with fewer layers keeps the test fast."""
    model = model_from_mapping({**model_preset("llama3-405b").model_dump(), "num_layers": 16})
    plan = ParallelPlan(
        tp=8, pp=16, dp=512, global_batch_size=8192, sequence_parallel=True,
        zero_stage=1,
    )  # fmt: skip
    system = cluster_system("h100-sxm", plan.num_gpus)
    spec = VariabilitySpec(kernels={"gemm": Distribution(kind="lognormal", cv=0.035)})
    got = sample_steps(plan_workload(model, plan), system, spec, samples=300, seed=0)
    slowdown = got.mean_s / got.deterministic_step_time_s - 1
    assert 0.01 < slowdown < 0.15
    rows = got.variability_by_class()
    comm = {"reduce_scatter", "all_gather", "all_reduce", "send_recv"}
    assert sum(float(r["share"]) for r in rows if r["class"] in comm) > 0.5


def test_distributions_have_their_mean_and_cv() -> None:
    rng = np.random.default_rng(0)
    for kind in ("normal", "lognormal", "gamma"):
        draws = Distribution(kind=kind, mean=1.1, cv=0.05).sample(rng, 200_000)
        assert draws.mean() == pytest.approx(1.1, rel=2e-3)
        assert draws.std() / draws.mean() == pytest.approx(0.05, rel=2e-2)
    empirical = Distribution.from_durations([90.0, 100.0, 110.0])
    assert set(np.round(empirical.sample(rng, 100), 6)) <= {0.9, 1.0, 1.1}


def test_bad_specs_name_the_field() -> None:
    with pytest.raises(ValueError, match="cv"):
        Distribution(kind="normal", cv=-1.0)
    with pytest.raises(ValueError, match="allowed: gemm"):
        VariabilitySpec(kernels={"matmul": Distribution()})
    with pytest.raises(ValueError, match="empirical"):
        Distribution(kind="empirical")
    with pytest.raises(ForecastConfigError):
        Distribution.from_durations([])


def test_load_variability_file(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    good = folder / "var.yaml"
    good.write_text("kernels:\n  gemm: {kind: lognormal, cv: 0.05}\nslow_gpu_fraction: 0.01\n")
    spec = load_variability(good)
    assert spec.kernels["gemm"].cv == 0.05
    bad = folder / "bad.yaml"
    bad.write_text("slow_gpu_fraction: 2.0\n")
    with pytest.raises(ForecastConfigError, match="slow_gpu_fraction"):
        load_variability(bad)
    assert load_variability("prism").kernels["gemm"].cv > 0


def test_slow_gpus_node_factor_and_degraded_links_slow_the_step() -> None:
    plan = ParallelPlan(tp=2, pp=2, dp=2, global_batch_size=8, sequence_parallel=True)
    system = cluster_system("h100-sxm", 8)
    workload = plan_workload(_small_model(), plan)
    base = sample_steps(workload, system, VariabilitySpec(), samples=50, seed=0).mean_s
    for spec in (
        VariabilitySpec(slow_gpu_fraction=0.2, slow_gpu_slowdown=1.3),
        VariabilitySpec(node_factor=Distribution(kind="gamma", cv=0.1), gpus_per_node=4),
        VariabilitySpec(degraded_link_fraction=0.2, degraded_bandwidth_factor=0.5),
    ):
        got = sample_steps(workload, system, spec, samples=400, seed=0)
        assert got.mean_s > base * 1.001
        assert got.std_s > 0


def test_empirical_variability_from_measured_durations() -> None:
    from trainsim.chakra_et import ETGraph, NodeType, new_metadata, new_node
    from trainsim.engine import variability_from_workload

    durations = [90, 100, 110, 95, 105]
    nodes = [
        new_node(
            i, "sm90_gemm", NodeType.COMP_NODE, duration_micros=d, data_deps=[i - 1] if i else []
        )
        for i, d in enumerate(durations)
    ]
    nodes.append(new_node(5, "once_kernel", NodeType.COMP_NODE, duration_micros=7, data_deps=[4]))
    workload = Workload.from_graphs({0: ETGraph(new_metadata(), nodes)}, world_size=1)
    spec = variability_from_workload(workload)
    assert set(spec.kernels) == {"gemm"}
    samples = spec.kernels["gemm"].samples
    assert samples is not None and sorted(samples) == pytest.approx([0.9, 0.95, 1.0, 1.05, 1.1])
    with pytest.raises(ForecastConfigError, match="repeats"):
        variability_from_workload(workload, min_repeats=6)
