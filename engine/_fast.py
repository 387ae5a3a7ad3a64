"""``fast_step``: a plan's step from the engine's own step costs and the schedule's recurrence.

The event-driven engine simulates every node of every rank class; a parallelism search needs
thousands of plans a second. This tier times each distinct pipeline step once, with the
engine itself (``models.stage_segment`` emits the step's nodes with the generator's code, the
engine compiles and runs them: the same compute costs, collective costs and overlap rules),
caches it across plans and stages that emit the same nodes on the same network costs, and
replaces the events between steps by the schedule's recurrence, in the semantics of the event
loop (``engine._sim``):

* a stage runs its steps in ``models.pipeline_schedule`` order; a step that receives starts
  at the later of its predecessor's end and the activation's arrival (receives are posted
  when the previous step ends and take no stream);
* a send leaves on the stage's ``pp`` stream, one at a time, once its step has ended, and
  arrives one point-to-point transfer later; with ``blocking_p2p`` the stage's next step
  waits for that arrival;
* the gradient reductions a step makes ready queue on their group kind's stream (``dp_cp``,
  ``edp``) from the instant their block's backward ends, and the optimizer waits for all of
  them, for the tied embedding's exchange between the first and last stage and for the last
  send; the distributed optimizer's gathers follow it.

It applies where the engine's scheduling is the default one (one slot per group kind's
stream, issue by node id, one compute stream) and to plans below ZeRO-3 (whose per-layer
weight gathers and gradient reductions share one stream across steps); ``FastTierError``
says when it does not, and ``sweep`` then uses the engine. A test corpus of random plans
keeps it within 2% of ``predict``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from trainsim.engine._errors import EngineError
from trainsim.engine._predict import default_granularity, plan_metrics
from trainsim.engine._program import Program, compile_program, stretch_beside
from trainsim.engine._result import StepMetrics
from trainsim.engine._sim import CollectiveCoster, run_programs
from trainsim.engine._simulate import system_coster
from trainsim.engine._system import System
from trainsim.models import (
    Granularity,
    ModelSpec,
    ParallelPlan,
    RankLayout,
    Segment,
    StageTail,
    pipeline_schedule,
    segment_key,
    segment_plan_key,
    stage_layer_ranges,
    stage_segment,
    stage_tail,
)

__all__ = ["FastStep", "FastTierError", "fast_step", "fast_tier_applies"]


class FastTierError(EngineError):
    """The fast tier cannot evaluate this system's scheduling: simulate it instead."""


@dataclass(frozen=True)
class FastStep:
    """A plan's step time from the fast tier, with the same throughput figures as ``predict``."""

    step_time_ns: float
    metrics: StepMetrics
    #: distinct pipeline steps the engine timed for this plan (0: all came from the cache)
    segments_simulated: int = 0

    @property
    def step_time_s(self) -> float:
        """Step time in seconds."""
        return self.step_time_ns * 1e-9

    @property
    def tokens_per_s(self) -> float:
        """Training tokens per second over the whole job."""
        return self.metrics.tokens_per_s(self.step_time_s)

    @property
    def mfu(self) -> float:
        """Model FLOPs utilization: model FLOP/s per GPU over the device's dense peak."""
        return self.metrics.mfu(self.step_time_s)


@dataclass(frozen=True)
class _Compiled:
    """A segment compiled once: its program, its groups' kinds and its ready nodes."""

    program: Program
    kind_of_pg: dict[str, str]
    #: (program index whose end readies them, ((group kind, bytes), ...))
    ready: tuple[tuple[int, tuple[tuple[str, int], ...]], ...]
    #: program index of the node the next step follows (-1: none)
    last: int
    first_layer_ready: int
    #: the distinct (operation, group kind, bytes) of its collectives: what its timing
    #: depends on besides the device
    distinct: tuple[tuple[str, str, int], ...]


@dataclass(frozen=True)
class _Timing:
    """A pipeline step timed by the engine: when the next step may follow it, when all of
    it (overlapped TP collectives included, what a send waits for) is done, and when its
    gradients are ready."""

    chain_ns: float
    duration_ns: float
    ready: tuple[tuple[float, tuple[tuple[str, int], ...]], ...]
    #: position in ``ready`` of the first layer's entry (-1: none)
    first_layer_ready: int = -1


