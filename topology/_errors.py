"""Exception types of the ``topology`` package; each message names the node, link or field."""

from __future__ import annotations

__all__ = [
    "DisconnectedError",
    "LinkError",
    "NodeError",
    "PlacementError",
    "SpecError",
    "TopologyError",
]


class TopologyError(ValueError):
    """Base class of every error raised for a bad network description or request."""


class NodeError(TopologyError):
    """A node id that does not exist, or is not the kind of node the caller needs."""


class LinkError(TopologyError):
    """A link that does not exist, or a link parameter out of range (bandwidth, latency)."""


class DisconnectedError(TopologyError):
    """NPUs that can no longer reach each other, typically after faults were applied."""

    def __init__(self, message: str, *, cut_off: tuple[int, ...]) -> None:
        super().__init__(message)
        self.cut_off = cut_off


class SpecError(TopologyError):
    """A spec string, network YAML or edge list that cannot be read; names the field/line."""


class PlacementError(TopologyError):
    """A rank group that cannot be placed on the topology (unknown rank, duplicate, ...)."""
