"""Networks of NPUs and switches with per-link bandwidth and latency.

Builders return a :class:`Topology` (a directed ``networkx`` graph plus, where it has one, the
ASTRA-sim multi-dimensional form); readers take ASTRA-sim network YAML, TACOS edge lists and
short spec strings; faults return degraded copies; placement maps a rank group onto dimensions.
"""

from ._build_basic import fully_connected, hypercube, mesh, multi_dimensional, ring, switch, torus
from ._build_cluster import dgx_cluster, fat_tree, multi_plane
from ._errors import (
    DisconnectedError,
    LinkError,
    NodeError,
    PlacementError,
    SpecError,
    TopologyError,
)
from ._faults import check_connected, remove_links, remove_npus, slow_links
from ._io import astra_network_dims, read_astra_network, read_edge_list
from ._load import load_network
from ._model import GIB_PER_GB, Dimension, DimKind, Link, NodeKind, Topology
from ._placement import Placement, place_group
from ._spec import SPEC_KINDS, SpecKind, parse_spec, spec_help

__all__ = [
    "GIB_PER_GB",
    "SPEC_KINDS",
    "DimKind",
    "Dimension",
    "DisconnectedError",
    "Link",
    "LinkError",
    "NodeError",
    "NodeKind",
    "Placement",
    "PlacementError",
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
