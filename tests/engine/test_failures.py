"""Failures and checkpoints: Daly's closed form, Young/Daly intervals, Llama 3's setting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainsim.engine import (
    FailureSpec,
    InterruptionTable,
    daly_expected_wall_s,
    daly_interval_s,
    young_interval_s,
)
from trainsim.engine._failures import sample_failures


def test_monte_carlo_mean_matches_daly_within_one_percent() -> None:
    spec = FailureSpec(mtbf_gpu_hours=30_000.0, checkpoint_write_s=60.0, restart_s=600.0)
    gpus = 10_000
    mtbf = spec.job_mtbf_s(gpus)
    interval = spec.interval_s(gpus)
    assert mtbf is not None and interval is not None
    solve = 500 * interval  # a whole number of segments, as Daly's formula assumes
    got = sample_failures(np.full(10_000, solve), spec, gpus, np.random.default_rng(0))
    expected = daly_expected_wall_s(solve, interval, 60.0, mtbf, 600.0)
    assert got.wall_s.mean() == pytest.approx(expected, rel=0.01)
    # The sampled parts add up, and failures arrive at the job's rate.
    parts = got.compute_s + got.checkpoint_s + got.lost_s + got.restart_s
    assert np.allclose(parts, got.wall_s)
    assert got.failures.mean() == pytest.approx(got.wall_s.mean() / mtbf, rel=0.05)


def test_daly_interval_refines_young() -> None:
    young = young_interval_s(60.0, 3 * 3600.0)
    daly = daly_interval_s(60.0, 3 * 3600.0)
    assert young == pytest.approx(math.sqrt(2 * 60 * 3 * 3600))
    assert daly == pytest.approx(young, rel=0.06)
    assert daly_interval_s(10_000.0, 3600.0) == 3600.0  # delta >= 2M: checkpoint every MTBF


def test_daly_interval_minimizes_expected_wall_time() -> None:
    mtbf, delta, restart = 4 * 3600.0, 120.0, 300.0
    best = daly_interval_s(delta, mtbf)
    at_best = daly_expected_wall_s(1e6, best, delta, mtbf, restart)
    for factor in (0.7, 0.85, 1.2, 1.5):
        assert daly_expected_wall_s(1e6, best * factor, delta, mtbf, restart) > at_best


def test_llama3_405b_effective_training_above_90_percent() -> None:
    """16,384 H100s at Llama 3's interruption rate (419 unexpected in 54 days): with a
    30 s checkpoint write (sharded state, written in parallel) and a 3 min restart, the
    Daly-optimal schedule keeps effective training time above 90%, as reported."""
    table = InterruptionTable.llama3()
    spec = FailureSpec(interruptions=table, checkpoint_write_s=30.0, restart_s=180.0)
    mtbf = spec.job_mtbf_s(16_384)
    assert mtbf is not None and mtbf / 3600 == pytest.approx(54 * 24 / 419)
    compute = np.full(4000, 49.0 * 86400)  # about 54 days of wall time
    got = sample_failures(compute, spec, 16_384, np.random.default_rng(0))
    fraction = got.compute_s.mean() / got.wall_s.mean()
    assert 0.90 < fraction < 0.95
    days = got.wall_s.mean() / 86400
    assert got.failures.mean() / days == pytest.approx(419 / 54, rel=0.1)


def test_no_failures_means_no_overhead_unless_checkpoints_are_asked() -> None:
    compute = np.full(10, 1e6)
    none = sample_failures(compute, FailureSpec(), 1024, np.random.default_rng(0))
    assert np.array_equal(none.wall_s, compute)
    fixed = FailureSpec(checkpoint_interval_s=1e5, checkpoint_write_s=10.0)
    got = sample_failures(compute, fixed, 1024, np.random.default_rng(0))
    assert np.allclose(got.wall_s, 1e6 + 10 * 10.0)


def test_bad_failure_specs_name_the_field() -> None:
    with pytest.raises(ValueError, match="one failure rate"):
        FailureSpec(mtbf_gpu_hours=1e4, interruptions=InterruptionTable.llama3())
    with pytest.raises(ValueError, match="checkpoint_write_s"):
        FailureSpec(checkpoint_write_s=-1.0)
    with pytest.raises(ValueError, match="interruptions"):
        InterruptionTable(interruptions=0, days=1.0, gpus=8)
