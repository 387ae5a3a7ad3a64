"""Failures, checkpoints and restarts: the wall time a run of given compute time takes.

Failures of a job are a Poisson process whose rate is the job's GPUs over the per-GPU MTBF
(or servers over the per-node MTBF, or an observed interruption table such as Llama 3's:
419 unexpected interruptions in 54 days on 16,384 H100s). The run computes in segments of
``checkpoint_interval_s`` (Daly's optimum by default), each followed by a checkpoint write of
``checkpoint_write_s``. A failure loses the segment's progress, then the job restarts in
``restart_s`` (a restart can fail too and starts over) and redoes the segment. This is the
model behind Daly's closed form (2006), whose expected wall time it reproduces; here it is
sampled, so quantiles come with the mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainsim.engine._variability import ForecastConfigError

__all__ = [
    "FailureSamples",
    "FailureSpec",
    "InterruptionTable",
    "daly_expected_wall_s",
    "daly_interval_s",
    "sample_failures",
    "young_interval_s",
]


class InterruptionTable(BaseModel):
    """Observed job interruptions: how many, over how many days, on how many GPUs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interruptions: int = Field(..., ge=1, description="unexpected interruptions observed")
    days: float = Field(..., gt=0.0, description="length of the observation")
    gpus: int = Field(..., ge=1, description="GPUs of the job observed")
    source: str = ""

    @classmethod
    def llama3(cls) -> InterruptionTable:
        """Llama 3 405B pre-training: 419 unexpected interruptions in 54 days, 16,384 H100s."""
        return cls(
            interruptions=419,
            days=54.0,
            gpus=16384,
            source="The Llama 3 Herd of Models (2024), 54-day snapshot",
        )

    @property
    def mtbf_gpu_hours(self) -> float:
        """The per-GPU MTBF the table implies (GPU-hours per interruption)."""
        return self.days * 24.0 * self.gpus / self.interruptions


class FailureSpec(BaseModel):
    """How often the job fails and what a failure and a checkpoint cost.

    Give at most one of ``mtbf_gpu_hours``, ``mtbf_node_hours`` (with ``gpus_per_node``) or
    ``interruptions``; none means no failures. ``checkpoint_interval_s`` is compute time
    between checkpoints; None picks Daly's optimum for the job's MTBF.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mtbf_gpu_hours: float | None = Field(None, gt=0.0, description="per-GPU MTBF")
    mtbf_node_hours: float | None = Field(None, gt=0.0, description="per-server MTBF")
    gpus_per_node: int = Field(8, ge=1, le=1024)
    interruptions: InterruptionTable | None = None
    checkpoint_write_s: float = Field(60.0, ge=0.0, le=86400.0)
    checkpoint_interval_s: float | None = Field(None, gt=0.0)
    restart_s: float = Field(600.0, ge=0.0, le=86400.0)

    @model_validator(mode="after")
    def _one_rate(self) -> FailureSpec:
        given = [
            name
            for name in ("mtbf_gpu_hours", "mtbf_node_hours", "interruptions")
            if getattr(self, name) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give one failure rate, not {' and '.join(given)}")
        return self

    def job_mtbf_s(self, gpus: int) -> float | None:
        """Mean time between failures of a job on ``gpus`` GPUs (s); None if it never fails."""
        if gpus < 1:
            raise ForecastConfigError(f"gpus={gpus} must be at least 1")
        if self.mtbf_gpu_hours is not None:
            return self.mtbf_gpu_hours * 3600.0 / gpus
        if self.mtbf_node_hours is not None:
            return self.mtbf_node_hours * 3600.0 / math.ceil(gpus / self.gpus_per_node)
        if self.interruptions is not None:
            return self.interruptions.mtbf_gpu_hours * 3600.0 / gpus
        return None

    def interval_s(self, gpus: int) -> float | None:
        """Compute time between checkpoints: the given one, else Daly's optimum (None: no
        failures and no interval given, so no checkpoints are written)."""
        if self.checkpoint_interval_s is not None:
            return self.checkpoint_interval_s
        mtbf = self.job_mtbf_s(gpus)
        if mtbf is None:
            return None
        return daly_interval_s(self.checkpoint_write_s, mtbf)


def young_interval_s(checkpoint_write_s: float, mtbf_s: float) -> float:
    """Young's (1974) optimum checkpoint interval: sqrt(2 * delta * M)."""
    return math.sqrt(2.0 * checkpoint_write_s * mtbf_s)


