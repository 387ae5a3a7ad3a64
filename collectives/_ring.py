"""Ring algorithms (uni- and bi-directional) for every operation, as local schedules."""

from __future__ import annotations

import numpy as np

from ._errors import AlgorithmError
from ._local import LocalBuilder, LocalSchedule
from ._ops import CollectiveOp

__all__ = ["ring_reference", "ring_schedule"]


def ring_schedule(
    op: CollectiveOp, n: int, *, bidirectional: bool = False, astra: bool = False
) -> LocalSchedule:
    """Ring schedule on ``n`` members: member ``i`` sends to ``i+1`` (and ``i-1`` if bidirectional).

    All-reduce is a reduce-scatter followed by an all-gather, ``2(n-1)`` steps of ``1/n`` of the
    buffer; all-to-all forwards each piece hop by hop, one piece per member per step
    (``n(n-1)/2`` steps), which is how ASTRA-sim's ring runs it. ``astra`` changes nothing here:
    ASTRA-sim's ring charges exactly one reduction per reduce-scatter step.

    >>> ring_schedule(CollectiveOp.ALL_REDUCE, 4).num_steps
    6
    """
    del astra
    directions = (1, -1) if bidirectional and n > 2 else (1,)
    share = 1.0 / len(directions)
    if op in _RING_OPS:
        return _ring_arrays(op, n, directions, share)
    if op is CollectiveOp.ALL_TO_ALL:
        return _all_to_all(n)
    if op is CollectiveOp.SEND_RECV:
        if n != 2:
            raise AlgorithmError(f"send_recv needs a group of 2 ranks, got {n}")
        b = LocalBuilder(2, 1)
        b.add(0, 1, 0, [0], 1.0, reduce=False)
        return b.build([0], [1], symmetric=False)
    return _chain(op, n)


_RING_OPS = (
    CollectiveOp.ALL_REDUCE,
    CollectiveOp.BARRIER,
    CollectiveOp.REDUCE_SCATTER,
    CollectiveOp.ALL_GATHER,
)


def ring_reference(op: CollectiveOp, n: int, *, bidirectional: bool = False) -> LocalSchedule:
    """The same ring schedules built transfer by transfer: slow, plain, kept to test against."""
    directions = (1, -1) if bidirectional and n > 2 else (1,)
    share = 1.0 / len(directions)
    if op in _RING_OPS:
        pieces = n * len(directions)
        b = LocalBuilder(n, pieces)
        piece_src = [-1] * pieces
        piece_dst = [-1] * pieces
        for k, direction in enumerate(directions):
            base = k * n
            if op is CollectiveOp.ALL_GATHER:
                _gather_steps(b, n, direction, base, share, start_step=0, owner_shift=0)
                for q in range(n):
                    piece_src[base + q] = q
            else:
                last = _reduce_scatter_steps(b, n, direction, base, share / n)
                if op is CollectiveOp.REDUCE_SCATTER:
                    for q in range(n):
                        piece_dst[base + q] = (q - direction) % n
                else:
                    _gather_steps(
                        b,
                        n,
                        direction,
                        base,
                        share / n,
                        start_step=n - 1,
                        owner_shift=direction,
                        first_deps=last,
                    )
        return b.build(piece_src, piece_dst, symmetric=True)
    raise AlgorithmError(f"ring_reference covers {[o.value for o in _RING_OPS]}, not {op.value}")


def _ring_arrays(
    op: CollectiveOp, n: int, directions: tuple[int, ...], share: float
) -> LocalSchedule:
    """Ring reduce-scatter / all-gather / all-reduce built with numpy (groups of thousands).

    Member ``i`` sends in step ``s`` the piece it received in step ``s-1``: in the
    reduce-scatter part piece ``i - d*s``, in the all-gather part the piece it completed.
    """
    nd = len(directions)
    gather_only = op is CollectiveOp.ALL_GATHER
    rs_steps = 0 if gather_only else n - 1
    ag_steps = 0 if op is CollectiveOp.REDUCE_SCATTER else n - 1
    steps = rs_steps + ag_steps
    s_idx = np.repeat(np.arange(steps, dtype=np.int64), nd * n)
    k_idx = np.tile(np.repeat(np.arange(nd, dtype=np.int64), n), steps)
    i_idx = np.tile(np.arange(n, dtype=np.int64), steps * nd)
    d = np.asarray(directions, dtype=np.int64)[k_idx]
    in_rs = s_idx < rs_steps
    ag_s = s_idx - rs_steps
    shift = 0 if gather_only else 1
    piece_local = np.where(in_rs, (i_idx - d * s_idx) % n, (i_idx + shift * d - d * ag_s) % n)
    pieces = k_idx * n + piece_local
    frac = share if gather_only else share / n
    prev = (s_idx - 1) * (nd * n) + k_idx * n + (i_idx - d) % n
    deps = np.where(s_idx > 0, prev, -1)[:, None]
    total = pieces.size
    num_pieces = nd * n
    owner = np.arange(num_pieces, dtype=np.int64)
    dirs = np.repeat(np.asarray(directions, dtype=np.int64), n)
    none = np.full(num_pieces, -1, dtype=np.int64)
    if gather_only:
        piece_src, piece_dst = owner % n, none
    elif op is CollectiveOp.REDUCE_SCATTER:
        piece_src, piece_dst = none, (owner % n - dirs) % n
    else:
        piece_src, piece_dst = none, none
    return LocalSchedule(
        n=n,
        num_pieces=num_pieces,
        src=i_idx,
        dst=(i_idx + d) % n,
        step=s_idx,
        size_frac=np.full(total, frac),
        compute_frac=np.where(in_rs, frac, 0.0),
        reduce=in_rs,
        deps=deps.astype(np.int64),
        piece_ptr=np.arange(total + 1, dtype=np.int64),
        piece_ids=pieces.astype(np.int64),
        piece_src=piece_src,
        piece_dst=piece_dst,
        symmetric=True,
    )


