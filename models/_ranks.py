"""Rank coordinates and process groups of a ParallelPlan.

Ranks are laid out as Megatron-LM does by default: tensor parallel fastest, then context,
then data, then pipeline, ``rank = ((pp * DP + dp) * CP + cp) * TP + tp``. Expert parallelism
splits the combined data x context index ``dc = dp * CP + cp`` into ``dc = edp * EP + ep``:
EP groups are consecutive ``dc`` values, and expert-data-parallel groups stride over them.

Group kinds: ``tp``, ``cp``, ``dp``, ``dp_cp`` (the gradient-reduction group of dense weights),
``pp``, ``ep``, ``edp`` (the gradient-reduction group of expert weights). Each group has a
process-group id, a positive integer unique across kinds (``pg_id``): the ``pg_name`` string of
the collectives in generated ETs and the key of ASTRA-sim's comm-group file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from trainsim.models._errors import InvalidPlanError
from trainsim.models._plan import ParallelPlan

__all__ = ["GROUP_KINDS", "RankCoord", "RankLayout"]

#: Every process-group kind, in the order their ids are numbered.
GROUP_KINDS: tuple[str, ...] = ("tp", "cp", "dp", "dp_cp", "pp", "ep", "edp")


@dataclass(frozen=True)
class RankCoord:
    """Position of one rank in every parallel dimension."""

    rank: int
    tp: int
    cp: int
    dp: int
    pp: int
    ep: int
    edp: int


class RankLayout:
    """Maps ranks to coordinates and lists the ranks of every process group of a plan."""

    def __init__(self, plan: ParallelPlan) -> None:
        self._plan = plan
        self._sizes = {
            "tp": plan.tp,
            "cp": plan.cp,
            "dp": plan.dp,
            "dp_cp": plan.dp * plan.cp,
            "pp": plan.pp,
            "ep": plan.ep,
            "edp": plan.expert_dp,
        }
        offsets: dict[str, int] = {}
        total = 0
        for kind in GROUP_KINDS:
            offsets[kind] = total
            total += plan.num_gpus // self._sizes[kind]
        self._offsets = offsets
        self._num_groups = total

    @property
    def plan(self) -> ParallelPlan:
        """The plan this layout describes."""
        return self._plan

    @property
    def num_ranks(self) -> int:
        """World size."""
        return self._plan.num_gpus

    def group_size(self, kind: str) -> int:
        """Ranks per group of ``kind``."""
        self._check_kind(kind)
        return self._sizes[kind]

    def num_groups(self, kind: str) -> int:
        """Number of groups of ``kind``."""
        return self.num_ranks // self.group_size(kind)

    def coord(self, rank: int) -> RankCoord:
        """Coordinates of ``rank`` in every dimension."""
        p = self._plan
        if not 0 <= rank < p.num_gpus:
            raise InvalidPlanError(f"rank={rank} is outside [0, {p.num_gpus - 1}]")
        tp = rank % p.tp
        rest = rank // p.tp
        cp = rest % p.cp
        rest //= p.cp
        dp = rest % p.dp
        pp = rest // p.dp
        dc = dp * p.cp + cp
        return RankCoord(rank, tp, cp, dp, pp, dc % p.ep, dc // p.ep)

    def rank_of(self, *, tp: int = 0, cp: int = 0, dp: int = 0, pp: int = 0) -> int:
        """Rank at the given coordinates."""
        p = self._plan
        for name, value, size in (
            ("tp", tp, p.tp),
            ("cp", cp, p.cp),
            ("dp", dp, p.dp),
            ("pp", pp, p.pp),
        ):
            if not 0 <= value < size:
                raise InvalidPlanError(f"{name}={value} is outside [0, {size - 1}]")
        return ((pp * p.dp + dp) * p.cp + cp) * p.tp + tp

    def group_index(self, kind: str, rank: int) -> int:
        """Index (within ``kind``) of the group of ``kind`` that holds ``rank``."""
        self._check_kind(kind)
        p = self._plan
        c = self.coord(rank)
        if kind == "tp":
            return rank // p.tp
        if kind == "cp":
            return (c.pp * p.dp + c.dp) * p.tp + c.tp
        if kind == "dp":
            return (c.pp * p.cp + c.cp) * p.tp + c.tp
        if kind == "dp_cp":
            return c.pp * p.tp + c.tp
        if kind == "pp":
            return rank % (p.tp * p.cp * p.dp)
        if kind == "ep":
            return (c.pp * p.expert_dp + c.edp) * p.tp + c.tp
        return (c.pp * p.ep + c.ep) * p.tp + c.tp  # edp

    def pg_id(self, kind: str, rank: int) -> int:
        """Process-group id (positive, unique across kinds) of the ``kind`` group of ``rank``."""
        return 1 + self._offsets[kind] + self.group_index(kind, rank)

    def kind_of_pg(self, pg_id: int) -> tuple[str, int]:
        """Inverse of ``pg_id``: the kind and the index within the kind."""
        if not 1 <= pg_id <= self._num_groups:
            raise InvalidPlanError(f"pg_id={pg_id} is outside [1, {self._num_groups}]")
        index = pg_id - 1
        for kind in reversed(GROUP_KINDS):
            if index >= self._offsets[kind]:
                return kind, index - self._offsets[kind]
        raise AssertionError("unreachable")  # pragma: no cover

    def group_ranks(self, kind: str, rank: int) -> tuple[int, ...]:
        """Ranks, ascending, of the ``kind`` group that holds ``rank``."""
        index = self.group_index(kind, rank)
        return tuple(self.groups(kind)[index].tolist())

    def groups(self, kind: str) -> NDArray[np.int64]:
        """All groups of ``kind`` as a (num_groups, group_size) array; row i is group index i."""
        self._check_kind(kind)
        return self._all_groups[kind]

    def comm_groups(self) -> dict[str, list[int]]:
        """Every group as ``{str(pg_id): ranks}``, the comm-group file ASTRA-sim reads."""
        out: dict[str, list[int]] = {}
        for kind in GROUP_KINDS:
            base = 1 + self._offsets[kind]
            for i, row in enumerate(self.groups(kind).tolist()):
                out[str(base + i)] = row
        return out

    @cached_property
    def _all_groups(self) -> dict[str, NDArray[np.int64]]:
        p = self._plan
        grid = np.arange(p.num_gpus, dtype=np.int64).reshape(p.pp, p.dp, p.cp, p.tp)
        moe = grid.reshape(p.pp, p.expert_dp, p.ep, p.tp)
        return {
            "tp": grid.reshape(-1, p.tp),
            "cp": grid.transpose(0, 1, 3, 2).reshape(-1, p.cp),
            "dp": grid.transpose(0, 2, 3, 1).reshape(-1, p.dp),
            "dp_cp": grid.transpose(0, 3, 1, 2).reshape(-1, p.dp * p.cp),
            "pp": grid.transpose(1, 2, 3, 0).reshape(-1, p.pp),
            "ep": moe.transpose(0, 1, 3, 2).reshape(-1, p.ep),
            "edp": moe.transpose(0, 2, 3, 1).reshape(-1, p.expert_dp),
        }

    def _check_kind(self, kind: str) -> None:
        if kind not in self._sizes:
            raise InvalidPlanError(
                f"group kind={kind!r} is unknown (known: {', '.join(GROUP_KINDS)})"
            )
