"""Composition of local schedules into one global schedule: flat or hierarchical over dims."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainsim.topology import Placement, Topology, place_group

from ._algorithms import local_schedule, parse_algorithm
from ._errors import AlgorithmError, GroupError
from ._local import IntArray, LocalSchedule
from ._ops import CollectiveOp
from ._schedule import Phase, Schedule
from ._tacos_cache import tacos_schedule

__all__ = ["Plan", "build_schedule", "plan_phases"]

_HIERARCHICAL = (
    CollectiveOp.ALL_REDUCE,
    CollectiveOp.BARRIER,
    CollectiveOp.REDUCE_SCATTER,
    CollectiveOp.ALL_GATHER,
    CollectiveOp.ALL_TO_ALL,
)


@dataclass(frozen=True)
class Plan:
    """How a collective runs on a group: its phases and the members of each phase's subgroups.

    ``members[i]`` is an ``(subgroups, size)`` array of group indices for phase ``i``; a flat
    plan has one phase over the whole group.
    """

    op: CollectiveOp
    ranks: tuple[int, ...]
    phases: tuple[Phase, ...]
    members: tuple[IntArray, ...]
    sizes: tuple[int, ...]
    coords: IntArray
    placement: Placement | None


def plan_phases(
    op: CollectiveOp,
    ranks: Sequence[int],
    topology: Topology | None,
    algorithm: str | Sequence[str],
) -> Plan:
    """Decide the phases: one per spanned dimension for hierarchical operations, else one.

    All-reduce reduce-scatters along the lower dimensions, all-reduces along the highest and
    all-gathers back (ASTRA-sim's order); all-gather goes from the highest dimension down;
    reduce-scatter and all-to-all go up. ``algorithm`` is one name for every phase, one per
    spanned dimension, or one per dimension of the network (a group takes the entries of the
    dimensions it spans, as ASTRA-sim does).
    """
    group = tuple(ranks) if isinstance(ranks, range) else tuple(map(int, ranks))
    if len(group) == 0:
        raise GroupError("empty rank group")
    if len(set(group)) != len(group):
        raise GroupError(f"rank group has duplicates: {list(group)[:16]}")
    names = [algorithm] if isinstance(algorithm, str) else list(algorithm)
    if not names:
        raise AlgorithmError("no algorithm given")
    names = [parse_algorithm(a) for a in names]
    placement = None
    sizes: tuple[int, ...] = (len(group),)
    dims: tuple[int, ...] = (-1,)
    coords = np.arange(len(group), dtype=np.int64)[:, None]
    if topology is not None:
        placement = place_group(topology, group, with_links=False)
        use_dims = (
            op in _HIERARCHICAL
            and "tacos" not in names
            and placement.regular
            and len(placement.dims) > 0
            and not (
                len(names) == 1
                and len(placement.dims) > 1
                and names[0] in ("double_binary_tree", "in_network")
            )
        )
        if use_dims:
            dims = placement.dims
            sizes = placement.sizes
            if placement.local_coords is not None:
                coords = placement.local_coords.astype(np.int64)
    if len(names) == 1:
        names = names * len(dims)
    elif topology is not None and len(names) == len(topology.dims) != len(dims):
        # One entry per network dimension, as ASTRA-sim's *-implementation lists are: a group
        # that spans some of them takes each spanned dimension's own entry.
        spanned = dims if dims != (-1,) else (placement.dims if placement is not None else ())
        if len(spanned) == len(dims):
            names = [names[d] for d in spanned]
    if len(names) != len(dims):
        raise AlgorithmError(
            f"{len(names)} algorithms given for a group spanning {len(dims)} dimension(s) "
            f"{list(dims)}; give one, or one per dimension"
        )
    grid = np.full(sizes, -1, dtype=np.int64)
    grid[tuple(coords.T)] = np.arange(len(group))

    def members_along(k: int) -> IntArray:
        return np.moveaxis(grid, k, -1).reshape(-1, sizes[k])

    last = len(dims) - 1
    order: list[tuple[CollectiveOp, int]]
    if op in (CollectiveOp.ALL_REDUCE, CollectiveOp.BARRIER):
        order = [(CollectiveOp.REDUCE_SCATTER, k) for k in range(last)]
        order.append((op, last))
        order += [(CollectiveOp.ALL_GATHER, k) for k in reversed(range(last))]
    elif op is CollectiveOp.ALL_GATHER:
        order = [(op, k) for k in reversed(range(last + 1))]
    else:
        order = [(op, k) for k in range(last + 1)]
    phases = tuple(Phase(o, names[k], dims[k], sizes[k]) for o, k in order)
    members = tuple(members_along(k) for _, k in order)
    return Plan(CollectiveOp(op), group, phases, members, sizes, coords, placement)


def build_schedule(
    op: CollectiveOp | str,
    ranks: Sequence[int],
    size_bytes: float,
    *,
    topology: Topology | None = None,
    algorithm: str | Sequence[str] = "ring",
    astra: bool = False,
    variant: int = 0,
) -> Schedule:
    """Build the full schedule of a collective on a rank group.

    >>> from trainsim.topology import parse_spec
    >>> s = build_schedule("all_reduce", range(16), 1 << 20, topology=parse_spec("ring:4,switch:4"))
    >>> [p.op.value for p in s.phases]
    ['reduce_scatter', 'all_reduce', 'all_gather']
    """
    operation = CollectiveOp.parse(op)
    if size_bytes < 0:
        raise GroupError(f"size_bytes must be >= 0, got {size_bytes}")
    names = [algorithm] if isinstance(algorithm, str) else list(algorithm)
    if "tacos" in (parse_algorithm(a) for a in names):
        if topology is None:
            raise AlgorithmError("tacos synthesizes on a topology: pass topology=")
        return tacos_schedule(operation, ranks, float(size_bytes), topology)
    plan = plan_phases(operation, ranks, topology, algorithm)
    return _assemble(plan, float(size_bytes), topology, astra=astra, variant=variant)


def _assemble(
    plan: Plan, size_bytes: float, topology: Topology | None, *, astra: bool, variant: int
) -> Schedule:
    op = plan.op
    group = np.asarray(plan.ranks, dtype=np.int64)
    g = len(group)
    locals_ = [
        local_schedule(ph.algorithm, ph.op, ph.group_size, astra=astra, variant=variant)
        for ph in plan.phases
    ]
    flat = len(plan.phases) == 1
    parts: dict[str, list[np.ndarray]] = {
        k: []
        for k in (
            "src",
            "dst",
            "step",
            "phase",
            "phase_step",
            "bytes",
            "compute",
            "reduce",
            "deps",
            "ptr",
            "lo",
            "hi",
        )
    }
    # Responsibility ranges [lo, hi) of global chunks per group index (reducing ops, gathers).
    if op is CollectiveOp.ALL_GATHER and not flat:
        ids = np.ravel_multi_index(tuple(plan.coords.T), plan.sizes).astype(np.int64)
        lo, hi = ids.copy(), ids + 1
    else:
        # Enough global chunks that every phase's pieces are whole chunks.
        grain = max(
            (
                loc.num_pieces // max(ph.group_size, 1)
                for ph, loc in zip(plan.phases, locals_, strict=True)
            ),
            default=1,
        )
        lo, hi = np.zeros(g, dtype=np.int64), np.full(g, g * grain, dtype=np.int64)
    total_chunks = int(hi.max() - lo.min()) if g else 0
    base = 0
    step_offset = 0
    last_in = np.full(g, -1, dtype=np.int64)
    entry_total = 0
    for index, (phase, local, members) in enumerate(
        zip(plan.phases, locals_, plan.members, strict=True)
    ):
        subgroups, _ = members.shape
        t_local = local.num_transfers
        if t_local == 0:
            continue
        nodes = group[members]  # (S, n) NPU ids
        if local.uses_switch:
            switch_ids = np.asarray(
                [_switch_for(topology, row.tolist()) for row in nodes], dtype=np.int64
            )
            nodes = np.concatenate([nodes, switch_ids[:, None]], axis=1)
        lidx = (
            np.concatenate([members, np.full((subgroups, 1), -1, dtype=np.int64)], axis=1)
            if local.uses_switch
            else members
        )
        piece_lo, piece_hi, buf = _piece_ranges(
            plan, index, phase, local, members, lo, hi, total_chunks, size_bytes, flat
        )
        ranges_per_piece = piece_lo.shape[2]
        src = nodes[:, local.src].T.reshape(-1)
        dst = nodes[:, local.dst].T.reshape(-1)
        parts["src"].append(src)
        parts["dst"].append(dst)
        parts["step"].append(np.repeat(local.step + step_offset, subgroups))
        parts["phase"].append(np.full(t_local * subgroups, index, dtype=np.int64))
        parts["phase_step"].append(np.repeat(local.step, subgroups))
        parts["bytes"].append((local.size_frac[:, None] * buf[None, :]).reshape(-1))
        parts["compute"].append((local.compute_frac[:, None] * buf[None, :]).reshape(-1))
        parts["reduce"].append(np.repeat(local.reduce, subgroups))
        sub = np.arange(subgroups, dtype=np.int64)
        dep = np.where(
            local.deps[:, None, :] >= 0,
            base + local.deps[:, None, :] * subgroups + sub[None, :, None],
            -1,
        ).reshape(t_local * subgroups, -1)
        # The first step of a phase waits for what its sender received last in the previous one.
        src_member = lidx[:, local.src].T.reshape(-1)
        first = np.repeat(local.step == 0, subgroups) & (src_member >= 0)
        cross = np.full(t_local * subgroups, -1, dtype=np.int64)
        cross[first] = last_in[src_member[first]]
        if index == 0:
            parts["deps"].append(dep)
        else:
            parts["deps"].append(np.concatenate([dep, cross[:, None]], axis=1))
        # Chunk ranges carried: local piece lists expanded per subgroup.
        counts = np.diff(local.piece_ptr)
        per_t = np.repeat(counts, subgroups)
        if local.piece_ids.size == t_local:
            # One piece per transfer (rings, trees): no ragged expansion needed.
            entries_piece = np.repeat(local.piece_ids, subgroups)
            entries_sub = np.tile(sub, t_local)
        else:
            block = counts * subgroups
            rep_t = np.repeat(np.arange(t_local, dtype=np.int64), block)
            block_start = np.concatenate([[0], np.cumsum(block)[:-1]]).astype(np.int64)
            pos = np.arange(rep_t.size, dtype=np.int64) - block_start[rep_t]
            width_t = np.maximum(counts[rep_t], 1)
            entries_sub = pos // width_t
            entries_piece = local.piece_ids[local.piece_ptr[rep_t] + pos % width_t]
        parts["lo"].append(piece_lo[entries_sub, entries_piece].reshape(-1))
        parts["hi"].append(piece_hi[entries_sub, entries_piece].reshape(-1))
        parts["ptr"].append(per_t * ranges_per_piece)
        entry_total += int(per_t.sum())
        # Bookkeeping for the next phase.
        dst_member = lidx[:, local.dst].T.reshape(-1)
        top = local.step == local.step.max()
        top_rep = np.repeat(top, subgroups) & (dst_member >= 0)
        gidx = base + np.arange(t_local * subgroups, dtype=np.int64)
        last_in = last_in.copy()
        last_in[dst_member[top_rep]] = gidx[top_rep]
        if not flat:
            lo, hi = _after_phase(phase, local, members, piece_lo, piece_hi, lo, hi)
        base += t_local * subgroups
        step_offset += local.num_steps

    def cat(key: str, dtype: type) -> np.ndarray:
        items = parts[key]
        if not items:
            return np.zeros(0, dtype=dtype)
        joined = items[0] if len(items) == 1 else np.concatenate(items)
        return joined.astype(dtype, copy=False)

    deps_parts = parts["deps"]
    width = max((d.shape[1] for d in deps_parts), default=1)
    deps = (
        _join(
            [
                d
                if d.shape[1] == width
                else np.pad(d, ((0, 0), (0, width - d.shape[1])), constant_values=-1)
                for d in deps_parts
            ]
        )
        if deps_parts
        else np.full((0, 1), -1, dtype=np.int64)
    )
    ptr = np.zeros(base + 1, dtype=np.int64)
    np.cumsum(cat("ptr", np.int64), out=ptr[1:])
    num_chunks, chunk_src, chunk_dst = _chunk_semantics(plan, locals_, group, flat, lo)
    if plan.op in (CollectiveOp.ALL_REDUCE, CollectiveOp.BARRIER) and not flat:
        num_chunks = total_chunks
        chunk_src = np.full(total_chunks, -1, dtype=np.int64)
        chunk_dst = np.full(total_chunks, -1, dtype=np.int64)
    name = "+".join(dict.fromkeys(ph.algorithm for ph in plan.phases))
    return Schedule(
        op=op,
        algorithm=name,
        ranks=plan.ranks,
        size_bytes=size_bytes,
        phases=plan.phases,
        src=cat("src", np.int64),
        dst=cat("dst", np.int64),
        step=cat("step", np.int64),
        phase=cat("phase", np.int64),
        phase_step=cat("phase_step", np.int64),
        transfer_bytes=cat("bytes", np.float64),
        compute_bytes=cat("compute", np.float64),
        reduce=cat("reduce", np.bool_),
        deps=deps.astype(np.int64),
        chunk_ptr=ptr,
        chunk_lo=cat("lo", np.int64),
        chunk_hi=cat("hi", np.int64),
        num_chunks=num_chunks,
        chunk_src=chunk_src,
        chunk_dst=chunk_dst,
    )


def _join(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _piece_ranges(
    plan: Plan,
    phase_index: int,
    phase: Phase,
    local: LocalSchedule,
    members: IntArray,
    lo: IntArray,
    hi: IntArray,
    g: int,
    size_bytes: float,
    flat: bool,
) -> tuple[IntArray, IntArray, np.ndarray]:
    """Global chunk range of each (subgroup, local piece), and the per-rank phase buffer."""
    subgroups, _ = members.shape
    pieces = local.num_pieces
    if flat:
        ids = np.arange(pieces, dtype=np.int64)
        piece_lo = np.broadcast_to(ids, (subgroups, pieces)).copy()[:, :, None]
        return piece_lo, piece_lo + 1, np.full(subgroups, size_bytes)
    if phase.op is CollectiveOp.ALL_TO_ALL:
        ids = _all_to_all_chunks(plan, phase_index, local, members)
        return ids, ids + 1, np.full(subgroups, size_bytes)
    first = members[:, 0]
    width = hi[first] - lo[first]
    # A global chunk is one rank's shard for all-gather, 1/G of the buffer otherwise.
    unit = size_bytes if plan.op is CollectiveOp.ALL_GATHER else size_bytes / g
    buf = unit * width
    if phase.op is CollectiveOp.ALL_GATHER:
        owner = np.where(local.piece_src >= 0, local.piece_src, 0)
        piece_lo = lo[members[:, owner]][:, :, None]
        piece_hi = hi[members[:, owner]][:, :, None]
        return piece_lo, piece_hi, buf
    if np.any(width % pieces):
        raise AlgorithmError(
            f"{phase.algorithm} cuts a buffer of {int(width[0])} chunks into {pieces} pieces"
        )
    step = width // pieces
    q = np.arange(pieces, dtype=np.int64)
    piece_lo = (lo[first][:, None] + q[None, :] * step[:, None])[:, :, None]
    return piece_lo, piece_lo + step[:, None, None], buf


def _after_phase(
    phase: Phase,
    local: LocalSchedule,
    members: IntArray,
    piece_lo: IntArray,
    piece_hi: IntArray,
    lo: IntArray,
    hi: IntArray,
) -> tuple[IntArray, IntArray]:
    lo, hi = lo.copy(), hi.copy()
    if phase.op is CollectiveOp.REDUCE_SCATTER:
        owners = local.piece_dst[local.piece_dst >= 0]
        if np.unique(owners).size != owners.size:
            raise AlgorithmError(
                f"{phase.algorithm} leaves a member several pieces after reduce-scatter along "
                f"dimension {phase.dim}; use it on the last dimension only"
            )
        for q, owner in enumerate(local.piece_dst.tolist()):
            if owner >= 0:
                lo[members[:, owner]] = piece_lo[:, q, 0]
                hi[members[:, owner]] = piece_hi[:, q, 0]
    elif phase.op is CollectiveOp.ALL_GATHER:
        new_lo = piece_lo[:, :, 0].min(axis=1)
        new_hi = piece_hi[:, :, 0].max(axis=1)
        lo[members] = new_lo[:, None]
        hi[members] = new_hi[:, None]
    return lo, hi


def _chunk_semantics(
    plan: Plan, locals_: list[LocalSchedule], group: IntArray, flat: bool, lo: IntArray
) -> tuple[int, IntArray, IntArray]:
    op = plan.op
    g = len(group)
    if flat:
        local = locals_[0]
        members = plan.members[0][0]

        def to_node(values: IntArray) -> IntArray:
            return np.where(values >= 0, group[members[np.maximum(values, 0)]], -1)

        return local.num_pieces, to_node(local.piece_src), to_node(local.piece_dst)
    if op is CollectiveOp.ALL_GATHER:
        ids = np.ravel_multi_index(tuple(plan.coords.T), plan.sizes)
        src = np.empty(g, dtype=np.int64)
        src[ids] = group
        return g, src, np.full(g, -1, dtype=np.int64)
    if op is CollectiveOp.ALL_TO_ALL:
        pairs = np.arange(g * g, dtype=np.int64)
        return g * g, group[pairs // g], group[pairs % g]
    if op is CollectiveOp.REDUCE_SCATTER:
        dst = np.full(g, -1, dtype=np.int64)
        dst[lo] = group
        return g, np.full(g, -1, dtype=np.int64), dst
    return g, np.full(g, -1, dtype=np.int64), np.full(g, -1, dtype=np.int64)


def _all_to_all_chunks(
    plan: Plan, phase_index: int, local: LocalSchedule, members: IntArray
) -> IntArray:
    """Global chunks (``x * G + y``: from group index x to y) behind each local piece.

    Before the phase along the ``j``-th spanned dimension, chunk ``x -> y`` sits at the member
    whose coordinates are ``y``'s below ``j`` and ``x``'s from ``j`` on; local piece ``a -> b``
    moves every chunk at ``a`` whose destination has ``b``'s coordinate ``j``.
    """
    g = len(plan.ranks)
    k = len(plan.sizes)
    j = _dim_position(plan, phase_index)
    grid = np.full(plan.sizes, -1, dtype=np.int64)
    grid[tuple(plan.coords.T)] = np.arange(g)
    subgroups, n = members.shape
    per_piece = g // n
    out = np.zeros((subgroups, n * n, per_piece), dtype=np.int64)
    for s in range(subgroups):
        for a_local in range(n):
            a = int(members[s, a_local])
            ca = plan.coords[a]
            xs = grid[(slice(None),) * j + tuple(ca[j:].tolist())].reshape(-1)
            for b_local in range(n):
                cb = plan.coords[int(members[s, b_local])]
                ys = grid[tuple(ca[:j].tolist()) + (int(cb[j]),) + (slice(None),) * (k - j - 1)]
                out[s, a_local * n + b_local] = (xs[:, None] * g + ys.reshape(-1)[None, :]).reshape(
                    -1
                )
    return out


def _dim_position(plan: Plan, phase_index: int) -> int:
    """Position, among the spanned dimensions, of the dimension a phase runs along."""
    dims = [ph.dim for ph in plan.phases]
    spanned = sorted(set(dims))
    return spanned.index(dims[phase_index])


def _switch_for(topology: Topology | None, npus: list[int]) -> int:
    """The switch closest to every NPU of a subgroup (for in-network reduction)."""
    if topology is None or not topology.switches:
        raise AlgorithmError("in_network needs a topology with a switch")
    graph = topology.graph
    common = set(graph.successors(npus[0]))
    for r in npus[1:]:
        common &= set(graph.successors(r))
    candidates: list[int] = sorted(s for s in common if s in set(topology.switches))
    if candidates:
        return candidates[0]
    best: int = min(
        topology.switches,
        key=lambda s: max(len(topology.path(r, s)) for r in npus),
    )
    return best
