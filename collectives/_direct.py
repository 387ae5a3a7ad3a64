"""Direct algorithms: every member talks to every other member in one step per phase."""

from __future__ import annotations

from ._errors import AlgorithmError
from ._local import LocalBuilder, LocalSchedule
from ._ops import CollectiveOp

__all__ = ["direct_schedule"]


def direct_schedule(op: CollectiveOp, n: int, *, astra: bool = False) -> LocalSchedule:
    """Direct schedule: all-reduce is a one-step reduce-scatter then a one-step all-gather.

    Each member reduces what it receives on arrival; receptions in one step overlap, so the
    reduction cost of a step is that of one piece (as in ASTRA-sim).

    >>> direct_schedule(CollectiveOp.ALL_REDUCE, 4).num_transfers
    24
    """
    del astra
    others = [(i, j) for i in range(n) for j in range(n) if i != j]
    if op in (CollectiveOp.ALL_REDUCE, CollectiveOp.BARRIER, CollectiveOp.REDUCE_SCATTER):
        b = LocalBuilder(n, n)
        into: dict[int, list[int]] = {j: [] for j in range(n)}
        for i, j in others:
            into[j].append(b.add(i, j, 0, [j], 1.0 / n, reduce=True))
        if op is CollectiveOp.REDUCE_SCATTER:
            return b.build([-1] * n, list(range(n)), symmetric=True)
        for j, i in others:
            b.add(j, i, 1, [j], 1.0 / n, reduce=False, deps=into[j])
        return b.build([-1] * n, [-1] * n, symmetric=True)
    if op is CollectiveOp.ALL_GATHER:
        b = LocalBuilder(n, n)
        for i, j in others:
            b.add(i, j, 0, [i], 1.0, reduce=False)
        return b.build(list(range(n)), [-1] * n, symmetric=True)
    if op is CollectiveOp.ALL_TO_ALL:
        b = LocalBuilder(n, n * n)
        for i, j in others:
            b.add(i, j, 0, [i * n + j], 1.0 / n, reduce=False)
        return b.build(
            [p // n for p in range(n * n)], [p % n for p in range(n * n)], symmetric=True
        )
    if op is CollectiveOp.BROADCAST:
        b = LocalBuilder(n, 1)
        for j in range(1, n):
            b.add(0, j, 0, [0], 1.0, reduce=False)
        return b.build([0], [-1], symmetric=False)
    if op is CollectiveOp.REDUCE:
        b = LocalBuilder(n, 1)
        for j in range(1, n):
            b.add(j, 0, 0, [0], 1.0, reduce=True)
        return b.build([-1], [0], symmetric=False)
    if op is CollectiveOp.GATHER:
        b = LocalBuilder(n, n)
        for j in range(1, n):
            b.add(j, 0, 0, [j], 1.0, reduce=False)
        return b.build(list(range(n)), [0] * n, symmetric=False)
    if op is CollectiveOp.SCATTER:
        b = LocalBuilder(n, n)
        for j in range(1, n):
            b.add(0, j, 0, [j], 1.0, reduce=False)
        return b.build([0] * n, list(range(n)), symmetric=False)
    if op is CollectiveOp.SEND_RECV:
        if n != 2:
            raise AlgorithmError(f"send_recv needs a group of 2 ranks, got {n}")
        b = LocalBuilder(2, 1)
        b.add(0, 1, 0, [0], 1.0, reduce=False)
        return b.build([0], [1], symmetric=False)
    raise AlgorithmError(f"direct does not implement {op.value}")