#: segment key -> compiled segment, per system (device and scheduling decide the durations)
_COMPILED: dict[tuple[int, tuple[object, ...]], _Compiled] = {}
#: (system, segment key, collective costs) -> timing
_TIMINGS: dict[tuple[int, tuple[object, ...], tuple[float, ...]], _Timing] = {}
_SCHEDULES: dict[tuple[int, int, int, int], list[tuple[bool, int, int]]] = {}
_CACHE_LIMIT = 200_000


def fast_tier_applies(system: System) -> bool:
    """Whether ``fast_step`` reproduces the engine on ``system``'s scheduling."""
    sched = system.scheduling
    return (
        sched.compute_streams == 1
        and sched.comm_streams == 1
        and sched.comm_stream_per_kind
        and sched.overlap_comm
        and sched.issue_order == "node_id"
        and not sched.measured_comm
    )


def _schedule(p: int, stage: int, m: int, v: int) -> list[tuple[bool, int, int]]:
    key = (p, stage, m, v)
    order = _SCHEDULES.get(key)
    if order is None:
        order = [(ph == "fwd", mb, c) for ph, mb, c in pipeline_schedule(p, stage, m, v)]
        _SCHEDULES[key] = order
    return order


def _compile(system: System, segment: Segment, plan: ParallelPlan) -> _Compiled:
    sched = system.scheduling
    program = compile_program(
        0,
        segment.graph,
        system.device_spec,
        dtype=plan.dtype,
        duration_scale=system.duration_scale,
        min_op_ns=sched.min_op_ns,
        memory_bandwidth_gbps=system.host_memory_bandwidth_gbps,
    )
    index = {node_id: i for i, node_id in enumerate(program.ids)}
    ready = tuple((index[node], syncs) for node, syncs in segment.ready if node in index)
    last = index.get(segment.last, -1)
    kinds = segment.group_kinds
    distinct = tuple(
        dict.fromkeys((op, kinds[pg], size) for op, size, pg in program.collectives.values())
    )
    return _Compiled(program, dict(kinds), ready, last, segment.first_layer_ready, distinct)


def _time_segment(
    compiled: _Compiled,
    groups: dict[str, tuple[int, ...]],
    coster: CollectiveCoster,
    system: System,
) -> _Timing:
    """Run one segment through the engine's event loop on its stage's groups."""
    program = compiled.program
    names = sorted(groups)
    gid = {kind: i for i, kind in enumerate(names)}
    table = [groups[kind] for kind in names]
    kind_of_pg = compiled.kind_of_pg
    if program.beside:
        program = Program(**{**program.__dict__, "duration_ns": list(program.duration_ns)})

        def collective_ns(j: int) -> float:
            op, size, pg = program.collectives[j]
            kind = kind_of_pg[pg]
            return coster(op, size, groups[kind], kind)

        stretch_beside(program, system.device_spec, collective_ns)
    timeline = run_programs(
        {0: program},
        lambda _rank, pg: gid[kind_of_pg[pg]],
        table,
        coster,
        comm_stream_per_kind=True,
    )
    end = timeline.end_ns[0]
    ready = tuple((end[i], syncs) for i, syncs in compiled.ready)
    chain = end[compiled.last] if compiled.last >= 0 else 0.0
    return _Timing(chain, max(end, default=0.0), ready, compiled.first_layer_ready)