def daly_interval_s(checkpoint_write_s: float, mtbf_s: float) -> float:
    """Daly's (2006) higher-order optimum checkpoint interval (compute time per segment)."""
    delta = checkpoint_write_s
    if delta <= 0.0:
        # Free checkpoints: checkpoint as often as one likes; a tiny interval stands for it.
        return mtbf_s * 1e-6
    if delta >= 2.0 * mtbf_s:
        return mtbf_s
    x = delta / (2.0 * mtbf_s)
    return math.sqrt(2.0 * delta * mtbf_s) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - delta


def daly_expected_wall_s(
    solve_s: float, interval_s: float, checkpoint_write_s: float, mtbf_s: float, restart_s: float
) -> float:
    """Daly's closed-form expected wall time: M e^(R/M) (e^((tau+delta)/M) - 1) T_s / tau."""
    m = mtbf_s
    return (
        m
        * math.exp(restart_s / m)
        * math.expm1((interval_s + checkpoint_write_s) / m)
        * solve_s
        / interval_s
    )


@dataclass
class FailureSamples:
    """Per sample: wall time and its parts (s), and how many failures struck."""

    wall_s: NDArray[np.float64]
    compute_s: NDArray[np.float64]
    checkpoint_s: NDArray[np.float64]
    lost_s: NDArray[np.float64]
    restart_s: NDArray[np.float64]
    failures: NDArray[np.int64]


def _truncated_exp_sums(
    counts: NDArray[np.int64],
    limit_s: float | NDArray[np.float64],
    rate: float,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Per sample, the sum of ``counts`` times-to-failure, each conditioned to be < limit."""
    total = int(counts.sum())
    size = counts.size
    if total == 0:
        return np.zeros(size)
    owner = np.repeat(np.arange(size), counts)
    limit = limit_s if isinstance(limit_s, float) else np.asarray(limit_s)[owner]
    u = rng.random(total)
    # Inverse CDF of the exponential truncated at the limit.
    draws = -np.log1p(-u * -np.expm1(-rate * np.asarray(limit))) / rate
    sums: NDArray[np.float64] = np.bincount(owner, weights=draws, minlength=size).astype(np.float64)
    return sums


def sample_failures(
    compute_s: NDArray[np.float64], spec: FailureSpec, gpus: int, rng: np.random.Generator
) -> FailureSamples:
    """Sample the wall time of runs needing ``compute_s`` of failure-free compute each."""
    compute = np.asarray(compute_s, dtype=np.float64)
    size = compute.size
    mtbf = spec.job_mtbf_s(gpus)
    interval = spec.interval_s(gpus)
    zeros = np.zeros(size)
    if interval is None:
        return FailureSamples(
            compute.copy(), compute, zeros, zeros, zeros.copy(), zeros.astype(np.int64)
        )
    delta = spec.checkpoint_write_s
    full = np.floor(compute / interval).astype(np.int64)
    rest = compute - full * interval
    # A remainder below a millionth of an interval is rounding, not a segment of its own.
    partial = rest > interval * 1e-9
    segments = full + partial
    checkpoint = np.asarray(segments * delta, dtype=np.float64)
    if mtbf is None:
        wall = compute + checkpoint
        return FailureSamples(
            wall, compute, checkpoint, zeros, zeros.copy(), zeros.astype(np.int64)
        )
    rate = 1.0 / mtbf
    full_len = interval + delta
    last_len = np.where(partial, rest + delta, 0.0)
    # Failures before each segment's success: geometric; over k like segments, negative binomial.
    p_full = math.exp(-rate * full_len)
    fails_full = rng.negative_binomial(np.maximum(full, 1), p_full) * (full > 0)
    p_last = np.exp(-rate * last_len)
    fails_last = (rng.geometric(p_last) - 1) * partial
    lost = _truncated_exp_sums(fails_full.astype(np.int64), full_len, rate, rng)
    lost += _truncated_exp_sums(fails_last.astype(np.int64), last_len, rate, rng)
    failures = (fails_full + fails_last).astype(np.int64)
    restart = np.asarray(failures * spec.restart_s, dtype=np.float64)
    if spec.restart_s > 0.0:
        p_restart = math.exp(-rate * spec.restart_s)
        failed_restarts = rng.negative_binomial(np.maximum(failures, 1), p_restart) * (failures > 0)
        restart += _truncated_exp_sums(failed_restarts.astype(np.int64), spec.restart_s, rate, rng)
        failures = failures + failed_restarts
    wall = compute + checkpoint + lost + restart
    return FailureSamples(wall, compute, checkpoint, lost, restart, failures)
