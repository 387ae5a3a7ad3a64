"""The bus-bandwidth model against the nccl-tests all-reduce log on 2 x 8 H100 (A3-Mega)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from collectives import NcclModel, NcclParams, collective_cost
from topology import dgx_cluster

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _rows() -> list[tuple[int, float]]:
    with (DATA / "ground_truth" / "published.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["metric"].startswith("allreduce_busbw_GBps@")]
    return [(int(r["metric"].split("@")[1].rstrip("B")), float(r["value"])) for r in rows]


# A3-Mega: 8 H100 per node on NVLink (450 GB/s per direction), 8 x 200 Gb/s NICs per node.
A3_MEGA = dgx_cluster(2, nvlink_bandwidth_gbps=450.0, nic_bandwidth_gbps=25.0)


def test_log_has_the_five_rows() -> None:
    assert [size for size, _ in _rows()] == [2**20, 2**24, 2**27, 2**30, 2**33]


@pytest.mark.parametrize(("size", "busbw"), _rows())
def test_busbw_within_fifteen_percent(size: int, busbw: float) -> None:
    cost = collective_cost("all_reduce", size, range(16), A3_MEGA, model="nccl")
    assert cost.busbw_gbps == pytest.approx(busbw, rel=0.15)


def test_peak_comes_from_the_scale_out_nics() -> None:
    peak = NcclModel().peak_algbw_gbps(
        collective_cost("all_reduce", 1, range(16), A3_MEGA).op, tuple(range(16)), A3_MEGA
    )
    # inter-node: each GPU moves 1/8 of the buffer once over its 25 GB/s NIC
    assert peak == pytest.approx(200.0)


def test_protocol_switch_small_to_large() -> None:
    small = collective_cost("all_reduce", 2**20, range(16), A3_MEGA, model="nccl")
    large = collective_cost("all_reduce", 2**33, range(16), A3_MEGA, model="nccl")
    assert small.algorithm == "nccl-LL" and large.algorithm == "nccl-Simple"
    assert NcclParams().protocols[1].efficiency == pytest.approx(0.92)
