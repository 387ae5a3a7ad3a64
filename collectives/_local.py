"""Schedules of one algorithm on one group, in group-local indices (the building block).

A local schedule cuts the per-rank buffer into ``num_pieces`` pieces and lists transfers
between group indices ``0..n-1`` (index ``n`` stands for an in-network switch). Hierarchical
composition maps local indices to NPUs and local pieces to global chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["LocalBuilder", "LocalSchedule"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class LocalSchedule:
    """Transfers of one algorithm among ``n`` group members, sizes as buffer fractions.

    ``size_frac`` and ``compute_frac`` are fractions of the per-rank ``size_bytes``;
    ``compute_frac`` is what the receiver processes on arrival (a reduction reads two operands
    and writes one). ``piece_src``/``piece_dst`` give, per piece, the member that holds it at
    the start / must hold it at the end (``-1``: every member). ``symmetric`` says every member
    does the same thing in every step, so one member's steps describe the whole schedule.
    """

    n: int
    num_pieces: int
    src: IntArray
    dst: IntArray
    step: IntArray
    size_frac: FloatArray
    compute_frac: FloatArray
    reduce: BoolArray
    deps: IntArray
    piece_ptr: IntArray
    piece_ids: IntArray
    piece_src: IntArray
    piece_dst: IntArray
    symmetric: bool
    uses_switch: bool = False

    @property
    def num_transfers(self) -> int:
        """Number of transfers."""
        return int(self.src.size)

    @property
    def num_steps(self) -> int:
        """Number of steps (waves); a transfer only depends on transfers of earlier steps."""
        return int(self.step.max()) + 1 if self.step.size else 0

    def profile(self) -> tuple[FloatArray, IntArray, FloatArray]:
        """Per step: size fraction, peer distance and compute fraction of member 0's send.

        Only meaningful for symmetric schedules; the distance is in group positions, which a
        ring dimension turns into hops.
        """
        first = np.searchsorted(self.step, np.arange(self.num_steps))
        pick = []
        for s, start in enumerate(first):
            idx = int(start)
            while idx < self.step.size and self.step[idx] == s and self.src[idx] != 0:
                idx += 1
            pick.append(idx if idx < self.step.size and self.step[idx] == s else int(start))
        sel = np.asarray(pick, dtype=np.int64)
        # The compute cost lands where member 0 receives, which for a symmetric schedule has
        # the same fraction as what it sends in the same step.
        distance = (self.dst[sel] - self.src[sel]) % self.n
        return self.size_frac[sel], distance.astype(np.int64), self.compute_frac[sel]


class LocalBuilder:
    """Accumulates transfers step by step and freezes them into a ``LocalSchedule``."""

    def __init__(self, n: int, num_pieces: int) -> None:
        self.n = n
        self.num_pieces = num_pieces
        self._src: list[int] = []
        self._dst: list[int] = []
        self._step: list[int] = []
        self._size: list[float] = []
        self._compute: list[float] = []
        self._reduce: list[bool] = []
        self._deps: list[Sequence[int]] = []
        self._pieces: list[Sequence[int]] = []

    def add(
        self,
        src: int,
        dst: int,
        step: int,
        pieces: Sequence[int],
        size_frac: float,
        *,
        reduce: bool,
        deps: Sequence[int] = (),
        compute_frac: float | None = None,
    ) -> int:
        """Add one transfer and return its index (for later ``deps``)."""
        self._src.append(src)
        self._dst.append(dst)
        self._step.append(step)
        self._size.append(size_frac)
        self._reduce.append(reduce)
        self._compute.append(
            (size_frac if reduce else 0.0) if compute_frac is None else compute_frac
        )
        self._deps.append(tuple(deps))
        self._pieces.append(tuple(pieces))
        return len(self._src) - 1

    def build(
        self,
        piece_src: Sequence[int],
        piece_dst: Sequence[int],
        *,
        symmetric: bool,
        uses_switch: bool = False,
    ) -> LocalSchedule:
        """Freeze, sorting transfers by step and renumbering dependencies to match."""
        order = np.argsort(np.asarray(self._step, dtype=np.int64), kind="stable")
        new_index = np.empty(len(order), dtype=np.int64)
        new_index[order] = np.arange(len(order))
        width = max((len(d) for d in self._deps), default=0)
        deps = np.full((len(order), max(width, 1)), -1, dtype=np.int64)
        for new, old in enumerate(order):
            for k, d in enumerate(self._deps[old]):
                deps[new, k] = new_index[d]
        counts = np.asarray([len(self._pieces[o]) for o in order], dtype=np.int64)
        ptr = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        ids = np.asarray([p for o in order for p in self._pieces[o]], dtype=np.int64)

        def arr(
            values: Sequence[float] | Sequence[int] | Sequence[bool], dtype: type
        ) -> np.ndarray:
            return np.asarray(values, dtype=dtype)[order]

        return LocalSchedule(
            n=self.n,
            num_pieces=self.num_pieces,
            src=arr(self._src, np.int64),
            dst=arr(self._dst, np.int64),
            step=arr(self._step, np.int64),
            size_frac=arr(self._size, np.float64),
            compute_frac=arr(self._compute, np.float64),
            reduce=arr(self._reduce, np.bool_),
            deps=deps,
            piece_ptr=ptr,
            piece_ids=ids,
            piece_src=np.asarray(piece_src, dtype=np.int64),
            piece_dst=np.asarray(piece_dst, dtype=np.int64),
            symmetric=symmetric,
            uses_switch=uses_switch,
        )