class _Evaluator:
    """One plan on one system: its stages' step timings, then the recurrence."""

    def __init__(
        self, model: ModelSpec, plan: ParallelPlan, system: System, granularity: Granularity
    ) -> None:
        self.model, self.plan, self.system, self.gran = model, plan, system, granularity
        self.coster = system_coster(system)
        self.layout = RankLayout(plan)
        # Every segment key names the model: a digest keeps the keys short to hash.
        digest = hashlib.sha256(model.model_dump_json().encode()).hexdigest()[:20]
        self.plan_key = segment_plan_key(digest, plan, granularity)
        self.reps = [self.layout.rank_of(pp=s) for s in range(plan.pp)]
        self.simulated = 0
        self.tails = [stage_tail(model, plan, s) for s in range(plan.pp)]
        self.grad_op = self.tails[0].grad_op
        self._group_cache: dict[tuple[int, str], tuple[int, ...]] = {}
        # A plan asks for the same few collectives on a stage's groups many times (every
        # segment, every layer's reduction): hashing the group for the shared coster each
        # time cost more than the recurrence.
        self._ns_cache: dict[tuple[int, str, str, int], float] = {}
        self._moe_cache: dict[tuple[int, int], bool] = {}

    def group(self, stage: int, kind: str) -> tuple[int, ...]:
        key = (stage, kind)
        group = self._group_cache.get(key)
        if group is None:
            group = self.layout.group_ranks(kind, self.reps[stage])
            self._group_cache[key] = group
        return group

    def timing(self, stage: int, fwd: bool, chunk: int) -> _Timing:
        """The step's timing: a chunk of like layers from its one- and two-layer segments
        (each further layer repeats the second's increment), any other chunk whole."""
        held = stage_layer_ranges(self.model, self.plan)[stage][chunk]
        if len(held) <= 2 or not self._like_layers(held):
            return self._segment_timing(stage, fwd, chunk, None)
        one = self._segment_timing(stage, fwd, chunk, 1)
        two = self._segment_timing(stage, fwd, chunk, 2)
        return _extrapolate(one, two, len(held))

    def _like_layers(self, layers: range) -> bool:
        """Whether ``layers`` are all dense or all MoE."""
        key = (layers.start, layers.stop)
        like = self._moe_cache.get(key)
        if like is None:
            is_moe = self.model.layer_is_moe
            like = self._moe_cache[key] = len({is_moe(layer) for layer in layers}) == 1
        return like

    def _segment_timing(self, stage: int, fwd: bool, chunk: int, layers: int | None) -> _Timing:
        plan, system = self.plan, self.system
        phase = "fwd" if fwd else "bwd"
        key = segment_key(self.plan_key, self.model, plan, stage, phase, chunk, layers)
        ckey = (id(system), key)
        compiled = _COMPILED.get(ckey)
        if compiled is None:
            segment = stage_segment(
                self.model, plan, stage, phase, chunk, granularity=self.gran, layers=layers
            )
            compiled = _COMPILED[ckey] = _compile(system, segment, plan)
        kind_of_pg = compiled.kind_of_pg
        costs = tuple(
            self.collective_ns(stage, op, kind, size) for op, kind, size in compiled.distinct
        )
        tkey = (id(system), key, costs)
        timing = _TIMINGS.get(tkey)
        if timing is None:
            groups = {kind: self.group(stage, kind) for kind in set(kind_of_pg.values())}
            timing = _TIMINGS[tkey] = _time_segment(compiled, groups, self.coster, system)
            self.simulated += 1
        return timing

    def send_ns(self, stage: int, peer: int, tail: StageTail) -> float:
        """One pipeline send from ``stage`` to ``peer`` (mod pp: the interleaved schedule's
        last stage sends to the first; 0 without pipeline stages)."""
        if self.plan.pp == 1:
            return 0.0
        pair = (self.reps[stage], self.reps[peer % self.plan.pp])
        return self.coster("send_recv", tail.activation_bytes, pair, "pp")

    def collective_ns(self, stage: int, op: str, kind: str, size: int) -> float:
        """One collective on ``stage``'s ``kind`` group, as the engine costs it (ns)."""
        key = (stage, op, kind, size)
        ns = self._ns_cache.get(key)
        if ns is None:
            ns = 0.0 if size <= 0 else self.coster(op, size, self.group(stage, kind), kind)
            self._ns_cache[key] = ns
        return ns

    def step_ns(self) -> float:
        plan = self.plan
        p, v, m = plan.pp, plan.vpp, plan.num_micro_batches
        last = p * v - 1
        blocking = plan.blocking_p2p
        tails = self.tails
        timings = [
            {(fwd, c): self.timing(s, fwd, c) for fwd in (True, False) for c in range(v)}
            for s in range(p)
        ]
        send_ns = [
            (self.send_ns(s, s + 1, tails[s]), self.send_ns(s, s - 1, tails[s])) for s in range(p)
        ]
        states = [_Stage() for _ in range(p)]
        orders = [_schedule(p, s, m, v) for s in range(p)]
        arrivals: dict[tuple[bool, int, int], float] = {}
        remaining = sum(len(o) for o in orders)
        while remaining:
            progressed = False
            for s in range(p):
                order, st, n = orders[s], states[s], len(orders[s])
                i = st.next
                fwd_ns, bwd_ns = send_ns[s]
                stage_timings = timings[s]
                while i < n:
                    fwd, mb, chunk = order[i]
                    g = chunk * p + s
                    start = st.chain
                    if g > 0 if fwd else g < last:
                        arrival = arrivals.pop((fwd, mb, g), None)
                        if arrival is None:
                            break
                        if arrival > start:
                            start = arrival
                    if blocking and st.block > start:
                        start = st.block
                    timing = stage_timings[(fwd, chunk)]
                    if not fwd and mb == m - 1:
                        for offset, syncs in timing.ready:
                            if plan.overlap_grad_reduce:
                                self._reduce(st, s, start + offset, syncs)
                            else:  # issued after the whole backward, in this order
                                st.deferred.append(syncs)
                    st.chain = start + timing.chain_ns
                    st.outstanding = start + timing.duration_ns
                    final = i == n - 1
                    if final:
                        for syncs in st.deferred:
                            self._reduce(st, s, st.chain, syncs)
                    if g < last if fwd else g > 0:
                        ns = fwd_ns if fwd else bwd_ns
                        arrive = self._send(st, s, tails[s], ns, final, blocking)
                        arrivals[(fwd, mb, g + 1 if fwd else g - 1)] = arrive
                    elif final:
                        self._exchange(st, s, tails[s], st.outstanding)
                    i += 1
                    remaining -= 1
                    progressed = True
                st.next = i
            if not progressed:
                raise EngineError(
                    f"fast tier: the pipeline schedule of pp={p} vpp={v} with {m} micro-batches "
                    "does not make progress"
                )
        return max(self._finish(states, tails, s) for s in range(p))

    def _reduce(
        self, st: _Stage, stage: int, ready: float, syncs: tuple[tuple[str, int], ...]
    ) -> None:
        """Queue one block's gradient reductions on their streams from ``ready`` on."""
        for kind, size in syncs:
            ns = self.collective_ns(stage, self.grad_op, kind, size)
            if ns:
                busy = st.streams.get(kind, 0.0)
                st.streams[kind] = (busy if busy > ready else ready) + ns

    def _exchange_ns(self, stage: int, tail: StageTail) -> float:
        peer = self.plan.pp - 1 - stage
        pair = (self.reps[stage], self.reps[peer])
        return self.coster("send_recv", tail.exchange_bytes, pair, "pp")

    def _exchange(self, st: _Stage, stage: int, tail: StageTail, tp_done: float) -> None:
        """The tied embedding's exchange send, after the stage's reductions (and everything
        its last send or outstanding TP collectives hold)."""
        if not tail.exchange_bytes:
            return
        ready = max([st.chain, st.block, tp_done, *st.streams.values()])
        leave = ready if ready > st.pp_free else st.pp_free
        st.exchange_arrival = st.pp_free = leave + self._exchange_ns(stage, tail)

    def _send(
        self, st: _Stage, stage: int, tail: StageTail, ns: float, final: bool, blocking: bool
    ) -> float:
        """A pipeline send on the ``pp`` stream; returns its arrival.

        The stream takes the lowest-numbered ready send when it frees: the last step's send
        comes before the embedding exchange, unless the exchange is ready while the send
        still waits for its step's overlapped TP collectives.
        """
        ready = st.outstanding
        if final and tail.exchange_bytes and not blocking:
            ex_ready = max([st.chain, *st.streams.values()])
            ex_leave = ex_ready if ex_ready > st.pp_free else st.pp_free
            if ex_leave < ready:
                st.exchange_arrival = st.pp_free = ex_leave + self._exchange_ns(stage, tail)
                arrive = (ready if ready > st.pp_free else st.pp_free) + ns
                st.pp_free = arrive
                return arrive
        leave = ready if ready > st.pp_free else st.pp_free
        arrive = st.pp_free = leave + ns
        if blocking:
            st.block = arrive
        if final and not st.exchange_arrival:
            self._exchange(st, stage, tail, 0.0)
        return arrive

    def _finish(self, states: list[_Stage], tails: list[StageTail], stage: int) -> float:
        """When ``stage`` ends: its optimizer step after everything it waits for, then the
        distributed optimizer's gathers."""
        st, tail = states[stage], tails[stage]
        device, sched = self.system.device_spec, self.system.scheduling
        start = max([st.chain, st.block, st.outstanding, *st.streams.values()])
        if tail.exchange_bytes:
            peer = states[self.plan.pp - 1 - stage]
            start = max(start, st.exchange_arrival, peer.exchange_arrival)
        opt_ns = device.op_time_us(0, tail.optimizer_bytes, self.plan.dtype) * 1000.0
        done = start + max(opt_ns, sched.min_op_ns)
        end = max([done, st.pp_free, *st.streams.values()])
        for kind, size in tail.param_gathers:
            ns = self.collective_ns(stage, "all_gather", kind, size)
            if ns:
                busy = st.streams.get(kind, 0.0)
                end = max(end, (busy if busy > done else done) + ns)
        return end


