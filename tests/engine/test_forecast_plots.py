"""The forecast's figures read right: labelled axes, a histogram with shape, labelled quantiles.

Each figure is rendered to PNG with the Agg backend and then inspected through its matplotlib
objects: what a reader would see (labels, bars, legend entries), not only that a file exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from trainsim.engine import (
    FailureSpec,
    InterruptionTable,
    StepResult,
    System,
    TrainingForecast,
    VariabilitySpec,
    cluster_system,
    forecast,
    predict,
)
from trainsim.models import ModelSpec, ParallelPlan, model_preset

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUANTILES = (0.5, 0.9, 0.99)


@pytest.fixture(scope="module")
def preset() -> tuple[ModelSpec, ParallelPlan, System, StepResult]:
    """Llama 3 8B on 64 H100s, data parallel with TP 2: a real preset, its step predicted once."""
    model = model_preset("llama3-8b")
    plan = ParallelPlan.for_gpus(64, tp=2, global_batch_size=512)
    system = cluster_system("h100-sxm", 64)
    return model, plan, system, predict(model, plan, system)


def _forecast(
    preset: tuple[ModelSpec, ParallelPlan, System, StepResult], tokens: float, **kwargs: Any
) -> TrainingForecast:
    model, plan, system, step = preset
    return forecast(
        model, system, plan=plan, tokens=tokens, samples=2000, step_samples=200, step=step, **kwargs
    )


@pytest.fixture(scope="module")
def prism_llama3(preset: tuple[ModelSpec, ParallelPlan, System, StepResult]) -> TrainingForecast:
    """PRISM variability and Llama 3's interruption rate, 20B tokens (about 8 hours).

    Under 1 % of the runs see a failure, and each one adds far more than the spread of the
    rest: the narrow-bulk-plus-far-tail shape that once put every run in one bar.
    """
    return _forecast(
        preset,
        2e10,
        variability=VariabilitySpec.prism(),
        failures=FailureSpec(interruptions=InterruptionTable.llama3()),
    )


def _render(fig: Figure, path: Path) -> Figure:
    """Draw ``fig`` to a PNG at ``path`` (as a reader would get it) and check the file."""
    fig.savefig(path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    return fig


def _single_axes(fig: Figure) -> Any:
    axes = fig.get_axes()
    assert len(axes) == 1
    return axes[0]


def _assert_labelled(fig: Figure) -> None:
    """Every axes names both its axes and has a title."""
    for ax in fig.get_axes():
        assert ax.get_xlabel().strip(), "x axis has no label"
        assert ax.get_ylabel().strip(), "y axis has no label"
        assert ax.get_title().strip(), "axes has no title"
    assert "days" in fig.get_axes()[0].get_xlabel()


def _bars(ax: Any) -> list[Rectangle]:
    """The histogram's bars that hold at least one run."""
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 0]


def _quantile_lines(ax: Any) -> dict[str, Line2D]:
    """Vertical lines whose label names a quantile (``P50 ...``), by that name."""
    return {
        str(line.get_label()).split()[0]: line
        for line in ax.get_lines()
        if str(line.get_label()).startswith("P")
    }


def _legend_texts(ax: Any) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None, "no legend"
    return [t.get_text() for t in legend.get_texts()]


def _assert_quantiles_labelled(ax: Any, run: TrainingForecast) -> None:
    """P50/P90/P99 are drawn at their values, each labelled with its value in days."""
    lines = _quantile_lines(ax)
    texts = _legend_texts(ax)
    for q in QUANTILES:
        name = f"P{q * 100:g}"
        assert name in lines, f"{name} line missing"
        value_days = run.quantile_days(q)
        assert float(lines[name].get_xdata()[0]) == pytest.approx(value_days, rel=1e-12)
        label = str(lines[name].get_label())
        assert label in texts
        shown_days = float(label.split()[1])
        decimals = len(label.split()[1].split(".")[1])
        assert shown_days == pytest.approx(value_days, abs=0.51 * 10**-decimals)
        assert label.endswith(" d")


