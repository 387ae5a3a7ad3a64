"""Execution of schedules in time: the dependency-graph walk both link-level models share.

Transfers are processed step by step with numpy. A rank starts phase ``p`` of split ``s`` once
it finished phase ``p-1`` of split ``s`` and the split before it in that dimension's queue
left (ASTRA-sim's stream scheduler, ``_streams``). A transfer leaves when its sender has
started the phase and its dependencies have landed; on arrival the receiver spends the
endpoint delay plus the reduction time. The congestion-unaware wire time is
``sum(latency) + bytes / min(bandwidth)`` over the route; the congestion-aware one stores and
forwards hop by hop, each link carrying one message at a time in step order.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trainsim.topology import Topology

from ._local import FloatArray, IntArray
from ._schedule import Schedule
from ._streams import run_streams
from ._system import SystemConfig

__all__ = ["Evaluation", "Routes", "evaluate", "routes_for"]


@dataclass(frozen=True, eq=False)
class Routes:
    """Per transfer: the links of its route (padded with -1), and the link figures (ns units)."""

    links: IntArray
    hops: IntArray
    latency_sum_ns: FloatArray
    min_bw_bytes_per_ns: FloatArray
    link_bw: FloatArray
    link_latency_ns: FloatArray


@dataclass(frozen=True)
class Evaluation:
    """Outcome of running a schedule: total time, per-node finish, per-link busy time."""

    time_ns: float
    node_finish_ns: FloatArray
    link_busy_ns: FloatArray


_LINK_ARRAYS: weakref.WeakKeyDictionary[Topology, tuple[FloatArray, FloatArray]] = (
    weakref.WeakKeyDictionary()
)


def _link_arrays(topology: Topology) -> tuple[FloatArray, FloatArray]:
    """Per-link bandwidth (GB/s) and latency (ns) in edge order, built once per topology.

    A 16,384-NPU cluster has millions of links: rebuilding these per collective dominated
    the cost of point-to-point and irregular collectives.
    """
    cached = _LINK_ARRAYS.get(topology)
    if cached is None:
        edges = list(topology.graph.edges(data=True))
        link_bw = np.asarray([float(d["bandwidth_gbps"]) for _, _, d in edges])
        link_lat = np.asarray([float(d["latency_us"]) * 1000.0 for _, _, d in edges])
        cached = (link_bw, link_lat)
        _LINK_ARRAYS[topology] = cached
    return cached


def routes_for(schedule: Schedule, topology: Topology) -> Routes:
    """Route every transfer of ``schedule`` over ``topology`` (one lookup per node pair)."""
    link_bw, link_lat = _link_arrays(topology)
    span = int(max(schedule.src.max(initial=0), schedule.dst.max(initial=0))) + 1
    keys = schedule.src * span + schedule.dst
    if span * span <= 1 << 24:
        # Node pairs fit a dense table: mark and rank them instead of sorting millions of keys.
        present = np.zeros(span * span, dtype=bool)
        present[keys] = True
        unique_keys = np.flatnonzero(present)
        inverse = (np.cumsum(present) - 1)[keys]
    else:
        unique_keys, inverse = np.unique(keys, return_inverse=True)
        inverse = inverse.reshape(-1)
    unique = np.stack([unique_keys // span, unique_keys % span], axis=1)
    paths = []
    for a, b in unique.tolist():
        nodes = topology.path(a, b)
        paths.append([topology.link_id(u, v) for u, v in itertools.pairwise(nodes)])
    width = max((len(p) for p in paths), default=1)
    table = np.full((len(paths), max(width, 1)), -1, dtype=np.int64)
    for i, p in enumerate(paths):
        table[i, : len(p)] = p
    hops_u = np.asarray([len(p) for p in paths], dtype=np.int64)
    valid = table >= 0
    lat_u = np.where(valid, link_lat[np.maximum(table, 0)], 0.0).sum(axis=1)
    bw_u = np.where(valid, link_bw[np.maximum(table, 0)], np.inf).min(axis=1)
    return Routes(
        links=table[inverse],
        hops=hops_u[inverse],
        latency_sum_ns=lat_u[inverse],
        min_bw_bytes_per_ns=bw_u[inverse],
        link_bw=link_bw,
        link_latency_ns=link_lat,
    )


def evaluate(
    schedules: Sequence[Schedule],
    routes: Sequence[Routes],
    system: SystemConfig,
    *,
    congestion: bool,
    num_nodes: int,
    record: list[tuple[IntArray, FloatArray, FloatArray]] | None = None,
) -> Evaluation:
    """Run one schedule per dataset split (they may differ, e.g. alternating trees).

    With ``record`` (congestion-aware only), every link occupation is appended to it as
    ``(link ids, start times, end times)`` arrays, one entry per step and hop.
    """
    endpoint = system.endpoint_delay_ns
    num_links = routes[0].link_bw.size if routes else 0
    link_free = np.zeros(num_links)
    link_busy = np.zeros(num_links)
    finish = np.zeros(num_nodes)
    zeros = np.zeros(num_nodes)
    completions = [np.zeros(s.num_transfers + 1) for s in schedules]
    bounds = [
        (
            np.searchsorted(s.phase, np.arange(len(s.phases) + 1)),
            np.searchsorted(s.step, np.arange(s.num_steps + 1)),
            np.asarray([system.reduce_time_ns(1.0)]) * s.compute_bytes,
        )
        for s in schedules
    ]

    def run_phase(split: int, ph: int, start: FloatArray) -> FloatArray:
        sched, route, completion = schedules[split], routes[split], completions[split]
        phase_bounds, step_bounds, reduce_ns = bounds[split]
        node_done: FloatArray = start.copy()
        lo, hi = int(phase_bounds[ph]), int(phase_bounds[ph + 1])
        if lo == hi:
            return node_done
        first_step, last_step = int(sched.step[lo]), int(sched.step[hi - 1])
        for st in range(first_step, last_step + 1):
            a, b = int(step_bounds[st]), int(step_bounds[st + 1])
            if a == b:
                continue
            src = sched.src[a:b]
            dst = sched.dst[a:b]
            ready = start[src] + endpoint
            deps = sched.deps[a:b]
            if deps.size:
                ready = np.maximum(ready, completion[deps].max(axis=1))
            size = sched.transfer_bytes[a:b]
            if congestion:
                arrival = _store_and_forward(ready, size, route, a, b, link_free, link_busy, record)
            else:
                arrival = ready + route.latency_sum_ns[a:b] + size / route.min_bw_bytes_per_ns[a:b]
            landed = np.maximum(arrival, start[dst]) + endpoint + reduce_ns[a:b]
            completion[a:b] = landed
            np.maximum.at(node_done, dst, landed)
            np.maximum.at(node_done, src, ready)
        np.maximum(finish, node_done, out=finish)
        return node_done

    if schedules:
        # Every split has the same phases (variants differ only in their trees): one queue
        # per network dimension, as ASTRA-sim's scheduler has.
        run_streams(
            len(schedules),
            [ph.dim for ph in schedules[0].phases],
            system.active_chunks_per_dimension,
            system.scheduling_policy,
            run_phase,
            zeros,
            _later,
            _latest,
        )
    return Evaluation(float(finish.max()) if finish.size else 0.0, finish, link_busy)


def _later(a: FloatArray, b: FloatArray) -> FloatArray:
    """Per node, the later of two times."""
    out: FloatArray = np.maximum(a, b)
    return out


def _latest(t: FloatArray) -> float:
    """The time the last node gets there (what the queue decisions are ordered by)."""
    return float(t.max()) if t.size else 0.0


def _store_and_forward(
    ready: FloatArray,
    size: FloatArray,
    route: Routes,
    a: int,
    b: int,
    link_free: FloatArray,
    link_busy: FloatArray,
    record: list[tuple[IntArray, FloatArray, FloatArray]] | None = None,
) -> FloatArray:
    """Arrival times of one step's transfers, hop by hop, links serving one message at a time."""
    now = ready.copy()
    hops = route.hops[a:b]
    links_all = route.links[a:b]
    for h in range(int(hops.max()) if hops.size else 0):
        active = np.nonzero(hops > h)[0]
        links = links_all[active, h]
        tx = size[active] / route.link_bw[links]
        arrive = np.maximum(now[active], link_free[links])
        if np.bincount(links, minlength=1).max() <= 1:
            # No two messages want the same link at this hop: nothing to serialise.
            done_fast = arrive + tx
            link_free[links] = done_fast
            link_busy[links] += tx
            if record is not None:
                record.append((links.copy(), arrive.copy(), done_fast.copy()))
            now[active] = done_fast + route.link_latency_ns[links]
            continue
        order = np.lexsort((arrive, links))
        ls, arr, txs = links[order], arrive[order], tx[order]
        cum = np.cumsum(txs)
        key = arr - (cum - txs)
        new_seg = np.ones(ls.size, dtype=bool)
        new_seg[1:] = ls[1:] != ls[:-1]
        seg = np.cumsum(new_seg) - 1
        span = float(key.max() - key.min()) + 1.0 if key.size else 1.0
        # A running max that restarts per link: later links are lifted above earlier ones.
        best = np.maximum.accumulate(key + seg * span) - seg * span
        done = best + cum
        last = np.ones(ls.size, dtype=bool)
        last[:-1] = ls[1:] != ls[:-1]
        link_free[ls[last]] = done[last]
        np.add.at(link_busy, ls, txs)
        if record is not None:
            record.append((ls.copy(), done - txs, done.copy()))
        out = np.empty_like(done)
        out[order] = done + route.link_latency_ns[ls]
        now[active] = out
    result: FloatArray = now
    return result
