"""Sample-vectorized stochastic execution: one pass over a step carries S Monte Carlo samples.

The deterministic engine runs once and fixes the issue order of every stream (and the
matching of collectives and sends). The step is then replayed with every time an array of S
samples: a node starts at the latest of its dependencies' ends and the end of the node before
it on its stream; it ends after its sampled duration (deterministic time x a relative factor
drawn from ``VariabilitySpec``). A collective ends after its group's last arrival plus its
sampled cost. Members of the group that are simulated are waited for explicitly (per-rank
mode). Members that are not (rank-class mode) are SPMD copies of a representative: a copy
arrives when the representative does, less the representative's *noise* (sampled minus
deterministic time along its critical path since the last collective of the group's kind)
plus a noise of its own drawn from the same distribution. The latest of n i.i.d. copies is an
order statistic, P(max <= t) = F(t)^n, drawn as F^-1(U^(1/n)) on the empirical F of the S
samples of the representative's noise.

Approximations: the issue order on a stream is the deterministic one even when sampled times
would reorder ready nodes; with k streams per kind a node waits for the node issued k before
it; a copy follows the representative's critical path; copies are drawn afresh at every
collective, so a persistently slow copy GPU is right on average but not in its correlation
over the step (the representative's own slowness is persistent); the wait for a kind's
copies counts as common to the copies of kinds that synchronise more often (TP peers wait for
the same late data-parallel replicas) and as their own noise otherwise; a degraded link slows
a collective's whole cost, not its bandwidth term only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

from engine._errors import WorkloadError
from engine._program import K_COLL, K_COMP, K_RECV
from engine._replay import Replay, build_replay
from engine._result import StepResult
from engine._simulate import simulate
from engine._system import System
from engine._variability import VariabilitySpec
from engine._workload import Workload

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


def _max_of_copies(
    local: NDArray[np.float64], copies: int, rng: np.random.Generator, size: int
) -> NDArray[np.float64]:
    """``size`` draws of the largest of ``copies`` i.i.d. values distributed as ``local``.

    Inverse transform on the empirical CDF: P(max <= t) = F(t)^n, so max = F^-1(U^(1/n)).
    """
    ordered = np.sort(local)
    n = ordered.size
    u = rng.random(size) ** (1.0 / copies)
    index = np.minimum((u * n).astype(np.int64), n - 1)
    result: NDArray[np.float64] = ordered[index]
    return result


def _max(a: Times, b: Times) -> Times:
    """The later of two times, staying a float while both are floats."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.maximum(a, b)
    return a if a >= b else b


def _pick(later: bool | NDArray[np.bool_], a: Times, b: Times) -> Times:
    """Per sample, ``a`` where ``later`` holds, else ``b``."""
    if isinstance(later, np.ndarray):
        if isinstance(a, float) and isinstance(b, float) and a == b:
            return a
        return np.where(later, a, b)
    return a if later else b


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
            slow = rng.random(samples) < spec.slow_gpu_fraction
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


def _copies_latest(
    arrival: Times, noise: Times, copies: int, rng: np.random.Generator, samples: int
) -> Times | None:
    """Latest arrival of a representative's ``copies`` at a collective, or None if no later.

    A copy runs the representative's program (SPMD) with noise of its own: its arrival is
    the representative's minus the representative's noise since the group's last common
    collective plus the copy's, drawn i.i.d. from the same distribution (order statistics
    on the samples of the representative's noise).
    """
    if not isinstance(noise, np.ndarray) or float(np.ptp(noise)) <= 0.0:
        return None
    return arrival - noise + _max_of_copies(noise, copies, rng, samples)


