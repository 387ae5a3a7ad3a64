"""``forecast``: exact without noise, Daly's mean with failures, reproducible, presentable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trainsim import engine
from trainsim.engine import (
    Distribution,
    FailureSpec,
    ForecastConfigError,
    VariabilitySpec,
    cluster_system,
    daly_expected_wall_s,
    forecast,
    plan_workload,
    simulate,
)
from trainsim.models import ModelSpec, ParallelPlan, model_from_mapping, model_preset
from trainsim.studies.cli import main as cli_main

PLAN = ParallelPlan(tp=2, pp=2, dp=2, global_batch_size=8, sequence_parallel=True)


def _model() -> ModelSpec:
    return model_from_mapping({**model_preset("llama3-8b").model_dump(), "num_layers": 4})


@pytest.fixture(scope="module")
def setup() -> tuple[engine.Workload, engine.System, engine.StepResult]:
    system = cluster_system("h100-sxm", 8)
    workload = plan_workload(_model(), PLAN)
    return workload, system, simulate(workload, system)


def test_no_variability_no_failures_is_steps_times_step_time(setup: tuple) -> None:  # type: ignore[type-arg]
    workload, system, step = setup
    got = forecast(workload, system, steps=123_457, samples=50, seed=0, step=step)
    assert np.allclose(got.wall_s, 123_457 * step.step_time_s, rtol=1e-12, atol=0)
    assert got.effective_training_fraction == 1.0
    assert got.p50_days == got.p99_days


def test_failures_without_variability_match_daly(setup: tuple) -> None:  # type: ignore[type-arg]
    workload, system, step = setup
    steps = 2_000_000
    solve_s = steps * step.step_time_s
    interval_s = solve_s / 400  # whole segments, as in Daly's derivation
    failures = FailureSpec(
        mtbf_gpu_hours=8 * 20.0,
        checkpoint_write_s=30.0,
        checkpoint_interval_s=interval_s,
        restart_s=120.0,
    )
    got = forecast(workload, system, steps=steps, samples=10_000, failures=failures, step=step)
    mtbf_s = 20.0 * 3600
    expected = daly_expected_wall_s(solve_s, interval_s, 30.0, mtbf_s, 120.0)
    assert got.wall_s.mean() == pytest.approx(expected, rel=0.01)
    assert got.job_mtbf_s == pytest.approx(mtbf_s)


def test_same_seed_same_numbers(setup: tuple) -> None:  # type: ignore[type-arg]
    workload, system, step = setup
    kwargs = {
        "steps": 100_000,
        "samples": 500,
        "step_samples": 200,
        "variability": VariabilitySpec.prism(),
        "failures": FailureSpec(mtbf_gpu_hours=1000.0, checkpoint_write_s=20.0),
        "step": step,
    }
    first = forecast(workload, system, seed=3, **kwargs)
    again = forecast(workload, system, seed=3, **kwargs)
    other = forecast(workload, system, seed=4, **kwargs)
    assert np.array_equal(first.wall_s, again.wall_s)
    assert first.summary() == again.summary()
    assert not np.array_equal(first.wall_s, other.wall_s)


def test_model_forecast_reports_quantiles_and_sources(tmp_path: Path) -> None:
    system = cluster_system("h100-sxm", 8)
    spec = VariabilitySpec(
        kernels={"gemm": Distribution(kind="lognormal", cv=0.05)},
        slow_gpu_fraction=0.05,
        slow_gpu_slowdown=1.2,
    )
    got = forecast(
        _model(),
        system,
        plan=PLAN,
        tokens=2e9,
        samples=2000,
        step_samples=300,
        variability=spec,
        failures=FailureSpec(mtbf_gpu_hours=200.0, checkpoint_write_s=30.0, restart_s=60.0),
    )
    tokens_per_step = 8 * _model().seq_len
    assert got.steps == -(-int(2e9) // tokens_per_step)
    assert got.p50_days <= got.p90_days <= got.p99_days
    assert got.probability_within(got.p90_days) == pytest.approx(0.9, abs=0.01)
    assert got.probability_within(0.0) == 0.0
    sources = got.contributions_s
    assert sources["variability"] > 0 and sources["slow_gpus"] > 0 and sources["failures"] > 0
    assert sum(sources.values()) == pytest.approx(float(got.wall_s.mean()), rel=0.01)
    assert 0 < got.effective_training_fraction < 1
    goodput = got.goodput_tokens_per_s
    assert goodput is not None and goodput.shape == (2000,)
    frame = got.to_dataframe()
    assert list(frame.columns)[:2] == ["wall_days", "compute_days"] and len(frame) == 2000
    summary = got.summary()
    for key in ("p50_days", "p90_days", "p99_days", "mean_days", "effective_training_fraction"):
        assert isinstance(summary[key], float)
    json.dumps(summary)
    assert "time to train" in got.format()
    got.plot_cdf(tmp_path / "cdf.png")
    got.plot_histogram(tmp_path / "hist.png")
    assert (tmp_path / "cdf.png").stat().st_size > 0


def test_format_prints_mean_failures_with_precision_and_grammar(setup: tuple) -> None:  # type: ignore[type-arg]
    workload, system, step = setup
    # A job MTBF near the run's length: some runs fail, the mean count is a fraction.
    failures = FailureSpec(mtbf_gpu_hours=8 * 60.0, checkpoint_write_s=10.0, restart_s=60.0)
    got = forecast(workload, system, steps=100_000, samples=2000, failures=failures, step=step)
    mean = float(got.failures.mean())
    assert 0.0 < mean < 10.0 and mean != round(mean)
    text = got.format()
    assert f"{mean:.2f} failures on average" in text
    summary = got.summary()
    assert summary["failures_mean"] == mean  # --json keeps the exact mean
    assert json.loads(json.dumps(summary))["failures_mean"] == mean


@pytest.mark.parametrize(
    ("mean", "expected"),
    [
        (0.0, "0 failures"),
        (1.0, "1 failure"),
        (3.0, "3 failures"),
        (0.67, "0.67 failures"),
        (0.0075, "0.0075 failures"),
        (0.999, "1.00 failures"),
        (2.5, "2.50 failures"),
        (12.34, "12.3 failures"),
        (1234.5, "1,234 failures"),
    ],
)
def test_mean_count_wording(mean: float, expected: str) -> None:
    from trainsim.engine._forecast import _format_mean_count

    assert _format_mean_count(mean, "failure") == expected


def test_format_tells_narrow_quantiles_apart(setup: tuple) -> None:  # type: ignore[type-arg]
    workload, system, step = setup
    # 2e6 steps of 0.2 s with noisy GEMMs: a 6.5-day run whose P50, P90 and P99 lie within a
    # minute of each other, all "6.55" at two decimals (0.01 d = 14 min).
    spec = VariabilitySpec(kernels={"gemm": Distribution(kind="lognormal", cv=0.5)})
    got = forecast(
        workload, system, steps=2_000_000, samples=2000, step_samples=200, variability=spec,
        step=step,
    )  # fmt: skip
    assert len({round(got.quantile_days(q), 2) for q in (0.5, 0.9, 0.99)}) == 1
    line = next(t for t in got.format().splitlines() if "time to train" in t)
    shown = [part.split()[1] for part in line.split(", ")[1:]]
    assert len(shown) == 3 and len(set(shown)) == 3, line
    for text, q in zip(shown, (0.5, 0.9, 0.99), strict=True):
        decimals = len(text.split(".")[1])
        assert float(text.replace(",", "")) == pytest.approx(
            got.quantile_days(q), abs=0.51 * 10**-decimals
        )
    # Equal quantiles (no variability) stay at two decimals: no invented precision.
    flat = forecast(workload, system, steps=200_000, samples=50, step=step)
    assert f"P99 {flat.p99_days:,.2f} d" in flat.format()


def test_bad_requests_raise_engine_errors(setup: tuple) -> None:  # type: ignore[type-arg]
    workload, system, step = setup
    with pytest.raises(ForecastConfigError, match="tokens"):
        forecast(workload, system, step=step)
    with pytest.raises(ForecastConfigError, match="tokens per step"):
        forecast(workload, system, tokens=1e9, step=step)
    with pytest.raises(ForecastConfigError, match="samples"):
        forecast(workload, system, steps=10, samples=1, step=step)
    with pytest.raises(ForecastConfigError, match="plan"):
        forecast(_model(), system, tokens=1e9)
    assert issubclass(ForecastConfigError, engine.EngineError)


def test_public_names() -> None:
    for name in (
        "Distribution",
        "FailureSpec",
        "ForecastConfigError",
        "InterruptionTable",
        "StepSamples",
        "TrainingForecast",
        "VariabilitySpec",
        "daly_expected_wall_s",
        "daly_interval_s",
        "forecast",
        "load_variability",
        "sample_steps",
        "variability_from_workload",
        "young_interval_s",
    ):
        assert name in engine.__all__ and hasattr(engine, name)


def test_cli_forecast_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = [
        "forecast", "--model", "llama3-8b", "--layers", "4", "--gpus", "8", "--tp", "2",
        "--pp", "2", "--global-batch", "8", "--tokens", "1e9", "--samples", "500",
        "--step-samples", "100", "--variability", "prism", "--interruptions", "llama3",
        "--checkpoint-interval", "30", "--json", "--plot", str(tmp_path / "cdf.png"),
    ]  # fmt: skip
    assert cli_main(args) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("p50_days", "p90_days", "p99_days", "mean_days", "effective_training_fraction"):
        assert out[key] > 0
    assert out["checkpoint_interval_s"] == 1800.0
    assert (tmp_path / "cdf.png").exists()


@pytest.mark.parametrize(
    "bad",
    [
        ["--tokens", "-1"],
        ["--tokens", "1e9", "--checkpoint-interval", "soon"],
        ["--tokens", "1e9", "--variability", "missing.yaml"],
        ["--tokens", "1e9", "--mtbf-gpu-hours", "10", "--interruptions", "llama3"],
    ],
)
def test_cli_forecast_bad_input_exits_2(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    base = ["forecast", "--model", "llama3-8b", "--layers", "4", "--gpus", "8", "--tp", "2"]
    assert cli_main([*base, *bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trainsim: error:") and "\n" not in err
