"""Exception types of the ``collectives`` package; each message names the offending value."""

from __future__ import annotations

__all__ = [
    "AlgorithmError",
    "CollectiveError",
    "ConfigError",
    "DeliveryError",
    "GroupError",
    "ScheduleSizeError",
]


class CollectiveError(ValueError):
    """Base class of every error raised for a bad collective request or schedule."""


class AlgorithmError(CollectiveError):
    """An algorithm that is unknown, or cannot run this operation or group size."""


class GroupError(CollectiveError):
    """A rank group that the chosen algorithm cannot be laid out on."""


class ConfigError(CollectiveError):
    """A system or model setting out of range (names the field and the allowed range)."""


class DeliveryError(CollectiveError):
    """A schedule that does not deliver what its operation promises (names chunk and rank)."""


class ScheduleSizeError(CollectiveError):
    """A schedule too large to build on this machine (names algorithm, members and bytes)."""
