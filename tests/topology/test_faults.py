"""Faults: removed or slowed links and NPUs; a clear error naming NPUs cut off."""

from __future__ import annotations

import pytest

from trainsim.topology import (
    DisconnectedError,
    LinkError,
    NodeError,
    remove_links,
    remove_npus,
    ring,
    slow_links,
    switch,
    torus,
)


def test_one_broken_ring_link_reroutes_the_long_way() -> None:
    t = remove_links(ring(8), [(0, 1)])
    assert not t.dims
    assert t.path(0, 1) == [0, 7, 6, 5, 4, 3, 2, 1]


def test_cutting_a_ring_twice_names_the_island() -> None:
    with pytest.raises(DisconnectedError, match="1, 2, 3") as info:
        remove_links(ring(8), [(0, 1), (3, 4)])
    assert info.value.cut_off == (1, 2, 3)


def test_missing_link_is_named() -> None:
    with pytest.raises(LinkError, match="0->5"):
        remove_links(ring(8), [(0, 5)])


def test_slow_links_divide_bandwidth_both_ways() -> None:
    t = slow_links(torus([4, 4], bandwidth_gbps=100), [(0, 1)], factor=4)
    assert t.link(0, 1).bandwidth_gbps == 25.0
    assert t.link(1, 0).bandwidth_gbps == 25.0
    assert t.link(1, 2).bandwidth_gbps == 100.0
    with pytest.raises(LinkError, match="factor"):
        slow_links(t, [(0, 1)], factor=0.5)


def test_removing_npus_renumbers_and_keeps_switches() -> None:
    t = remove_npus(switch(8), [2, 5])
    assert t.num_npus == 6
    assert t.graph.graph["renumbered"][7] == 5
    assert len(t.switches) == 1
    with pytest.raises(NodeError, match="NPU 9"):
        remove_npus(switch(8), [9])


def test_removing_an_npu_of_a_ring_keeps_the_rest_connected() -> None:
    t = remove_npus(ring(8), [3])
    assert t.num_npus == 7
    assert len(t.path(2, 3)) == 7  # old 2 -> old 4 now goes round the other side