def _reduce_scatter_steps(
    b: LocalBuilder, n: int, direction: int, base: int, frac: float
) -> list[int]:
    prev: list[int] = []
    for s in range(n - 1):
        current = []
        for i in range(n):
            deps = [prev[(i - direction) % n]] if prev else []
            current.append(
                b.add(
                    i,
                    (i + direction) % n,
                    s,
                    [base + (i - direction * s) % n],
                    frac,
                    reduce=True,
                    deps=deps,
                )
            )
        prev = current
    return prev


def _gather_steps(
    b: LocalBuilder,
    n: int,
    direction: int,
    base: int,
    frac: float,
    *,
    start_step: int,
    owner_shift: int,
    first_deps: list[int] | None = None,
) -> None:
    prev = first_deps or []
    for s in range(n - 1):
        current = []
        for i in range(n):
            deps = [prev[(i - direction) % n]] if prev else []
            piece = base + (i + owner_shift - direction * s) % n
            current.append(
                b.add(
                    i, (i + direction) % n, start_step + s, [piece], frac, reduce=False, deps=deps
                )
            )
        prev = current


def _all_to_all(n: int) -> LocalSchedule:
    b = LocalBuilder(n, n * n)
    prev: list[int] = []
    step = 0
    for distance in range(1, n):
        for k in range(distance):
            current = []
            for i in range(n):
                origin = (i - k) % n
                piece = origin * n + (origin + distance) % n
                deps = [prev[(i - 1) % n]] if prev else []
                current.append(
                    b.add(i, (i + 1) % n, step, [piece], 1.0 / n, reduce=False, deps=deps)
                )
            prev = current
            step += 1
    piece_src = [p // n for p in range(n * n)]
    piece_dst = [p % n for p in range(n * n)]
    return b.build(piece_src, piece_dst, symmetric=True)


def _chain(op: CollectiveOp, n: int) -> LocalSchedule:
    # Rooted operations along the ring: a pipeline chain with member 0 as the root.
    if op is CollectiveOp.BROADCAST or op is CollectiveOp.REDUCE:
        b = LocalBuilder(n, 1)
        prev: list[int] = []
        for s in range(n - 1):
            if op is CollectiveOp.BROADCAST:
                prev = [b.add(s, s + 1, s, [0], 1.0, reduce=False, deps=prev)]
            else:
                prev = [b.add(n - 1 - s, n - 2 - s, s, [0], 1.0, reduce=True, deps=prev)]
        if op is CollectiveOp.BROADCAST:
            return b.build([0], [-1], symmetric=False)
        return b.build([-1], [0], symmetric=False)
    if op is CollectiveOp.GATHER:
        b = LocalBuilder(n, n)
        prev = []
        for s in range(n - 1):
            m = n - 1 - s
            prev = [b.add(m, m - 1, s, list(range(m, n)), 1.0 * (s + 1), reduce=False, deps=prev)]
        return b.build(list(range(n)), [0] * n, symmetric=False)
    if op is CollectiveOp.SCATTER:
        b = LocalBuilder(n, n)
        prev = []
        for s in range(n - 1):
            prev = [
                b.add(
                    s, s + 1, s, list(range(s + 1, n)), 1.0 * (n - 1 - s), reduce=False, deps=prev
                )
            ]
        return b.build([0] * n, list(range(n)), symmetric=False)
    raise AlgorithmError(f"ring does not implement {op.value}")
