"""In-network (switch) reduction, SHARP-style: members send up, the switch sums and sends back."""

from __future__ import annotations

from ._errors import AlgorithmError
from ._local import LocalBuilder, LocalSchedule
from ._ops import CollectiveOp

__all__ = ["in_network_schedule"]


def in_network_schedule(op: CollectiveOp, n: int, *, astra: bool = False) -> LocalSchedule:
    """Each member sends its buffer to the switch (local index ``n``), which sends back the sum.

    The switch reduces at line rate, so no reduction cost is charged anywhere.

    >>> in_network_schedule(CollectiveOp.ALL_REDUCE, 4).num_steps
    2
    """
    del astra
    sw = n
    if op in (CollectiveOp.ALL_REDUCE, CollectiveOp.BARRIER, CollectiveOp.REDUCE):
        b = LocalBuilder(n, 1)
        ups = [b.add(i, sw, 0, [0], 1.0, reduce=True, compute_frac=0.0) for i in range(n)]
        targets = range(n) if op is not CollectiveOp.REDUCE else range(1)
        for i in targets:
            b.add(sw, i, 1, [0], 1.0, reduce=False, deps=ups)
        dst = -1 if op is not CollectiveOp.REDUCE else 0
        return b.build([-1], [dst], symmetric=False, uses_switch=True)
    if op is CollectiveOp.BROADCAST:
        b = LocalBuilder(n, 1)
        first = b.add(0, sw, 0, [0], 1.0, reduce=False)
        for i in range(1, n):
            b.add(sw, i, 1, [0], 1.0, reduce=False, deps=[first])
        return b.build([0], [-1], symmetric=False, uses_switch=True)
    raise AlgorithmError(f"in_network implements all_reduce, reduce and broadcast, not {op.value}")
