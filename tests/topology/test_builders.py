"""Builders: node/link counts, link figures, dimensions and routes of every network shape."""

from __future__ import annotations

import networkx as nx
import pytest

from trainsim import topology
from trainsim.topology import (
    Dimension,
    DimKind,
    LinkError,
    NodeKind,
    TopologyError,
    dgx_cluster,
    fat_tree,
    fully_connected,
    hypercube,
    mesh,
    multi_dimensional,
    multi_plane,
    ring,
    switch,
    torus,
)


def test_public_api_is_stable() -> None:
    assert sorted(topology.__all__) == sorted(
        [
            "GIB_PER_GB",
            "DimKind",
            "Dimension",
            "DisconnectedError",
            "Link",
            "LinkError",
            "NodeError",
            "NodeKind",
            "Placement",
            "PlacementError",
            "SPEC_KINDS",
            "SpecError",
            "SpecKind",
            "Topology",
            "TopologyError",
            "astra_network_dims",
            "check_connected",
            "dgx_cluster",
            "fat_tree",
            "fully_connected",
            "hypercube",
            "load_network",
            "mesh",
            "multi_dimensional",
            "multi_plane",
            "parse_spec",
            "place_group",
            "read_astra_network",
            "read_edge_list",
            "remove_links",
            "remove_npus",
            "ring",
            "slow_links",
            "spec_help",
            "switch",
            "torus",
        ]
    )


def test_ring_links_and_figures() -> None:
    t = ring(8, bandwidth_gbps=50, latency_us=0.5)
    assert t.num_npus == 8
    assert t.graph.number_of_edges() == 16
    link = t.link(3, 4)
    assert (link.bandwidth_gbps, link.latency_us) == (50.0, 0.5)
    assert link.transfer_time_us(50_000) == pytest.approx(1.5)
    with pytest.raises(LinkError, match="0->4"):
        t.link(0, 4)
    assert t.path(0, 6) == [0, 7, 6]


def test_fully_connected_and_switch() -> None:
    assert fully_connected(5).graph.number_of_edges() == 20
    t = switch(8)
    assert t.switches == [8]
    assert t.graph.nodes[8]["kind"] == NodeKind.SWITCH.value
    assert t.path(2, 5) == [2, 8, 5]


@pytest.mark.parametrize("shape", [[4, 4], [2, 3, 4], [8]])
def test_torus_degree_and_size(shape: list[int]) -> None:
    t = torus(shape)
    n = 1
    for s in shape:
        n *= s
    assert t.num_npus == n
    expected = sum(2 if s > 2 else 1 for s in shape)
    assert all(t.graph.out_degree(v) == expected for v in t.npus)
    assert nx.is_strongly_connected(t.graph)


def test_mesh_has_no_wraparound() -> None:
    t = mesh([4, 4])
    assert not t.graph.has_edge(0, 3)
    assert len(t.path(0, 15)) == 7


def test_hypercube_neighbours_differ_in_one_bit() -> None:
    t = hypercube(4)
    for u, v in t.graph.edges:
        assert bin(u ^ v).count("1") == 1


def test_multi_dimensional_form_and_routes() -> None:
    dims = [Dimension(DimKind.RING, 4, 200.0, 0.1), Dimension(DimKind.SWITCH, 4, 50.0, 0.5)]
    t = multi_dimensional(dims)
    assert t.num_npus == 16 and len(t.switches) == 4
    assert t.coords(13) == (1, 3)
    route = t.path(0, 13)
    # dimension 0 first (one ring hop), then through the dimension-1 switch
    assert route[:2] == [0, 1] and route[-1] == 13 and len(route) == 4
    assert t.link(0, 1).bandwidth_gbps == 200.0


def test_fat_tree_oversubscription_and_three_levels() -> None:
    t = fat_tree(16, npus_per_leaf=4, oversubscription=2.0)
    up = [link.bandwidth_gbps for link in t.links() if link.dim == 1]
    assert up and all(bw == pytest.approx(50 * 4 / (4 * 2)) for bw in up)
    t3 = fat_tree(32, npus_per_leaf=4, leaves_per_pod=2)
    assert nx.is_strongly_connected(t3.graph)
    assert max(len(t3.path(0, n)) for n in t3.npus) == 7  # npu-leaf-spine-core-spine-leaf-npu
    with pytest.raises(TopologyError, match="npus_per_leaf"):
        fat_tree(10, npus_per_leaf=4)


def test_dgx_cluster_is_two_switch_dimensions() -> None:
    t = dgx_cluster(4, nic_bandwidth_gbps=25.0)
    assert [d.kind for d in t.dims] == [DimKind.SWITCH, DimKind.SWITCH]
    assert t.num_npus == 32
    # rail-optimised: GPU 3 of node 0 reaches GPU 3 of node 2 through one rail switch
    assert len(t.path(3, 2 * 8 + 3)) == 3


def test_multi_plane_keeps_planes_apart() -> None:
    t = multi_plane(32, gpus_per_node=4, nodes_per_leaf=8)
    # GPU 0 of node 0 to GPU 1 of node 5: must cross an NVSwitch, planes never meet
    route = t.path(0, 5 * 4 + 1)
    labels = [t.graph.nodes[n].get("label", "") for n in route[1:-1]]
    assert any("nvswitch" in label for label in labels)
    assert nx.is_strongly_connected(t.graph)
