"""Recursive halving-doubling (Rabenseifner) for power-of-two groups."""

from __future__ import annotations

from ._errors import AlgorithmError
from ._local import LocalBuilder, LocalSchedule
from ._ops import CollectiveOp

__all__ = ["halving_doubling_schedule"]


def halving_doubling_schedule(op: CollectiveOp, n: int, *, astra: bool = False) -> LocalSchedule:
    """Halving-doubling: reduce-scatter by recursive halving, all-gather by recursive doubling.

    Halving step ``s`` exchanges half of what a member still holds with the member at distance
    ``2**s``; doubling walks the distances back. ``astra=True`` charges reductions the way
    ASTRA-sim's implementation does: after each halving step it processes the size of the *next*
    message, so the first halving reduction costs half and the last costs nothing.

    >>> halving_doubling_schedule(CollectiveOp.ALL_REDUCE, 8).num_steps
    6
    """
    if n < 1 or n & (n - 1):
        raise AlgorithmError(f"halving_doubling needs a power-of-two group, got {n} ranks")
    levels = n.bit_length() - 1
    if op in (CollectiveOp.ALL_REDUCE, CollectiveOp.BARRIER, CollectiveOp.REDUCE_SCATTER):
        b = LocalBuilder(n, n)
        prev: dict[int, int] = {}
        for s in range(levels):
            bit = 1 << s
            current: dict[int, int] = {}
            for i in range(n):
                partner = i ^ bit
                low = bit - 1
                pieces = [
                    q for q in range(n) if (q & low) == (i & low) and (q & bit) == (partner & bit)
                ]
                size = len(pieces) / n
                compute = None
                if astra:
                    compute = size / 2 if s < levels - 1 else 0.0
                deps = [prev[i]] if i in prev else []
                current[partner] = b.add(
                    i, partner, s, pieces, size, reduce=True, deps=deps, compute_frac=compute
                )
            prev = current
        if op is CollectiveOp.REDUCE_SCATTER:
            return b.build([-1] * n, list(range(n)), symmetric=True)
        for k, s in enumerate(reversed(range(levels))):
            bit = 1 << s
            current = {}
            for i in range(n):
                partner = i ^ bit
                mask = (1 << (s + 1)) - 1
                pieces = [q for q in range(n) if (q & mask) == (i & mask)]
                deps = [prev[i]] if i in prev else []
                current[partner] = b.add(
                    i, partner, levels + k, pieces, len(pieces) / n, reduce=False, deps=deps
                )
            prev = current
        return b.build([-1] * n, [-1] * n, symmetric=True)
    if op is CollectiveOp.ALL_GATHER:
        b = LocalBuilder(n, n)
        prev = {}
        for k, s in enumerate(reversed(range(levels))):
            bit = 1 << s
            current = {}
            mask = (1 << (s + 1)) - 1
            for i in range(n):
                partner = i ^ bit
                pieces = [q for q in range(n) if (q & mask) == (i & mask)]
                deps = [prev[i]] if i in prev else []
                current[partner] = b.add(
                    i, partner, k, pieces, float(len(pieces)), reduce=False, deps=deps
                )
            prev = current
        return b.build(list(range(n)), [-1] * n, symmetric=True)
    raise AlgorithmError(f"halving_doubling does not implement {op.value} (use ring or direct)")
