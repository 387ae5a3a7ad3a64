"""Sample-vectorized stochastic execution: one pass over a step carries S Monte Carlo samples.

The deterministic engine runs once and fixes the issue order of every stream (and the
matching of collectives and sends). The step is then replayed with every time an array of S
samples: a node starts at the latest of its dependencies' ends and the end of the node before
it on its stream; it ends after its sampled duration (deterministic time x a relative factor
drawn from ``VariabilitySpec``). A collective ends after its group's last arrival plus its
sampled cost. Members of the group that are simulated are waited for explicitly (per-rank
mode). Members that are not (rank-class mode) are SPMD copies of a representative. Per group
kind, the representative's paths to a collective are kept in two classes: those that passed
a collective of that kind (the copies passed it too and left it at the same time) and those
that did not since the step start; each class carries its time and its *base*, the same
max-plus recursion with the representative's own durations at their deterministic values. A
copy arrives along a class at its base plus a noise of its own drawn from the same
distribution as the representative's (time less base, over the samples); the latest of n
i.i.d. copies is an order statistic, P(max <= t) = F(t)^n, drawn as F^-1(U^(1/n)) on the
empirical F of the S samples. Keeping the classes apart matters: in one sample a collective
is reached along the compute stream with the whole step's noise, in another along a
collective that already waited for the slow copies; one distribution mixing both added a
slow copy's whole-step slowness again at every data-parallel bucket.

Approximations: the issue order on a stream is the deterministic one even when sampled times
would reorder ready nodes; with k streams per kind a node waits for the node issued k before
it; a copy follows the representative's critical path within a class, and paths of one class
leaving different collectives share one base (the latest), which can hide some of the
representative's noise (rank-class means run up to ~0.3% below per-rank ones with TP and
pipeline stages); along paths from the step start the latest copy is ranked by one uniform
per step and group kind (its noise is cumulative), along paths since a collective it is
drawn afresh at each collective unless it is a slow GPU (the top ``slow_gpu_fraction`` of the
noise), which stays the latest (a slow copy is slow for the whole step); the copies'
shared-server ``node_factor`` is drawn afresh the same way, not kept per server; a
collective of a kind ends together for the copies of the kinds that synchronise more often
(TP peers wait for the same late data-parallel replicas); a degraded link slows a
collective's whole cost, not its bandwidth term only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

from trainsim.engine._errors import WorkloadError
from trainsim.engine._program import K_COLL, K_COMP, K_RECV
from trainsim.engine._replay import Replay, build_replay
from trainsim.engine._result import StepResult
from trainsim.engine._simulate import simulate
from trainsim.engine._system import System
from trainsim.engine._variability import VariabilitySpec
from trainsim.engine._workload import Workload

__all__ = ["StepSamples", "run_samples", "sample_steps"]

#: A time over samples: a plain float while nothing upstream varies, else an (S,) array.
Times: TypeAlias = float | NDArray[np.float64]


@dataclass
class StepSamples:
    """S Monte Carlo samples of one step's time, and of the time each kernel class took."""

    step_time_s: NDArray[np.float64]
    deterministic_step_time_s: float
    #: class -> (S,) mean per simulated rank of the time its kernels took, waits included
    class_time_s: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    per_rank: bool = False

    @property
    def samples(self) -> int:
        """Number of samples."""
        return int(self.step_time_s.size)

    @property
    def mean_s(self) -> float:
        """Mean step time (s)."""
        return float(self.step_time_s.mean())

    @property
    def std_s(self) -> float:
        """Standard deviation of the step time (s)."""
        return float(self.step_time_s.std(ddof=1)) if self.samples > 1 else 0.0

    @property
    def cv(self) -> float:
        """Coefficient of variation of the step time (std / mean)."""
        return self.std_s / self.mean_s if self.mean_s else 0.0

    def variability_by_class(self) -> list[dict[str, float | str]]:
        """Kernel classes by how much of the step-time variability they carry, largest first.

        A kernel's observed time includes waiting for the slowest member of its group, so, as
        in PRISM's measurements, the variability of slow GEMMs shows up in the collectives
        that wait for them. ``share`` is each class's standard deviation over their sum.
        """
        stds = {
            c: float(v.std(ddof=1)) if v.size > 1 else 0.0 for c, v in self.class_time_s.items()
        }
        total = sum(stds.values()) or 1.0
        rows: list[dict[str, float | str]] = [
            {
                "class": c,
                "mean_s": float(self.class_time_s[c].mean()),
                "std_s": s,
                "share": s / total,
            }
            for c, s in stds.items()
        ]
        rows.sort(key=lambda r: -float(r["std_s"]))
        return rows