def test_histogram_shows_the_shape_of_a_real_forecast(
    prism_llama3: TrainingForecast, tmp_path: Path
) -> None:
    run = prism_llama3
    days = run.wall_s / 86400.0
    assert 0 < int((run.failures > 0).sum()) < run.samples // 20  # the shape this test is about
    fig = _render(run.plot_histogram(), tmp_path / "histogram.png")
    _assert_labelled(fig)
    ax = _single_axes(fig)
    bars = _bars(ax)
    assert len(bars) > 5
    heights = np.array([b.get_height() for b in bars])
    # The failure-free runs spread over several bars: none holds most of the runs.
    assert heights.max() < 0.5 * run.samples
    # Every run is either in a bar or counted in the legend's note: none vanish unseen.
    beyond = run.samples - int(heights.sum())
    assert beyond == int((days > max(b.get_x() + b.get_width() for b in bars)).sum())
    if beyond:
        title = ax.get_legend().get_title().get_text()
        assert f"{beyond:,} run" in title and "longer than shown" in title
        assert f"{days.max():.4f}" in title
    _assert_quantiles_labelled(ax, run)


def test_cdf_has_labelled_quantiles_and_reaches_p99(
    prism_llama3: TrainingForecast, tmp_path: Path
) -> None:
    run = prism_llama3
    fig = _render(run.plot_cdf(), tmp_path / "cdf.png")
    _assert_labelled(fig)
    ax = _single_axes(fig)
    _assert_quantiles_labelled(ax, run)
    low, high = ax.get_xlim()
    for q in QUANTILES:
        assert low < run.quantile_days(q) < high
    # The x axis is zoomed on the bulk, not stretched to the slowest failure run.
    assert high < float(run.wall_s.max()) / 86400.0
    # The labels tell P50, P90 and P99 apart (they differ by well under 0.01 d here).
    labels = {str(line.get_label()).split()[1] for line in _quantile_lines(ax).values()}
    assert len(labels) == 3


def test_plots_save_to_a_path_and_close(prism_llama3: TrainingForecast, tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    for name, plot in (("h.png", prism_llama3.plot_histogram), ("c.png", prism_llama3.plot_cdf)):
        fig = plot(tmp_path / name)
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
        _assert_labelled(fig)
    assert len(plt.get_fignums()) == before


def test_failures_without_variability_get_bars_and_a_log_count_axis(
    preset: tuple[ModelSpec, ParallelPlan, System, StepResult], tmp_path: Path
) -> None:
    # No variability: most runs take the same time (no spread in the bulk at all), the
    # failed ones longer. The bulk is one bar, the failures more bars, on a log count axis.
    run = _forecast(preset, 2e11, failures=FailureSpec(interruptions=InterruptionTable.llama3()))
    assert 0.5 < float(np.mean(run.failures == 0)) < 1.0
    fig = _render(run.plot_histogram(), tmp_path / "histogram.png")
    _assert_labelled(fig)
    ax = _single_axes(fig)
    assert len(_bars(ax)) > 1
    assert ax.get_yscale() == "log" and "log" in ax.get_ylabel()
    _assert_quantiles_labelled(ax, run)


def test_equal_samples_are_one_narrow_bar_and_say_so(
    preset: tuple[ModelSpec, ParallelPlan, System, StepResult], tmp_path: Path
) -> None:
    run = _forecast(preset, 2e10)
    assert float(run.wall_s.min()) == float(run.wall_s.max())
    for fig in (run.plot_histogram(), run.plot_cdf()):
        _render(fig, tmp_path / "equal.png")
        _assert_labelled(fig)
        ax = _single_axes(fig)
        assert ax.get_legend().get_title().get_text().startswith("all 2,000 runs take")
        _assert_quantiles_labelled(ax, run)
    hist_ax = _single_axes(run.plot_histogram())
    bars = _bars(hist_ax)
    assert len(bars) == 1 and bars[0].get_height() == run.samples
    low, high = hist_ax.get_xlim()
    assert bars[0].get_width() < 0.2 * (high - low)


def test_bins_argument_sets_the_bar_count(prism_llama3: TrainingForecast) -> None:
    ax = _single_axes(prism_llama3.plot_histogram(bins=7))
    assert len(ax.patches) == 7
