"""Double binary tree all-reduce (NCCL's, and ASTRA-sim's one-tree-per-chunk variant)."""

from __future__ import annotations

from ._errors import AlgorithmError
from ._local import LocalBuilder, LocalSchedule
from ._ops import CollectiveOp

__all__ = ["binary_tree", "double_binary_tree_schedule"]


def binary_tree(n: int, *, mirrored: bool = False) -> dict[int, tuple[int, list[int]]]:
    """Parent and children of each member: root ``n-1`` above an in-order balanced tree.

    This is ASTRA-sim's tree for power-of-two groups; ``mirrored`` renumbers ``i -> n-1-i``,
    which gives the second tree, whose inner nodes are the first tree's leaves.
    """
    tree: dict[int, tuple[int, list[int]]] = {n - 1: (-1, [])}

    def build(lo: int, hi: int, parent: int) -> None:
        if lo >= hi:
            return
        mid = (lo + hi) // 2
        tree[mid] = (parent, [])
        tree[parent][1].append(mid)
        build(lo, mid, mid)
        build(mid + 1, hi, mid)

    build(0, n - 1, n - 1)
    if not mirrored:
        return tree
    return {
        n - 1 - k: (-1 if p < 0 else n - 1 - p, [n - 1 - c for c in kids])
        for k, (p, kids) in tree.items()
    }


def double_binary_tree_schedule(
    op: CollectiveOp, n: int, *, astra: bool = False, variant: int = 0
) -> LocalSchedule:
    """All-reduce over two complementary binary trees: reduce up each tree, broadcast down.

    By default each tree carries half the buffer (NCCL). ``astra=True`` follows ASTRA-sim:
    the whole buffer goes up and down one tree, the tree alternating with ``variant`` (the
    dataset split index), and an inner node charges a reduction also for the data coming down.

    >>> double_binary_tree_schedule(CollectiveOp.ALL_REDUCE, 8).num_transfers
    28
    """
    if op not in (CollectiveOp.ALL_REDUCE, CollectiveOp.BARRIER):
        raise AlgorithmError(f"double_binary_tree implements all_reduce only, not {op.value}")
    if n < 2:
        raise AlgorithmError(f"double_binary_tree needs at least 2 ranks, got {n}")
    trees = (
        [binary_tree(n, mirrored=variant % 2 == 1)]
        if astra
        else [binary_tree(n), binary_tree(n, mirrored=True)]
    )
    share = 1.0 / len(trees)
    b = LocalBuilder(n, len(trees))
    for piece, tree in enumerate(trees):
        _add_tree(b, tree, piece, share, astra=astra)
    return b.build([-1] * len(trees), [-1] * len(trees), symmetric=False)


def _add_tree(
    b: LocalBuilder,
    tree: dict[int, tuple[int, list[int]]],
    piece: int,
    share: float,
    *,
    astra: bool,
) -> None:
    """Reduce ``piece`` up ``tree`` (a node sends once its children landed), then broadcast."""
    height: dict[int, int] = {}

    def h(v: int) -> int:
        if v not in height:
            kids = tree[v][1]
            height[v] = 0 if not kids else 1 + max(h(c) for c in kids)
        return height[v]

    root = next(v for v, (p, _) in tree.items() if p < 0)
    top = h(root)
    up: dict[int, int] = {}
    for v in sorted(tree, key=h):
        parent, kids = tree[v]
        if parent >= 0:
            up[v] = b.add(v, parent, h(v), [piece], share, reduce=True, deps=[up[c] for c in kids])
    pending = [(root, 0, [up[c] for c in tree[root][1]])]
    while pending:
        v, depth, dep = pending.pop()
        for c in tree[v][1]:
            # ASTRA-sim's inner nodes run the reduction path on the way down too.
            compute = share if (astra and tree[c][1]) else 0.0
            t = b.add(
                v, c, top + depth, [piece], share, reduce=False, deps=dep, compute_frac=compute
            )
            pending.append((c, depth + 1, [t]))
