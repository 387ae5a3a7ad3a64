"""The learners study: AdaComp's build-up crossover against the closed form; ScaleCom's none."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from trainsim.collectives import CompressionSpec
from trainsim.studies import LearnersStudy, adacomp_crossover_closed_form, learners_study

LEARNERS = (8, 16, 32, 64, 128, 256, 512)


@pytest.fixture(scope="module")
def study() -> LearnersStudy:
    return learners_study(LEARNERS)


def test_crossover_matches_closed_form(study: LearnersStudy) -> None:
    s = study.settings
    closed = adacomp_crossover_closed_form(
        float(s["gradient_bytes"]),
        float(s["adacomp_ratio"]),
        12.5,
        2.0,
        memory_bandwidth_gbps=float(s["memory_bandwidth_gbps"]),
    )
    assert study.adacomp_crossover == math.ceil(closed)
    assert 150 < closed < 250  # about 2 * CR learners, CR = 100


def test_scalecom_never_loses_and_adacomp_does(study: LearnersStudy) -> None:
    assert study.scalecom_crossover is None
    last = study.points[-1]
    assert last.hours["adacomp"] > last.hours["dense"] > last.hours["scalecom"]
    first = study.points[0]
    assert first.hours["adacomp"] < first.hours["dense"]


def test_crossover_without_compressor_overhead() -> None:
    # Without memory cost and with no latency the closed form is n = 2 * CR exactly.
    assert adacomp_crossover_closed_form(1e9, 50.0, 10.0, 0.0, passes=0.0) == pytest.approx(100.0)
    spec = CompressionSpec(method="adacomp", ratio=20.0, dense_fallback=False)
    small = learners_study((8, 16, 32, 64), adacomp=spec, gradient_bytes=4e8)
    closed = adacomp_crossover_closed_form(4e8, 20.0, 12.5, 2.0, memory_bandwidth_gbps=2000.0)
    assert small.adacomp_crossover == math.ceil(closed)


def test_dataframe_and_plot(study: LearnersStudy, tmp_path: Path) -> None:
    frame = study.to_dataframe()
    assert set(frame["scheme"]) == {"dense", "adacomp", "scalecom"}
    assert len(frame) == 3 * len(LEARNERS)
    out = tmp_path / "learners.png"
    fig = study.plot(out)
    assert out.stat().st_size > 10_000
    for ax in fig.get_axes():  # type: ignore[attr-defined]
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert {t.get_text() for t in ax.get_legend().get_texts()} == set(frame["scheme"])
