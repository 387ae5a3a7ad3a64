"""``load_network``: a spec string, an ASTRA-sim YAML file or a TACOS edge list."""

from __future__ import annotations

from tests.conftest import SHARED_DATA
from trainsim.topology import load_network


def test_every_spelling_of_a_network() -> None:
    assert load_network("ring:8@50/0.5").num_npus == 8
    yml = SHARED_DATA / "reference" / "astra-sim-workloads" / "pipeline_4" / "network.yml"
    assert load_network(yml).num_npus == 4
    edges = SHARED_DATA / "reference" / "tacos-topologies" / "torus2d_4x4.txt"
    assert load_network(str(edges)).num_npus == 16
