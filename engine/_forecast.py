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
        quantiles_days = [self.quantile_days(q) for q in _QUANTILES]
        decimals = _day_decimals(quantiles_days)
        shown = ", ".join(
            f"P{q * 100:g} {v:,.{decimals}f} d"
            for q, v in zip(_QUANTILES, quantiles_days, strict=True)
        )
        lines = [
            f"{self.label}: {self.steps:,} steps on {self.gpus:,} GPUs, {self.samples:,} samples",
            f"  step time {self.deterministic_step_time_s:,.3f} s deterministic, "
            f"{self.step.mean_s:,.3f} s mean (CV {self.step.cv:.2%})",
            f"  time to train: mean {self.mean_days:,.{decimals}f} d, {shown}",
            f"  effective training time {self.effective_training_fraction:.1%}, "
            f"{_format_mean_count(float(self.failures.mean()), 'failure')} on average",
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
        """The CDF of the wall time in days, P50/P90/P99 marked (saved to ``path``); the figure.

        The axis spans the bulk of the runs and at least P99; the few runs beyond it (failures
        far in the tail) are counted in the legend rather than squashing the curve into a corner.
        """
        fig, ax = _new_figure(path)
        days = np.sort(self.wall_s) / _DAY_S
        marks, decimals = self._quantile_marks()
        probability = np.arange(1, days.size + 1) / days.size
        # A step per sample: the empirical CDF is a staircase, not a line between samples.
        ax.step(days, probability, where="post", color="C0", lw=1.5, label="sampled runs")
        for q, value_days, color, name in marks:
            ax.axvline(value_days, ls="--", lw=1, color=color, label=name)
            ax.axhline(q, ls=":", lw=0.8, color=color)
        low_days, high_days = _shown_range_days(days)
        high_days = max(high_days, *(value_days for _, value_days, _, _ in marks))
        if high_days > low_days:
            margin_days = 0.03 * (high_days - low_days)
            ax.set_xlim(low_days - margin_days, high_days + margin_days)
        ax.set_ylim(0.0, 1.02)
        # Lower right lies under the curve's top, which is near 1 at the axis' right end.
        note = _off_axis_note(days, low_days, high_days, decimals)
        _legend(ax, "lower right", note)
        return _finish_figure(fig, ax, "P(run done by then)", self._plot_title("CDF"), path)

    def plot_histogram(self, path: str | Path | None = None, bins: int | None = None) -> Any:
        """A histogram of the wall time in days, P50/P90/P99 marked (saved to ``path``).

        ``bins`` (default: Freedman-Diaconis, 10 to 80) covers the bulk of the runs: a few
        runs that failures stretch far out would otherwise put every other run in one bar, so
        they are counted in the legend instead. When one bar holds most runs (most have no
        failure), the count axis is logarithmic so the tail's bars stay visible. The figure.
        """
        fig, ax = _new_figure(path)
        days = self.wall_s / _DAY_S
        low_days, high_days = _shown_range_days(days)
        shown = days[(days >= low_days) & (days <= high_days)]
        marks, decimals = self._quantile_marks()
        counts, _, _ = ax.hist(shown, bins=_histogram_edges(shown, bins), color="C0", alpha=0.85)
        off_axis = []
        for _, value_days, color, name in marks:
            if low_days <= value_days <= high_days:
                ax.axvline(value_days, ls="--", lw=1, color=color, label=name)
            else:
                off_axis.append(name)
        if high_days <= low_days:
            # One value: a narrow bar in a 2 % window, not a block that looks like a spread.
            ax.set_xlim(low_days * 0.99, low_days * 1.01)
        ylabel = f"sampled runs (of {self.samples:,})"
        if high_days > low_days and float(np.max(counts)) > _LOG_COUNTS_SHARE * shown.size:
            ax.set_yscale("log")
            ylabel += ", log scale"
        note = _off_axis_note(days, low_days, high_days, decimals, off_axis)
        _legend(ax, "best", note)
        return _finish_figure(fig, ax, ylabel, self._plot_title("distribution"), path)

    def _quantile_marks(self) -> tuple[list[tuple[float, float, str, str]], int]:
        """Per plotted quantile: q, its value (days), colour and label; and the decimals."""
        values_days = [self.quantile_days(q) for q in _QUANTILES]
        decimals = _day_decimals(values_days)
        marks = [
            (q, value_days, color, f"P{q * 100:g} {value_days:,.{decimals}f} d")
            for q, value_days, color in zip(_QUANTILES, values_days, _QUANTILE_COLORS, strict=True)
        ]
        return marks, decimals

    def _plot_title(self, kind: str) -> str:
        """Two title lines: what the plot shows, and the run it is of."""
        return (
            f"time to train, {kind}: {self.label}\n"
            f"{self.gpus:,} GPUs, {self.steps:,} steps, {self.samples:,} sampled runs"
        )


_QUANTILE_COLORS = ("C1", "C2", "C3")
#: Tukey's "far out" fence: runs beyond q75 + 3 IQR are outliers for the plots' axes.
_FENCE_IQR = 3.0
#: At most this share of runs may be left off a plot's axis; more are part of the shape.
_MAX_OFF_AXIS_SHARE = 0.05
#: Bounds on the automatic bin count: enough bars for a shape, few enough to read each.
_MIN_BINS = 10
_MAX_BINS = 80
#: A histogram whose tallest bar holds more than this share of runs gets a log count axis.
_LOG_COUNTS_SHARE = 0.5


def _shown_range_days(days: NDArray[np.float64]) -> tuple[float, float]:
    """The span of ``days`` a plot shows: all of it, unless a few far outliers stretch it.

    A forecast with rare failures has most runs within a fraction of a percent and a handful
    one restart longer; an axis to the longest run shows the bulk as a single bar. Runs past
    Tukey's far-out fences are left off when they are at most 5 % of the runs.
    """
    low, high = float(days.min()), float(days.max())
    q25, q75 = (float(v) for v in np.quantile(days, [0.25, 0.75]))
    iqr = q75 - q25
    if iqr <= 0.0 or high <= low:
        return low, high
    inside = days[(days >= q25 - _FENCE_IQR * iqr) & (days <= q75 + _FENCE_IQR * iqr)]
    if inside.size < days.size * (1.0 - _MAX_OFF_AXIS_SHARE):
        return low, high
    return float(inside.min()), float(inside.max())


def _histogram_edges(days: NDArray[np.float64], bins: int | None) -> NDArray[np.float64]:
    """Bin edges over ``days``: ``bins`` of them, or Freedman-Diaconis within 10 to 80.

    Freedman-Diaconis (width 2 IQR / n^(1/3)) follows the spread of the bulk rather than the
    extremes; with no spread in the bulk (most runs equal, a few with failures), the square
    root of the sample count. All samples equal: one bar 0.1 % of the value wide.
    """
    low, high = float(days.min()), float(days.max())
    if high <= low:
        half = max(abs(low) * 0.0005, 1e-9)
        return np.array([low - half, low + half])
    if bins is None:
        q25, q75 = np.quantile(days, [0.25, 0.75])
        width = 2.0 * float(q75 - q25) / days.size ** (1.0 / 3.0)
        count = (high - low) / width if width > 0.0 else math.sqrt(days.size)
        bins = int(min(max(math.ceil(count), _MIN_BINS), _MAX_BINS))
    result: NDArray[np.float64] = np.linspace(low, high, max(bins, 1) + 1)
    return result


def _runs(count: int) -> str:
    """``1 run``, ``12 runs``: a count of sampled runs with its noun."""
    return f"{count:,} run" + ("" if count == 1 else "s")


def _off_axis_note(
    days: NDArray[np.float64],
    low_days: float,
    high_days: float,
    decimals: int,
    off_axis: list[str] | None = None,
) -> str | None:
    """Lines that say how many runs lie beyond a plot's axis and how far, so none go unseen."""
    above = days[days > high_days]
    below = days[days < low_days]
    notes = []
    if float(days.min()) == float(days.max()):
        notes.append(f"all {_runs(days.size)} take {float(days[0]):,.{decimals}f} d")
    if above.size:
        notes.append(
            f"{_runs(above.size)} ({above.size / days.size:.1%}) longer than shown,\n"
            f"up to {float(above.max()):,.{decimals}f} d"
        )
    if below.size:
        notes.append(f"{_runs(below.size)} shorter, from {float(below.min()):,.{decimals}f} d")
    if off_axis:
        notes.append("beyond the axis: " + ", ".join(off_axis))
    return "\n".join(notes) if notes else None


def _legend(ax: Any, loc: str, note: str | None) -> None:
    """The plot's legend, with ``note`` (what the axis leaves out) as its title."""
    ax.legend(loc=loc, fontsize=8, title=note, title_fontsize=8, alignment="left")


def _day_decimals(values_days: list[float], least: int = 2, most: int = 4) -> int:
    """Decimals that tell apart values (days) that differ, from ``least`` up to ``most``.

    Two decimals of a day are 15 minutes; a narrow forecast has P50, P90 and P99 within that,
    and printing them all as the same number reads as a bug. Values within a relative 1e-9 are
    one value (the quantiles of equal samples differ in the last bits); ``most`` = 4 is 9 s.
    """
    distinct: list[float] = []
    for value in sorted(values_days):
        if not distinct or not math.isclose(value, distinct[-1], rel_tol=1e-9, abs_tol=0.0):
            distinct.append(value)
    for decimals in range(least, most + 1):
        if len({round(v, decimals) for v in distinct}) == len(distinct):
            return decimals
    return most


def _format_mean_count(mean: float, noun: str) -> str:
    """A mean count with its noun: ``0 failures``, ``1 failure``, ``0.67 failures``.

    A whole mean prints as a count (singular for one); a fractional one with two significant
    digits below 1 (0.0075), two decimals below 10, one below 100, none beyond.
    """
    if mean == round(mean):
        count = round(mean)
        return f"{count:,} {noun}" + ("" if count == 1 else "s")
    if mean < 1.0:
        decimals = max(2, 1 - math.floor(math.log10(abs(mean))))
    elif mean < 10.0:
        decimals = 2
    elif mean < 100.0:
        decimals = 1
    else:
        decimals = 0
    return f"{mean:,.{decimals}f} {noun}s"


def _new_figure(path: str | Path | None) -> tuple[Any, Any]:
    """A figure and axes; off-screen (Agg) when it is to be saved to ``path``."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4.5))


def _finish_figure(fig: Any, ax: Any, ylabel: str, title: str, path: str | Path | None) -> Any:
    """Label a wall-time figure, save and close it when ``path`` is given; the figure."""
    import matplotlib.pyplot as plt

    ax.set_xlabel("time to train (days)")
    ax.set_ylabel(ylabel)
    # Narrow forecasts would otherwise get ticks like "+3.44e-1" plus offsets: print days.
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
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
