"""Refuse, before building it, a local schedule that cannot fit in this machine's memory.

A flat ring all-reduce over ``n`` members has ``2n(n-1)`` transfers and a ring all-to-all
``n^2(n-1)/2``: a 100,000-NPU ring would need terabytes, and the builder would fail deep in
numpy with a ``MemoryError`` (or run for hours in Python) instead of saying why.
"""

from __future__ import annotations

import math
import os

from ._errors import ScheduleSizeError
from ._ops import CollectiveOp

__all__ = ["check_schedule_size", "schedule_transfers"]

#: Peak bytes per transfer while a schedule is built, measured with tracemalloc on this
#: package's builders: ring reduce-scatter/all-gather/all-reduce (numpy arrays) 121 B at 2,000
#: members; ring all-to-all 345 B at 150 members; builders through ``LocalBuilder``'s Python
#: lists (direct all-reduce at 400 members) 5,091 B, used for every other builder.
_ARRAY_BYTES_PER_TRANSFER = 121
_RING_ALL_TO_ALL_BYTES_PER_TRANSFER = 345
_LIST_BYTES_PER_TRANSFER = 5091
#: Share of physical memory one schedule may take (the topology, the ETs and the simulator's
#: own state need the rest).
_MEMORY_SHARE = 0.5
_FALLBACK_MEMORY_BYTES = 16 * 2**30
_ROOTED = (CollectiveOp.BROADCAST, CollectiveOp.REDUCE, CollectiveOp.GATHER, CollectiveOp.SCATTER)
_BOTH_HALVES = (CollectiveOp.ALL_REDUCE, CollectiveOp.BARRIER)


def schedule_transfers(name: str, op: CollectiveOp, n: int) -> int:
    """Transfers of the canonical algorithm ``name``'s schedule for ``op`` on ``n`` members.

    Exact for the builders of this package (checked against ``num_transfers`` in the tests).
    """
    pairs = n * (n - 1)
    if op is CollectiveOp.SEND_RECV:
        return 1
    if name == "in_network" and op in _ROOTED:
        # Up to the switch and down from it; a reduce also returns the result to its root.
        return n + 1 if op is CollectiveOp.REDUCE else n
    if op in _ROOTED:
        return n - 1
    halves = 2 if op in _BOTH_HALVES else 1
    if name in ("ring", "ring_bidir"):
        if op is CollectiveOp.ALL_TO_ALL:
            return n * pairs // 2
        directions = 2 if name == "ring_bidir" and n > 2 else 1
        return halves * pairs * directions
    if name == "direct":
        return halves * pairs
    if name == "halving_doubling":
        return halves * n * math.ceil(math.log2(n)) if n > 1 else 0
    if name == "double_binary_tree":
        return 4 * (n - 1)
    return halves * n


def _bytes_per_transfer(name: str, op: CollectiveOp) -> int:
    if name in ("ring", "ring_bidir"):
        if op is CollectiveOp.ALL_TO_ALL:
            return _RING_ALL_TO_ALL_BYTES_PER_TRANSFER
        if op not in _ROOTED:
            return _ARRAY_BYTES_PER_TRANSFER
    return _LIST_BYTES_PER_TRANSFER


def _physical_memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):  # not every platform reports it
        return _FALLBACK_MEMORY_BYTES


def check_schedule_size(name: str, op: CollectiveOp, n: int) -> None:
    """Raise ``ScheduleSizeError`` when building the schedule would exceed the memory share."""
    transfers = schedule_transfers(name, op, n)
    need_bytes = transfers * _bytes_per_transfer(name, op)
    have_bytes = _physical_memory_bytes()
    if need_bytes > _MEMORY_SHARE * have_bytes:
        raise ScheduleSizeError(
            f"{name} {op.value} over {n:,} members has {transfers:,} transfers and needs about "
            f"{need_bytes / 2**30:,.1f} GiB to build; this machine has "
            f"{have_bytes / 2**30:,.1f} GiB. Use fewer members per dimension (a multi-"
            f"dimensional topology such as ring:8,switch:{max(n // 8, 1)} splits the group) or "
            f"an algorithm with fewer transfers (halving_doubling, double_binary_tree)"
        )
