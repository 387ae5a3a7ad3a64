"""Schedules too large for the machine are refused up front, and the estimate is exact."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainsim.collectives import ALGORITHMS, CollectiveError, CollectiveOp, ScheduleSizeError
from trainsim.collectives._algorithms import local_schedule
from trainsim.collectives._schedule_size import check_schedule_size, schedule_transfers


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(ALGORITHMS),
    op=st.sampled_from(list(CollectiveOp)),
    n=st.integers(min_value=1, max_value=40),
)
def test_transfer_estimate_is_the_builders_count(name: str, op: CollectiveOp, n: int) -> None:
    try:
        built = local_schedule(name, op, n)
    except CollectiveError:
        return  # the algorithm does not run this operation or group size
    assert schedule_transfers(name, op, n) == built.num_transfers


def test_huge_flat_ring_is_refused_with_sizes_before_any_allocation() -> None:
    with pytest.raises(ScheduleSizeError, match=r"ring all_reduce over 100,000 members") as err:
        local_schedule("ring", CollectiveOp.ALL_REDUCE, 100_000)
    assert "19,999,800,000 transfers" in str(err.value)
    assert "GiB" in str(err.value)


def test_schedules_of_real_group_sizes_are_allowed() -> None:
    # 16,384-GPU jobs split over dimensions; the largest flat groups they use build fine.
    check_schedule_size("ring", CollectiveOp.ALL_REDUCE, 2048)
    check_schedule_size("halving_doubling", CollectiveOp.ALL_REDUCE, 16384)
    check_schedule_size("double_binary_tree", CollectiveOp.ALL_REDUCE, 100_000)
