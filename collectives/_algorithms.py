"""The registry of baseline algorithms: names, aliases and cached local schedules."""

from __future__ import annotations

from functools import lru_cache

from ._direct import direct_schedule
from ._errors import AlgorithmError
from ._halving_doubling import halving_doubling_schedule
from ._in_network import in_network_schedule
from ._local import LocalSchedule
from ._ops import CollectiveOp
from ._ring import ring_schedule
from ._schedule_size import check_schedule_size
from ._tree import double_binary_tree_schedule

__all__ = ["ALGORITHMS", "local_schedule", "parse_algorithm"]

#: Canonical algorithm names.
ALGORITHMS: tuple[str, ...] = (
    "ring",
    "ring_bidir",
    "direct",
    "halving_doubling",
    "double_binary_tree",
    "in_network",
)

_ALIASES = {
    "ring": "ring",
    "onering": "ring",
    "ringbidir": "ring_bidir",
    "bidirring": "ring_bidir",
    "bidirectionalring": "ring_bidir",
    "direct": "direct",
    "alltoall": "direct",
    "halvingdoubling": "halving_doubling",
    "hd": "halving_doubling",
    "rhd": "halving_doubling",
    "recursivehalvingdoubling": "halving_doubling",
    "doublebinarytree": "double_binary_tree",
    "dbt": "double_binary_tree",
    "tree": "double_binary_tree",
    "innetwork": "in_network",
    "sharp": "in_network",
    "switch": "in_network",
    # Synthesized on the topology rather than a baseline: not in ALGORITHMS (see _tacos*.py).
    "tacos": "tacos",
}


def parse_algorithm(name: str) -> str:
    """Canonical name of an algorithm, accepting ASTRA-sim spellings (``halvingDoubling``)."""
    key = name.strip().lower().replace("_", "").replace("-", "")
    if key not in _ALIASES:
        allowed = ", ".join((*ALGORITHMS, "tacos"))
        raise AlgorithmError(f"unknown algorithm {name!r} (allowed: {allowed})")
    return _ALIASES[key]


@lru_cache(maxsize=512)
def local_schedule(
    algorithm: str, op: CollectiveOp, n: int, *, astra: bool = False, variant: int = 0
) -> LocalSchedule:
    """The local schedule of ``algorithm`` for ``op`` on ``n`` members (cached)."""
    name = parse_algorithm(algorithm)
    if n < 1:
        raise AlgorithmError(f"a group needs at least one rank, got {n}")
    if name == "tacos":
        raise AlgorithmError("tacos has no local schedule: it is synthesized on a topology")
    check_schedule_size(name, op, n)
    if name == "ring":
        return ring_schedule(op, n, astra=astra)
    if name == "ring_bidir":
        return ring_schedule(op, n, bidirectional=True, astra=astra)
    if name == "direct":
        return direct_schedule(op, n, astra=astra)
    if name == "halving_doubling":
        return halving_doubling_schedule(op, n, astra=astra)
    if name == "double_binary_tree":
        return double_binary_tree_schedule(op, n, astra=astra, variant=variant % 2)
    return in_network_schedule(op, n, astra=astra)
