"""The A3-Mega preset reproduces the nccl-tests log it was calibrated on (not a test of it)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from trainsim.collectives import collective_cost
from trainsim.engine import cluster_system

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _rows() -> list[tuple[int, float]]:
    with (DATA / "ground_truth" / "published.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["metric"].startswith("allreduce_busbw_GBps@")]
    return [(int(r["metric"].split("@")[1].rstrip("B")), float(r["value"])) for r in rows]


def test_log_has_the_five_rows() -> None:
    assert [size for size, _ in _rows()] == [2**20, 2**24, 2**27, 2**30, 2**33]


@pytest.mark.parametrize(("size", "busbw"), _rows())
def test_a3_mega_fits_its_calibration_log(size: int, busbw: float) -> None:
    system = cluster_system("h100-sxm", 16, cluster="gcp-a3-mega")
    cost = collective_cost(
        "all_reduce", size, range(16), system.topology, None, "nccl", system.collective
    )
    assert cost.busbw_gbps == pytest.approx(busbw, rel=0.02)


def test_infiniband_clusters_start_collectives_far_sooner() -> None:
    ib = cluster_system("h100-sxm", 16)
    a3 = cluster_system("h100-sxm", 16, cluster="gcp-a3-mega")
    times = [
        collective_cost("all_reduce", 2**24, range(16), s.topology, None, "nccl", s.collective)
        for s in (ib, a3)
    ]
    assert times[0].time_us * 3 < times[1].time_us
