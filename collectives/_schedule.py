"""The schedule format shared by every algorithm and cost model, and its delivery check."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._errors import DeliveryError
from ._local import BoolArray, FloatArray, IntArray
from ._ops import CollectiveOp

__all__ = ["Phase", "Schedule", "verify_delivery"]


@dataclass(frozen=True)
class Phase:
    """One stage of a schedule: an algorithm running an operation along one dimension."""

    op: CollectiveOp
    algorithm: str
    dim: int
    group_size: int


@dataclass(frozen=True, eq=False)
class Schedule:
    """Which chunks go over which link, in which step, depending on what.

    Transfer ``t`` moves the global chunks ``chunk_lo[k]..chunk_hi[k]-1`` for ``k`` in
    ``chunk_ptr[t]..chunk_ptr[t+1]-1`` from node ``src[t]`` to node ``dst[t]`` (NPU ids, or a
    switch id for in-network reduction), ``size_bytes[t]`` bytes in all. It may start once the
    transfers ``deps[t]`` (``-1`` pads) have landed. ``reduce[t]`` says the receiver adds the data
    to what it holds instead of storing it; ``compute_bytes[t]`` is what the receiver processes
    on arrival. Transfers are sorted by ``step``; dependencies point to earlier steps only.

    The buffer (``size_bytes`` per rank) is cut into ``num_chunks`` equal global chunks for
    reducing operations; chunk ``c`` starts at ``chunk_src[c]`` (``-1``: every rank holds a
    contribution) and must end at ``chunk_dst[c]`` (``-1``: every rank).
    """

    op: CollectiveOp
    algorithm: str
    ranks: tuple[int, ...]
    size_bytes: float
    phases: tuple[Phase, ...]
    src: IntArray
    dst: IntArray
    step: IntArray
    phase: IntArray
    phase_step: IntArray
    transfer_bytes: FloatArray
    compute_bytes: FloatArray
    reduce: BoolArray
    deps: IntArray
    chunk_ptr: IntArray
    chunk_lo: IntArray
    chunk_hi: IntArray
    num_chunks: int
    chunk_src: IntArray
    chunk_dst: IntArray

    @property
    def num_transfers(self) -> int:
        """Number of transfers."""
        return int(self.src.size)

    @property
    def num_steps(self) -> int:
        """Number of steps."""
        return int(self.step.max()) + 1 if self.step.size else 0

    def chunks_of(self, transfer: int) -> list[int]:
        """Global chunk ids carried by one transfer."""
        lo = self.chunk_lo[self.chunk_ptr[transfer] : self.chunk_ptr[transfer + 1]]
        hi = self.chunk_hi[self.chunk_ptr[transfer] : self.chunk_ptr[transfer + 1]]
        return [c for a, b in zip(lo.tolist(), hi.tolist(), strict=True) for c in range(a, b)]

    def to_records(self) -> list[dict[str, object]]:
        """One dict per transfer (for inspection, JSON or a DataFrame)."""
        return [
            {
                "src": int(self.src[t]),
                "dst": int(self.dst[t]),
                "step": int(self.step[t]),
                "phase": int(self.phase[t]),
                "size_bytes": float(self.transfer_bytes[t]),
                "reduce": bool(self.reduce[t]),
                "chunks": self.chunks_of(t),
                "deps": [int(d) for d in self.deps[t] if d >= 0],
            }
            for t in range(self.num_transfers)
        ]


def verify_delivery(schedule: Schedule) -> None:
    """Check that executing ``schedule`` step by step leaves every chunk where the op says.

    Each node holds, per chunk, the set of ranks whose contribution it has. A transfer sends
    the sender's set as it was before the step; a reducing transfer adds it to the receiver's
    set (a contribution counted twice is an error), a plain one replaces it. At the end, every
    target of every chunk must hold all contributions. Raises ``DeliveryError`` naming the
    chunk and rank otherwise.
    """
    group = schedule.ranks
    full = (1 << len(group)) - 1
    bit = {r: 1 << i for i, r in enumerate(group)}
    held: dict[tuple[int, int], int] = {}
    for c in range(schedule.num_chunks):
        origin = int(schedule.chunk_src[c])
        if origin < 0:
            for r in group:
                held[(r, c)] = bit[r]
        else:
            held[(origin, c)] = full
    bounds = np.searchsorted(schedule.step, np.arange(schedule.num_steps + 1))
    for s in range(schedule.num_steps):
        lo, hi = int(bounds[s]), int(bounds[s + 1])
        for t in range(lo, hi):
            for d in schedule.deps[t]:
                if d >= 0 and schedule.step[d] >= s:
                    raise DeliveryError(f"transfer {t} depends on transfer {d} of a later step")
        moves = []
        for t in range(lo, hi):
            src, dst = int(schedule.src[t]), int(schedule.dst[t])
            for c in schedule.chunks_of(t):
                payload = held.get((src, c), 0)
                if payload == 0:
                    raise DeliveryError(
                        f"step {s}: node {src} sends chunk {c} to {dst} without holding it"
                    )
                moves.append((dst, c, payload, bool(schedule.reduce[t])))
        for dst, c, payload, reduce in moves:
            before = held.get((dst, c), 0)
            if reduce:
                if before & payload:
                    raise DeliveryError(
                        f"step {s}: node {dst} adds a contribution to chunk {c} twice"
                    )
                held[(dst, c)] = before | payload
            else:
                held[(dst, c)] = payload
    for c in range(schedule.num_chunks):
        target = int(schedule.chunk_dst[c])
        for r in group if target < 0 else (target,):
            have = held.get((r, c), 0)
            if have != full:
                missing = [g for g in group if not have & bit[g]]
                raise DeliveryError(
                    f"{schedule.algorithm} {schedule.op.value}: rank {r} ends without "
                    f"chunk {c} complete (missing contributions of ranks {missing[:8]})"
                )