def run_samples(
    replay: Replay, spec: VariabilitySpec, samples: int, rng: np.random.Generator
) -> StepSamples:
    """Replay the step for ``samples`` samples at once.

    In rank-class mode every time also carries, per group kind, the noise (sampled minus
    deterministic time) accumulated along its critical path since the last collective of
    that kind: what a copy in a group of that kind would have drawn differently.
    """
    total = replay.total
    n_ranks = len(replay.ranks)
    gpu_factor = _rank_factors(replay, spec, samples, rng)
    link_factor = _link_factors(replay, spec, samples, rng)
    dists = {c: spec.distribution(c) for c in set(replay.kclass)}
    track = any(o.copies > 0 for o in replay.occurrences)
    zeros: list[Times] = [0.0] * len(replay.sync_kinds)

    n_events = 2 * total + len(replay.occurrences)
    values: list[Times | None] = [None] * n_events
    noises: list[list[Times] | None] = [None] * n_events
    refcount = list(replay.refcount)
    finish: list[Times] = [0.0] * n_ranks
    class_time: dict[str, Times] = {}
    inputs = replay.inputs
    kind = replay.kind
    duration = replay.duration_ns
    owner = replay.owner
    kclass = replay.kclass
    shares_wait = replay.shares_wait

    def take(e: int) -> tuple[Times, list[Times]]:
        value = values[e]
        assert value is not None
        noise = noises[e] or zeros
        refcount[e] -= 1
        if refcount[e] == 0:
            values[e] = None
            noises[e] = None
        return value, noise

    def latest_of(events: list[int]) -> tuple[Times, list[Times]]:
        """The latest of several times, with the noise along the latest of them."""
        t: Times = 0.0
        noise = zeros
        for i in events:
            v, vn = take(i)
            if track and vn is not noise:
                later = v >= t
                noise = [_pick(later, a, b) for a, b in zip(vn, noise, strict=True)]
            t = _max(t, v)
        return t, noise

    for e in replay.order:
        ins = inputs[e]
        if e < total:  # issue: the latest of dependencies and the stream's previous node
            values[e], noises[e] = latest_of(ins)
            continue
        if e < 2 * total:
            g = e - total
            k = kind[g]
            if k == K_COLL:
                begin = take(g)[0]
                t, noise = take(ins[1])
            elif k == K_RECV:
                issued = values[g]
                assert issued is not None
                begin = issued
                t, noise = latest_of(ins)
            else:
                begin, noise = take(g)
                dist = dists.get(kclass[g])
                factor: Times = 1.0 if dist is None else dist.sample(rng, samples)
                if k == K_COMP:
                    factor = factor * gpu_factor[owner[g]]
                spent = duration[g] * factor
                t = begin + spent
                if track and isinstance(spent, np.ndarray):
                    extra = spent - duration[g]
                    noise = [n + extra for n in noise]
            values[e], noises[e] = t, noise
            p = owner[g]
            finish[p] = _max(finish[p], t)
            cls = kclass[g]
            class_time[cls] = class_time.get(cls, 0.0) + (t - begin)
            continue
        occ = replay.occurrences[e - 2 * total]
        arrival, noise = latest_of(occ.members)
        ready = arrival
        sk = occ.sync_kind
        if occ.copies > 0 and track:
            copies_at = _copies_latest(arrival, noise[sk], occ.copies, rng, samples)
            if copies_at is not None:
                ready = np.maximum(arrival, copies_at)
        dist = dists.get(occ.op)
        factor = 1.0 if dist is None else dist.sample(rng, samples)
        cost = occ.cost_ns * (factor * link_factor[occ.gid])
        t = ready + cost
        if track:
            # The cost's noise is every other kind's own; the wait for this group's copies
            # is too, unless the other kind's groups synchronise more often (TP peers wait
            # for the same late data-parallel replicas as the representative does).
            cost_noise = cost - occ.cost_ns
            wait = ready - arrival
            noise = [
                0.0 if j == sk else n + cost_noise + (0.0 if shares_wait[sk][j] else wait)
                for j, n in enumerate(noise)
            ]
        values[e], noises[e] = t, noise

    # A rank class stands for `multiplicity` ranks; its copies finish after the class's last
    # collective by i.i.d. tails, and the step ends with the slowest of them.
    step: Times = 0.0
    for p in range(n_ranks):
        done = finish[p]
        copies = replay.multiplicity[p] - 1
        o = replay.last_occ[p]
        if copies > 0 and isinstance(done, np.ndarray):
            synced = values[2 * total + o] if o >= 0 else 0.0
            assert synced is not None
            tail = done - synced
            if float(np.ptp(tail)) > 0.0:
                done = np.maximum(done, synced + _max_of_copies(tail, copies, rng, samples))
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
