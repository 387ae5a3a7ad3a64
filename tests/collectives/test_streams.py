"""ASTRA-sim's stream scheduler: chunks share one queue per dimension, in priority order."""

from __future__ import annotations

import pytest

from trainsim.collectives import ConfigError, SystemConfig
from trainsim.collectives._streams import SchedulingPolicy, run_streams


def _finish(policy: SchedulingPolicy, active: int = 1) -> list[list[float]]:
    # Reduce-scatter along dim 0 (10 ns), all-reduce along dim 1 (1 ns), all-gather along dim 0.
    times = [10.0, 1.0, 10.0]
    return run_streams(3, [0, 1, 0], active, policy, lambda _s, p, t: t + times[p], 0.0, max, float)


def test_lifo_lets_new_chunks_overtake_an_old_all_gather() -> None:
    # Worked by hand from Sys::insert_stream: the queue of dim 0 serves RS0, RS2, RS1, AG2,
    # AG1, AG0. Chunk 0's all-gather waits behind every chunk still to reduce-scatter.
    done = _finish("LIFO")
    assert [row[0] for row in done] == [10.0, 30.0, 20.0]
    assert [row[2] for row in done] == [60.0, 50.0, 40.0]


def test_fifo_serves_the_oldest_chunk_first() -> None:
    # RS0, RS1, AG0, AG1, RS2, AG2 on dim 0.
    done = _finish("FIFO")
    assert [row[2] for row in done] == [30.0, 40.0, 61.0]


def test_more_active_chunks_run_side_by_side() -> None:
    done = _finish("LIFO", active=3)
    # Nothing waits: every chunk is 10 + 1 + 10.
    assert [row[2] for row in done] == [21.0, 21.0, 21.0]


def test_astra_streams_cut_whole_bytes() -> None:
    astra = SystemConfig.astra_default()
    assert astra.streams(1 << 20, 64, gather=False) == (4, float(1 << 18))
    # 10 bytes in 4 splits: chunks of 2 bytes, five of them (the last one whole).
    small = astra.model_copy(update={"dataset_splits": 4})
    assert small.streams(10, 1, gather=False) == (5, 2.0)
    # Never below one byte per NPU, except all-gather.
    assert small.streams(100, 64, gather=False) == (4, 64.0)
    assert small.streams(100, 64, gather=True) == (4, 25.0)
    assert SystemConfig(dataset_splits=4).streams(10, 64, gather=False) == (4, 2.5)


def test_scheduling_policy_is_read_from_the_system_file() -> None:
    assert SystemConfig.from_astra({"scheduling-policy": "FIFO"}).scheduling_policy == "FIFO"
    with pytest.raises(ConfigError, match="scheduling_policy"):
        SystemConfig.from_astra({"scheduling-policy": "random"})