def _order_statistic(local: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
    """Draws of the largest of n i.i.d. values distributed as ``local``, given ``w = U^(1/n)``.

    Inverse transform on the empirical CDF: P(max <= t) = F(t)^n, so max = F^-1(U^(1/n)).
    """
    ordered = np.sort(local)
    n = ordered.size
    index = np.minimum((w * n).astype(np.int64), n - 1)
    result: NDArray[np.float64] = ordered[index]
    return result


def _max(a: Times, b: Times) -> Times:
    """The later of two times, staying a float while both are floats."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.maximum(a, b)
    return a if a >= b else b


def _rank_factors(
    replay: Replay, spec: VariabilitySpec, samples: int, rng: np.random.Generator
) -> list[Times]:
    """Per simulated rank, the factor on its compute: slow GPU and shared server factor."""
    factors: list[Times] = []
    servers: dict[int, NDArray[np.float64]] = {}
    varying_node = spec.node_factor is not None and not (
        spec.node_factor.is_constant and spec.node_factor.mean == 1.0
    )
    for rank in replay.ranks:
        factor: Times = 1.0
        if spec.has_slow_gpus:
            # Stratified: each sample is slow with probability f, and f of the samples are
            # (to rounding). The copies of a rank class are drawn from these samples'
            # order statistics, and a rare slow GPU would otherwise be over- or
            # under-represented among them by chance, shifting the whole group's mean.
            u = (rng.permutation(samples) + rng.random(samples)) / samples
            slow = u < spec.slow_gpu_fraction
            factor = np.where(slow, spec.slow_gpu_slowdown, 1.0)
        if varying_node and spec.node_factor is not None:
            server = rank // spec.gpus_per_node
            draw = servers.get(server)
            if draw is None:
                draw = spec.node_factor.sample(rng, samples)
                servers[server] = draw
            factor = factor * draw
        factors.append(factor)
    return factors


def _link_factors(
    replay: Replay, spec: VariabilitySpec, samples: int, rng: np.random.Generator
) -> list[Times]:
    """Per group, the slowdown of its collectives when one of its ~n links is degraded."""
    out: list[Times] = []
    degraded = spec.degraded_link_fraction > 0.0 and spec.degraded_bandwidth_factor < 1.0
    for size in replay.group_sizes:
        if degraded and size > 1:
            p_hit = 1.0 - (1.0 - spec.degraded_link_fraction) ** size
            hit = rng.random(samples) < p_hit
            out.append(np.where(hit, 1.0 / spec.degraded_bandwidth_factor, 1.0))
        else:
            out.append(1.0)
    return out


#: Per group kind, the representative's paths split by whether they passed a collective of
#: that kind: (time along unsynchronised paths, the same with its own durations at their
#: deterministic values, time along synchronised paths, the same with deterministic own
#: durations after the synchronisation). None: no such path reaches the event.
_Paths: TypeAlias = tuple[Times | None, Times | None, Times | None, Times | None]

_FROM_START: _Paths = (0.0, 0.0, None, None)


def _later(a: Times | None, b: Times | None) -> Times | None:
    """The later of two optional times."""
    if a is None:
        return b
    if b is None:
        return a
    return _max(a, b)


def _plus(a: Times | None, b: Times) -> Times | None:
    """An optional time later by ``b``."""
    return None if a is None else a + b


def _merge(a: _Paths, b: _Paths) -> _Paths:
    """Both sets of paths: the later of each component."""
    return (_later(a[0], b[0]), _later(a[1], b[1]), _later(a[2], b[2]), _later(a[3], b[3]))


def _copies_latest(
    paths: _Paths,
    copies: int,
    persistent: NDArray[np.float64],
    fresh: NDArray[np.float64],
    slow_fraction: float,
) -> Times | None:
    """Latest arrival of a representative's ``copies``, from uniforms ``persistent`` (drawn
    once per step and group kind) and ``fresh`` (drawn for this collective).

    A copy runs the representative's program (SPMD) with noise of its own. Along the paths
    that passed the group's last common collective it arrives at the base (that collective's
    end plus deterministic durations since) plus its own noise since, drawn as the
    representative's from the samples; along the paths that never passed one, at their
    deterministic time plus its own noise since the step start. The two are kept apart: the
    samples of one noise are one distribution, while a per-sample mix would let a copy's
    whole-step slowness add onto a synchronisation that already waited for it.

    The latest copy since the step start is drawn with the same uniform at every collective
    of the kind: its noise is cumulative, so the copy that is latest at one collective is
    latest at the next (a slow GPU stays slow); fresh draws would let the maximum over the
    step's collectives pick a late copy at one of them far more often than copies are late.
    Since a synchronisation the noise is a new segment, independent of the last one for
    kernel noise, so the latest copy is drawn afresh, except when the persistent draw falls in
    the top ``slow_fraction`` of the noise, where the samples with a slow GPU lie: a slow copy
    is slow in every segment. Both draws have the order statistic's distribution: the
    persistent one is in the top with probability 1 - (1 - f)^n, and otherwise the latest
    copy is the latest of n draws below it.
    """
    w_persistent = persistent ** (1.0 / copies)
    below = (1.0 - slow_fraction) * fresh ** (1.0 / copies)
    w_fresh = np.where(w_persistent > 1.0 - slow_fraction, w_persistent, below)
    latest: Times | None = None
    for noisy, base, w in ((paths[0], paths[1], w_persistent), (paths[2], paths[3], w_fresh)):
        if noisy is None or base is None:
            continue
        noise = noisy - base
        if isinstance(noise, np.ndarray) and float(np.ptp(noise)) > 0.0:
            latest = _later(latest, base + _order_statistic(noise, w))
    return latest


def run_samples(
    replay: Replay, spec: VariabilitySpec, samples: int, rng: np.random.Generator
) -> StepSamples:
    """Replay the step for ``samples`` samples at once.

    In rank-class mode every time also carries, per group kind, the representative's paths
    split by whether they passed a collective of that kind (``_Paths``): what a copy in a
    group of that kind shares with the representative, and where its own noise starts.
    """
    total = replay.total
    n_ranks = len(replay.ranks)
    gpu_factor = _rank_factors(replay, spec, samples, rng)
    link_factor = _link_factors(replay, spec, samples, rng)
    dists = {c: spec.distribution(c) for c in set(replay.kclass)}
    track = any(o.copies > 0 for o in replay.occurrences)
    start: list[_Paths] = [_FROM_START] * len(replay.sync_kinds)
    # Per group kind, the uniform that ranks the latest copy since the step start.
    persistent = [rng.random(samples) if track else np.zeros(0) for _ in replay.sync_kinds]
    slow_fraction = spec.slow_gpu_fraction if spec.has_slow_gpus else 0.0

    n_events = 2 * total + len(replay.occurrences)
    values: list[Times | None] = [None] * n_events
    tracks: list[list[_Paths] | None] = [None] * n_events
    refcount = list(replay.refcount)
    finish: list[Times] = [0.0] * n_ranks
    # Per rank, the paths (of the kind of its last collective) to its latest end: where the
    # tails of the rank class's copies start from.
    last_kind = [replay.occurrences[o].sync_kind if o >= 0 else -1 for o in replay.last_occ]
    finish_paths: list[_Paths] = [_FROM_START] * n_ranks
    class_time: dict[str, Times] = {}
    inputs = replay.inputs
    kind = replay.kind
    duration = replay.duration_ns
    owner = replay.owner
    kclass = replay.kclass
    shares_wait = replay.shares_wait

    def take(e: int) -> tuple[Times, list[_Paths]]:
        value = values[e]
        assert value is not None
        paths = tracks[e] or start
        refcount[e] -= 1
        if refcount[e] == 0:
            values[e] = None
            tracks[e] = None
        return value, paths

    def latest_of(events: list[int]) -> tuple[Times, list[_Paths]]:
        """The latest of several times, and per kind the latest of their paths."""
        t: Times = 0.0
        paths = start
        for i in events:
            v, vp = take(i)
            if track and vp is not paths:
                paths = vp if paths is start else list(map(_merge, vp, paths))
            t = _max(t, v)
        return t, paths

    for e in replay.order:
        ins = inputs[e]
        if e < total:  # issue: the latest of dependencies and the stream's previous node
            values[e], tracks[e] = latest_of(ins)
            continue
        if e < 2 * total:
            g = e - total
            k = kind[g]
            if k == K_COLL:
                begin = take(g)[0]
                t, paths = take(ins[1])
            elif k == K_RECV:
                issued = values[g]
                assert issued is not None
                begin = issued
                t, paths = latest_of(ins)
            else:
                begin, paths = take(g)
                dist = dists.get(kclass[g])
                factor: Times = 1.0 if dist is None else dist.sample(rng, samples)
                if k == K_COMP:
                    factor = factor * gpu_factor[owner[g]]
                d = duration[g]
                spent = d * factor
                t = begin + spent
                if track:
                    paths = [(_plus(u, spent), _plus(b, d), _plus(v, spent), _plus(s, d))
                             for u, b, v, s in paths]  # fmt: skip
            values[e], tracks[e] = t, paths
            p = owner[g]
            finish[p] = _max(finish[p], t)
            if track and last_kind[p] >= 0:
                finish_paths[p] = _merge(finish_paths[p], paths[last_kind[p]])
            cls = kclass[g]
            class_time[cls] = class_time.get(cls, 0.0) + (t - begin)
            continue
        occ = replay.occurrences[e - 2 * total]
        arrival, paths = latest_of(occ.members)
        ready = arrival
        sk = occ.sync_kind
        if occ.copies > 0 and track:
            copies_at = _copies_latest(
                paths[sk], occ.copies, persistent[sk], rng.random(samples), slow_fraction
            )
            if copies_at is not None:
                ready = np.maximum(arrival, copies_at)
        dist = dists.get(occ.op)
        factor = 1.0 if dist is None else dist.sample(rng, samples)
        cost = occ.cost_ns * (factor * link_factor[occ.gid])
        t = ready + cost
        if track:
            # This kind's copies are synchronised: every path restarts at the end. So are the
            # copies of kinds whose groups synchronise more often (TP peers): their own
            # groups of this kind wait for the same late replicas, coupled to these through
            # them, and end together. For other kinds the cost's noise and the wait for this
            # group's copies are their copies' own.
            passed = t - arrival
            paths = [
                (None, None, t, t)
                if j == sk or shares_wait[sk][j]
                else (
                    _plus(u, passed),
                    _plus(b, occ.cost_ns),
                    _plus(v, passed),
                    _plus(s, occ.cost_ns),
                )
                for j, (u, b, v, s) in enumerate(paths)
            ]
        values[e], tracks[e] = t, paths

    # A rank class stands for `multiplicity` ranks; its copies finish after the class's last
    # collective by i.i.d. tails, and the step ends with the slowest of them.
    step: Times = 0.0
    for p in range(n_ranks):
        done = finish[p]
        copies = replay.multiplicity[p] - 1
        if copies > 0 and isinstance(done, np.ndarray):
            fresh = rng.random(samples)
            if last_kind[p] < 0:  # no collective: copies run from the step start
                tails = _copies_latest((done, 0.0, None, None), copies, fresh, fresh, 0.0)
            else:
                tails = _copies_latest(
                    finish_paths[p], copies, persistent[last_kind[p]], fresh, slow_fraction
                )
            if tails is not None:
                done = np.maximum(done, tails)
        step = _max(step, done)
    step_s = np.broadcast_to(np.asarray(step, dtype=np.float64) * 1e-9, (samples,)).copy()
    classes = {
        c: np.broadcast_to(np.asarray(v, dtype=np.float64) * 1e-9 / n_ranks, (samples,)).copy()
        for c, v in class_time.items()
        if c != "noop"
    }
    return StepSamples(
        step_time_s=step_s,
        deterministic_step_time_s=replay.deterministic_ns * 1e-9,
        class_time_s=classes,
        per_rank=all(m == 1 for m in replay.multiplicity),
    )


def sample_steps(
    workload: Workload,
    system: System,
    variability: VariabilitySpec,
    *,
    samples: int = 1000,
    seed: int | np.random.Generator = 0,
    step: StepResult | None = None,
) -> StepSamples:
    """S samples of the step time of ``workload`` on ``system`` under ``variability``.

    ``step`` is the deterministic ``simulate(workload, system)`` result when already at hand.
    Same seed, same numbers.
    """
    if samples < 2:
        raise WorkloadError(f"samples={samples} must be at least 2")
    if step is None:
        step = simulate(workload, system)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    replay = build_replay(workload, system, step)
    return run_samples(replay, variability, samples, rng)
