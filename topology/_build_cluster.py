"""Builders of datacenter networks: fat-trees, DGX/HGX-like clusters, multi-plane scale-out."""

from __future__ import annotations

from ._build_util import add_duplex, add_switch, check_positive, npu_graph
from ._errors import TopologyError
from ._model import Dimension, DimKind, Topology

__all__ = ["dgx_cluster", "fat_tree", "multi_plane"]


def fat_tree(
    num_npus: int,
    *,
    npus_per_leaf: int = 8,
    leaves_per_pod: int = 0,
    bandwidth_gbps: float = 50.0,
    latency_us: float = 0.5,
    oversubscription: float = 1.0,
    spines: int = 0,
) -> Topology:
    """A two-level (leaf/spine) or three-level (leaf/pod-spine/core) folded Clos network.

    Each leaf serves ``npus_per_leaf`` NPUs and has uplinks whose total bandwidth is the
    NPU-facing bandwidth divided by ``oversubscription``. ``leaves_per_pod > 0`` asks for three
    levels: leaves group into pods of that many, each pod with its own spines, joined by cores.

    >>> t = fat_tree(16, npus_per_leaf=4)
    >>> t.num_npus, len(t.switches)
    (16, 8)
    """
    check_positive("num_npus", num_npus)
    check_positive("npus_per_leaf", npus_per_leaf)
    if oversubscription < 1:
        raise TopologyError(f"oversubscription must be >= 1, got {oversubscription}")
    if num_npus % npus_per_leaf:
        raise TopologyError(
            f"num_npus={num_npus} is not a multiple of npus_per_leaf={npus_per_leaf}"
        )
    graph = npu_graph(num_npus)
    num_leaves = num_npus // npus_per_leaf
    n_spines = spines or npus_per_leaf
    up_bw = bandwidth_gbps * npus_per_leaf / (n_spines * oversubscription)
    leaves = []
    for leaf_index in range(num_leaves):
        leaf = add_switch(graph, f"leaf{leaf_index}")
        leaves.append(leaf)
        for k in range(npus_per_leaf):
            add_duplex(graph, leaf_index * npus_per_leaf + k, leaf, bandwidth_gbps, latency_us, 0)
    if leaves_per_pod <= 0:
        spine_ids = [add_switch(graph, f"spine{s}") for s in range(n_spines)]
        for leaf in leaves:
            for sp in spine_ids:
                add_duplex(graph, leaf, sp, up_bw, latency_us, 1)
        levels = "2-level"
    else:
        if num_leaves % leaves_per_pod:
            raise TopologyError(
                f"{num_leaves} leaves do not split into pods of leaves_per_pod={leaves_per_pod}"
            )
        pods = num_leaves // leaves_per_pod
        core_bw = up_bw * leaves_per_pod / (n_spines * oversubscription)
        cores = [add_switch(graph, f"core{c}") for c in range(n_spines)]
        for pod in range(pods):
            pod_spines = [add_switch(graph, f"pod{pod}-spine{s}") for s in range(n_spines)]
            for leaf in leaves[pod * leaves_per_pod : (pod + 1) * leaves_per_pod]:
                for sp in pod_spines:
                    add_duplex(graph, leaf, sp, up_bw, latency_us, 1)
            for sp in pod_spines:
                for core in cores:
                    add_duplex(graph, sp, core, core_bw, latency_us, 2)
        levels = "3-level"
    name = f"FatTree({num_npus}, {levels}, {oversubscription:g}:1)"
    return Topology(graph, name=name)


def dgx_cluster(
    num_nodes: int,
    *,
    gpus_per_node: int = 8,
    nvlink_bandwidth_gbps: float = 450.0,
    nvlink_latency_us: float = 0.25,
    nic_bandwidth_gbps: float = 50.0,
    nic_latency_us: float = 2.0,
) -> Topology:
    """DGX/HGX-like nodes: an NVSwitch inside each node, rail-optimised NICs outside.

    GPU ``g`` of every node connects through its own NIC to rail switch ``g``, so the network
    has the two-dimensional form ``Switch(gpus_per_node) x Switch(num_nodes)``. Defaults are
    H100 figures: 450 GB/s NVLink per direction, 400 Gb/s (50 GB/s) NICs.

    >>> t = dgx_cluster(2)
    >>> t.num_npus, [d.kind.value for d in t.dims]
    (16, ['Switch', 'Switch'])
    """
    from ._build_basic import multi_dimensional

    dims = [
        Dimension(DimKind.SWITCH, gpus_per_node, nvlink_bandwidth_gbps, nvlink_latency_us),
        Dimension(DimKind.SWITCH, num_nodes, nic_bandwidth_gbps, nic_latency_us),
    ]
    return multi_dimensional(dims, name=f"DGX({num_nodes}x{gpus_per_node})")


def multi_plane(
    num_nodes: int,
    *,
    gpus_per_node: int = 8,
    nodes_per_leaf: int = 16,
    nvlink_bandwidth_gbps: float = 160.0,
    nvlink_latency_us: float = 0.25,
    nic_bandwidth_gbps: float = 50.0,
    nic_latency_us: float = 2.0,
) -> Topology:
    """Multi-plane scale-out as in DeepSeek-V3: GPU ``g`` of each node sits on plane ``g`` only.

    Each plane is its own two-level fat-tree over the NICs of that plane; traffic between
    planes must cross a node's NVSwitch first. Defaults follow the H800 cluster of the paper
    (160 GB/s NVLink, 400 Gb/s InfiniBand per GPU).

    >>> t = multi_plane(4, gpus_per_node=2, nodes_per_leaf=2)
    >>> t.num_npus
    8
    """
    check_positive("num_nodes", num_nodes)
    check_positive("gpus_per_node", gpus_per_node)
    check_positive("nodes_per_leaf", nodes_per_leaf)
    num = num_nodes * gpus_per_node
    graph = npu_graph(num)
    for node in range(num_nodes):
        nvswitch = add_switch(graph, f"node{node}-nvswitch")
        for g in range(gpus_per_node):
            add_duplex(
                graph,
                node * gpus_per_node + g,
                nvswitch,
                nvlink_bandwidth_gbps,
                nvlink_latency_us,
                0,
            )
    leaves_per_plane = -(-num_nodes // nodes_per_leaf)
    for plane in range(gpus_per_node):
        leaves = [add_switch(graph, f"plane{plane}-leaf{i}") for i in range(leaves_per_plane)]
        for node in range(num_nodes):
            add_duplex(
                graph,
                node * gpus_per_node + plane,
                leaves[node // nodes_per_leaf],
                nic_bandwidth_gbps,
                nic_latency_us,
                1,
            )
        if leaves_per_plane > 1:
            spines = [add_switch(graph, f"plane{plane}-spine{s}") for s in range(nodes_per_leaf)]
            for leaf in leaves:
                for sp in spines:
                    add_duplex(graph, leaf, sp, nic_bandwidth_gbps, nic_latency_us, 1)
    return Topology(graph, name=f"MultiPlane({num_nodes}x{gpus_per_node})")
