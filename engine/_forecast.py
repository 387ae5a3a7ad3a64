"""``forecast``: the distribution of time-to-train, PRISM-style, with failures and checkpoints.

One deterministic step (``simulate``/``predict``), then S step samples under a
``VariabilitySpec`` in one vectorized pass (``engine._stochastic``), then the run: the steps of
a run are i.i.d. draws of the step time, so by the central limit theorem a run's failure-free
compute time is normal with mean steps x mean and variance steps x variance of the step time.
Failures, checkpoints and restarts (``FailureSpec``) turn compute time into wall time.

Approximations: steps are independent, so a GPU that is slow for a whole run is sampled
anew each step (the mean is right; the run-to-run spread it causes is not counted); the
share of slow GPUs is the difference of two step-sample means (with and without them) on
common random numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from trainsim.engine._errors import WorkloadError
from trainsim.engine._failures import FailureSpec, sample_failures
from trainsim.engine._predict import plan_workload, predict
from trainsim.engine._replay import build_replay
from trainsim.engine._result import StepResult
from trainsim.engine._simulate import simulate
from trainsim.engine._stochastic import StepSamples, run_samples
from trainsim.engine._system import System
from trainsim.engine._variability import ForecastConfigError, VariabilitySpec
from trainsim.engine._workload import Workload
from trainsim.models import ModelSpec, ParallelPlan

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TrainingForecast", "forecast"]

_DAY_S = 86400.0
_QUANTILES = (0.5, 0.9, 0.99)


@dataclass
class TrainingForecast:
    """Samples of a training run's wall time and its parts, with quantiles and plots."""

    label: str
    gpus: int
    steps: int
    tokens: float | None
    seed: int
    deterministic_step_time_s: float
    step: StepSamples
    compute_s: NDArray[np.float64]
    checkpoint_s: NDArray[np.float64]
    lost_s: NDArray[np.float64]
    restart_s: NDArray[np.float64]
    failures: NDArray[np.int64]
    wall_s: NDArray[np.float64]
    #: mean seconds of each source: deterministic, variability, slow_gpus, checkpoints, failures
    contributions_s: dict[str, float] = field(default_factory=dict)
    checkpoint_interval_s: float | None = None
    job_mtbf_s: float | None = None

    # -- headline numbers ------------------------------------------------------------------
    @property
    def samples(self) -> int:
        """Number of Monte Carlo samples of the run."""
        return int(self.wall_s.size)

    @property
    def mean_days(self) -> float:
        """Mean wall time (days)."""
        return float(self.wall_s.mean()) / _DAY_S

    def quantile_days(self, q: float) -> float:
        """The ``q`` quantile of the wall time (days): P(time <= it) = q."""
        if not 0.0 <= q <= 1.0:
            raise ForecastConfigError(f"q={q} must be within [0, 1]")
        return float(np.quantile(self.wall_s, q)) / _DAY_S

    @property
    def p50_days(self) -> float:
        """Median wall time (days)."""
        return self.quantile_days(0.5)

    @property
    def p90_days(self) -> float:
        """90th percentile of the wall time (days)."""
        return self.quantile_days(0.9)

    @property
    def p99_days(self) -> float:
        """99th percentile of the wall time: done by then with probability 0.99 (days)."""
        return self.quantile_days(0.99)

    def probability_within(self, deadline_days: float) -> float:
        """Probability that the run finishes within ``deadline_days``."""
        return float(np.mean(self.wall_s <= deadline_days * _DAY_S))

    @property
    def effective_training_fraction(self) -> float:
        """Share of wall time spent training (no checkpoint writes, lost work or restarts)."""
        return float(self.compute_s.mean() / self.wall_s.mean())

    @property
    def goodput_tokens_per_s(self) -> NDArray[np.float64] | None:
        """Per sample, the tokens trained per second of wall time (None without tokens)."""
        if self.tokens is None:
            return None
        result: NDArray[np.float64] = self.tokens / self.wall_s
        return result

    # -- presentation ----------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Headline figures as plain data (what ``--json`` prints)."""
        out: dict[str, Any] = {
            "label": self.label,
            "gpus": self.gpus,
            "steps": self.steps,
            "tokens": self.tokens,
            "samples": self.samples,
            "seed": self.seed,
            "deterministic_step_time_s": self.deterministic_step_time_s,
            "step_time_mean_s": self.step.mean_s,
            "step_time_cv": self.step.cv,
            "mean_days": self.mean_days,
            "p50_days": self.p50_days,
            "p90_days": self.p90_days,
            "p99_days": self.p99_days,
            "effective_training_fraction": self.effective_training_fraction,
            "failures_mean": float(self.failures.mean()),
            "job_mtbf_hours": None if self.job_mtbf_s is None else self.job_mtbf_s / 3600.0,
            "checkpoint_interval_s": self.checkpoint_interval_s,
            "contributions_days": {k: v / _DAY_S for k, v in self.contributions_s.items()},
            "step_variability_by_class": self.step.variability_by_class()[:6],
        }
        goodput = self.goodput_tokens_per_s
        if goodput is not None:
            out["goodput_tokens_per_s_mean"] = float(goodput.mean())
        return out

    def to_dataframe(self) -> pd.DataFrame:
        """One row per sample: wall time and its parts in days, and failures."""
        import pandas as pd

        frame: pd.DataFrame = pd.DataFrame(
            {
                "wall_days": self.wall_s / _DAY_S,
                "compute_days": self.compute_s / _DAY_S,
                "checkpoint_days": self.checkpoint_s / _DAY_S,
                "lost_days": self.lost_s / _DAY_S,
                "restart_days": self.restart_s / _DAY_S,
                "failures": self.failures,
            }
        )
        return frame

    def format(self) -> str:
        """A few readable lines for a terminal."""
        lines = [
            f"{self.label}: {self.steps:,} steps on {self.gpus:,} GPUs, {self.samples:,} samples",
            f"  step time {self.deterministic_step_time_s:,.3f} s deterministic, "
            f"{self.step.mean_s:,.3f} s mean (CV {self.step.cv:.2%})",
            f"  time to train: mean {self.mean_days:,.2f} d, P50 {self.p50_days:,.2f} d, "
            f"P90 {self.p90_days:,.2f} d, P99 {self.p99_days:,.2f} d",
            f"  effective training time {self.effective_training_fraction:.1%}, "
            f"{self.failures.mean():,.0f} failures on average",
        ]
        if self.job_mtbf_s is not None:
            interval = self.checkpoint_interval_s or 0.0
            lines.append(
                f"  job MTBF {self.job_mtbf_s / 3600:,.2f} h, checkpoint every "
                f"{interval / 60:,.1f} min"
            )
        parts = ", ".join(f"{k} {v / _DAY_S:,.2f} d" for k, v in self.contributions_s.items())
        lines.append(f"  mean by source: {parts}")
        top = self.step.variability_by_class()[:3]
        if top and float(top[0]["std_s"]) > 0.0:
            shown = ", ".join(f"{r['class']} {float(r['share']):.0%}" for r in top)
            lines.append(f"  step-time variability carried by: {shown}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"TrainingForecast(mean_days={self.mean_days:.4g}, p99_days={self.p99_days:.4g}, "
            f"samples={self.samples})"
        )

    def _repr_html_(self) -> str:
        return "<pre>" + self.format() + "</pre>"

    def plot_cdf(self, path: str | Path | None = None) -> Any:
        """The CDF of the wall time in days (saved to ``path`` when given); the figure."""
        fig, ax = _new_figure(path)
        days = np.sort(self.wall_s) / _DAY_S
        ax.plot(days, np.arange(1, days.size + 1) / days.size)
        for q in _QUANTILES:
            ax.axvline(self.quantile_days(q), ls=":", lw=1, color="gray")
        return _finish_figure(fig, ax, "P(done by then)", self.label, path)

    def plot_histogram(self, path: str | Path | None = None, bins: int = 60) -> Any:
        """A histogram of the wall time in days (saved to ``path`` when given); the figure."""
        fig, ax = _new_figure(path)
        ax.hist(self.wall_s / _DAY_S, bins=bins)
        return _finish_figure(fig, ax, "samples", self.label, path)


def _new_figure(path: str | Path | None) -> tuple[Any, Any]:
    """A figure and axes; off-screen (Agg) when it is to be saved to ``path``."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4))


def _finish_figure(fig: Any, ax: Any, ylabel: str, title: str, path: str | Path | None) -> Any:
    """Label a wall-time figure, save and close it when ``path`` is given; the figure."""
    import matplotlib.pyplot as plt

    ax.set_xlabel("time to train (days)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
        plt.close(fig)
    return fig


def _run_steps(
    total_steps: int, step: StepSamples, samples: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Failure-free compute time of ``samples`` runs of i.i.d. steps (central limit)."""
    mean = step.mean_s
    std = step.std_s
    if std == 0.0:
        return np.full(samples, total_steps * mean)
    z = rng.standard_normal(samples)
    result: NDArray[np.float64] = total_steps * mean + math.sqrt(total_steps) * std * z
    return result


def forecast(
    target: Workload | ModelSpec,
    system: System,
    *,
    plan: ParallelPlan | None = None,
    tokens: float | None = None,
    steps: int | None = None,
    samples: int = 10000,
    seed: int = 0,
    variability: VariabilitySpec | None = None,
    failures: FailureSpec | None = None,
    step_samples: int = 1000,
    step: StepResult | None = None,
) -> TrainingForecast:
    """Forecast the time-to-train distribution of a workload, or of a model under a plan.

    ``tokens`` (needs a model, or ``step`` with metrics) or ``steps`` sets the run length.
    ``samples`` runs are drawn; ``step_samples`` step samples estimate the step-time
    distribution they are built from. ``step`` is the deterministic result when at hand.
    Same seed, same numbers.
    """
    if samples < 2 or step_samples < 2:
        raise ForecastConfigError(
            f"samples={samples} and step_samples={step_samples} must be at least 2"
        )
    spec = variability or VariabilitySpec()
    fail = failures or FailureSpec()
    if isinstance(target, ModelSpec):
        if plan is None:
            raise ForecastConfigError("forecast of a model needs plan=ParallelPlan(...)")
        if step is None:
            step = predict(target, plan, system)
        workload = plan_workload(target, plan)
    else:
        workload = target
        if step is None:
            step = simulate(workload, system)
    if steps is None:
        if tokens is None:
            raise ForecastConfigError("give tokens=... or steps=...")
        if step.metrics is None or step.metrics.tokens_per_step <= 0:
            raise ForecastConfigError("tokens=... needs a model (tokens per step); give steps=")
        steps = math.ceil(tokens / step.metrics.tokens_per_step)
    if steps < 1:
        raise ForecastConfigError(f"steps={steps} must be at least 1")
    if tokens is not None and tokens <= 0:
        raise ForecastConfigError(f"tokens={tokens} must be > 0")
    rng = np.random.default_rng(seed)
    det_s = step.step_time_s
    if det_s <= 0.0:
        raise WorkloadError(f"{workload.name}: the step takes no time; nothing to forecast")

    if spec.is_deterministic:
        constant = np.full(step_samples, det_s)
        step_draws = StepSamples(constant, det_s, {}, workload.per_rank)
        no_slow_mean = det_s
    else:
        replay = build_replay(workload, system, step)
        step_draws = run_samples(replay, spec, step_samples, rng)
        no_slow_mean = step_draws.mean_s
        if spec.has_slow_gpus:
            no_slow_mean = run_samples(replay, spec.without_slow_gpus(), step_samples, rng).mean_s
    compute = _run_steps(steps, step_draws, samples, rng)
    gpus = workload.world_size
    drawn = sample_failures(compute, fail, gpus, rng)
    contributions = {
        "deterministic": steps * det_s,
        "variability": steps * (no_slow_mean - det_s),
        "slow_gpus": steps * (step_draws.mean_s - no_slow_mean),
        "checkpoints": float(drawn.checkpoint_s.mean()),
        "failures": float((drawn.lost_s + drawn.restart_s).mean()),
    }
    return TrainingForecast(
        label=step.label,
        gpus=gpus,
        steps=steps,
        tokens=tokens,
        seed=seed,
        deterministic_step_time_s=det_s,
        step=step_draws,
        compute_s=drawn.compute_s,
        checkpoint_s=drawn.checkpoint_s,
        lost_s=drawn.lost_s,
        restart_s=drawn.restart_s,
        failures=drawn.failures,
        wall_s=drawn.wall_s,
        contributions_s=contributions,
        checkpoint_interval_s=fail.interval_s(gpus),
        job_mtbf_s=fail.job_mtbf_s(gpus),
    )
