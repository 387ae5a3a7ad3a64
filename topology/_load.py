"""One entry for every way a network is named: an ASTRA-sim YAML, an edge list, a spec string."""

from __future__ import annotations

from pathlib import Path

from ._io import read_astra_network, read_edge_list
from ._model import Topology
from ._spec import parse_spec

__all__ = ["load_network"]


def load_network(network: str | Path) -> Topology:
    """Build the topology ``network`` names.

    An existing ``.yml``/``.yaml`` file is read as ASTRA-sim network YAML, an existing ``.txt``
    file as a TACOS edge list; anything else is a spec string (``ring:8@50/0.5``).
    """
    path = Path(network)
    if path.suffix in (".yml", ".yaml") and path.exists():
        return read_astra_network(path)
    if path.suffix == ".txt" and path.exists():
        return read_edge_list(path)
    return parse_spec(str(network))