@dataclass
class _Stage:
    """Where one stage stands in the recurrence (times in ns)."""

    next: int = 0  # index of its next step in the schedule
    chain: float = 0.0  # end of the node its next step follows
    outstanding: float = 0.0  # end of its last step's overlapped TP collectives
    pp_free: float = 0.0  # when its ``pp`` stream is free (the last send's arrival)
    block: float = 0.0  # with blocking exchanges, what its next step waits for
    exchange_arrival: float = 0.0  # arrival of its embedding exchange send (0: none yet)
    streams: dict[str, float] = field(default_factory=dict)  # reduction streams' ends
    #: reductions not overlapped with the backward, issued after it in this order
    deferred: list[tuple[tuple[str, int], ...]] = field(default_factory=list)


def _extrapolate(one: _Timing, two: _Timing, layers: int) -> _Timing:
    """A chunk of ``layers`` like layers from its one- and two-layer timings.

    Every layer after the first follows the one before it exactly as the second follows the
    first, so each adds the second's increment; the gradients of its layers become ready one
    increment apart, and what comes after them (the embedding's) that much later.
    """
    step = two.chain_ns - one.chain_ns
    extra = (layers - 1) * step
    ready = one.ready
    at = one.first_layer_ready
    if at >= 0:
        first, syncs = ready[at]
        ready = (
            *ready[:at],
            *((first + k * step, syncs) for k in range(layers)),
            *((offset + extra, rest) for offset, rest in ready[at + 1 :]),
        )
    return _Timing(one.chain_ns + extra, one.duration_ns + extra, ready, at)


