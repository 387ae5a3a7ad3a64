"""Placement of rank groups onto the dimensions and links of a network."""

from __future__ import annotations

import pytest

from trainsim.topology import PlacementError, fat_tree, parse_spec, place_group


def test_tp_and_dp_groups_on_a_two_dim_network() -> None:
    t = parse_spec("switch:8,switch:4")  # 8 GPUs per node, 4 nodes
    tp = place_group(t, range(8))
    assert (tp.dims, tp.sizes, tp.regular) == ((0,), (8,), True)
    dp = place_group(t, [3, 11, 19, 27])
    assert (dp.dims, dp.sizes, dp.regular) == ((1,), (4,), True)
    assert all(
        t.graph.nodes[u]["kind"] == "switch" or t.graph.nodes[v]["kind"] == "switch"
        for u, v in dp.links
    )
    both = place_group(t, range(32))
    assert both.dims == (0, 1) and both.sizes == (8, 4)
    assert [d.npus for d in both.dimensions(t)] == [8, 4]


def test_irregular_group_is_flagged() -> None:
    t = parse_spec("ring:4,ring:4")
    p = place_group(t, [0, 1, 4, 6])
    assert p.dims == (0, 1)
    assert not p.regular


def test_links_of_a_ring_group() -> None:
    t = parse_spec("ring:8")
    p = place_group(t, [0, 1, 2, 3])
    assert (0, 1) in p.links and (1, 0) in p.links
    # closing the group ring 3 -> 0 runs back through 2 and 1
    assert (3, 2) in p.links


def test_flat_topology_has_no_dims() -> None:
    p = place_group(fat_tree(16, npus_per_leaf=4), range(0, 16, 4))
    assert p.dims == () and p.links


@pytest.mark.parametrize(
    ("ranks", "message"), [([], "empty"), ([0, 0], "twice"), ([0, 99], "rank 99")]
)
def test_bad_groups(ranks: list[int], message: str) -> None:
    with pytest.raises(PlacementError, match=message):
        place_group(parse_spec("ring:8"), ranks)