def _trim_caches() -> None:
    if len(_TIMINGS) > _CACHE_LIMIT:
        _TIMINGS.clear()
    if len(_COMPILED) > _CACHE_LIMIT // 10:
        _COMPILED.clear()
    if len(_SCHEDULES) > _CACHE_LIMIT // 10:
        _SCHEDULES.clear()


def fast_step(
    model: ModelSpec,
    plan: ParallelPlan,
    system: System,
    *,
    granularity: Granularity | None = None,
) -> FastStep:
    """The step time of ``plan`` on ``system`` from the fast tier (``predict``'s figure within
    the agreement corpus's 2%), at ``default_granularity(plan)`` unless given.

    Raises ``FastTierError`` when the system's scheduling is not the one the tier follows or
    the plan is ZeRO-3, and what ``predict`` raises for a plan or precision that cannot run.
    """
    if not fast_tier_applies(system):
        raise FastTierError(
            "the fast tier follows the default scheduling (one stream per group kind, issue "
            "by node id, one compute stream); simulate this system with predict"
        )
    if plan.zero_stage >= 3:
        raise FastTierError(
            "the fast tier does not time ZeRO-3 plans: their per-layer weight gathers share the "
            "data-parallel stream with the gradient reductions across pipeline steps; simulate "
            "them with predict"
        )
    metrics = plan_metrics(model, plan, system)
    gran = granularity or default_granularity(plan)
    _trim_caches()
    evaluator = _Evaluator(model, plan, system, gran)
    step = evaluator.step_ns()
    return FastStep(step, metrics, segments_simulated=evaluator.simulated)
