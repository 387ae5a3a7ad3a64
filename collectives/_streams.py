"""ASTRA-sim's stream scheduler: how the chunks of one collective share the dimension queues.

ASTRA-sim cuts a collective into streams (dataset splits) and gives every network dimension
one queue (``num-queues-per-dim`` defaults to 1), which both the reduce-scatter and the
all-gather phase along that dimension use. A queue runs at most ``active-chunks-per-dimension``
streams at once; the others wait in priority order. ``LIFO`` gives each new stream a higher
priority than the previous one, so a stream that reaches a queue overtakes the older streams
waiting there (``Sys::get_priority``, ``Sys::insert_stream``): after chunk 0 reduce-scatters
along dimension 0, chunk 3 goes next, and chunk 0's all-gather along dimension 0 waits behind
every chunk still to reduce-scatter there. ``FIFO`` reverses the priorities; ``EXPLICIT``
gives all streams of one collective the same one (arrival order).

The scheduler is generic over what a "time" is: a float for the closed form, a per-node
array for the schedule walk. Queue decisions use one scalar per time (the latest node), which
is exact when every rank runs the same steps, as ASTRA-sim's symmetric collectives do.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

__all__ = ["SchedulingPolicy", "run_streams"]

SchedulingPolicy = Literal["LIFO", "FIFO", "EXPLICIT"]

T = TypeVar("T")


@dataclass
class _Queue(Generic[T]):
    """One dimension's queue: streams in service order, and the values of its free slots."""

    waiting: list[int] = field(default_factory=list)
    free_slots: list[T] = field(default_factory=list)


def run_streams(
    num_streams: int,
    phase_queues: Sequence[int],
    active: int,
    policy: SchedulingPolicy,
    run: Callable[[int, int, T], T],
    zero: T,
    join: Callable[[T, T], T],
    when: Callable[[T], float],
) -> list[list[T]]:
    """Run every stream through its phases under ASTRA-sim's queue discipline.

    ``phase_queues[p]`` is the queue (network dimension) phase ``p`` waits in; ``run(s, p,
    start)`` executes phase ``p`` of stream ``s`` from ``start`` and returns when it is done;
    ``join`` is the later of two times and ``when`` the scalar a time is ordered by.
    Returns ``done[s][p]``.
    """
    num_phases = len(phase_queues)
    done: list[list[T]] = [[zero] * num_phases for _ in range(num_streams)]
    if num_phases == 0 or num_streams == 0:
        return done
    priority = [_priority(s, policy) for s in range(num_streams)]
    queues: dict[int, _Queue[T]] = {
        q: _Queue(free_slots=[zero] * active) for q in dict.fromkeys(phase_queues)
    }
    phase = [-1] * num_streams
    running = [False] * num_streams
    ready: list[T] = [zero] * num_streams
    events: list[tuple[float, int, int]] = []
    sequence = 0

    def insert(queue: _Queue[T], s: int) -> None:
        # Sys::insert_stream: past the running streams and those of at least its priority.
        i = 0
        while i < len(queue.waiting):
            other = queue.waiting[i]
            if running[other] or priority[other] >= priority[s]:
                i += 1
                continue
            break
        queue.waiting.insert(i, s)

    def fill(q: int) -> None:
        nonlocal sequence
        queue = queues[q]
        for s in queue.waiting:
            if not queue.free_slots:
                return
            if running[s]:
                continue
            running[s] = True
            start = join(ready[s], queue.free_slots.pop(0))
            finished = run(s, phase[s], start)
            done[s][phase[s]] = finished
            heapq.heappush(events, (when(finished), sequence, s))
            sequence += 1

    def proceed(s: int) -> None:
        # Sys::proceed_to_next_vnet_baseline: leave the old queue, join the next one, then
        # let the old queue start its next stream before the new queue is looked at.
        previous = -1
        if phase[s] >= 0:
            previous = phase_queues[phase[s]]
            queue = queues[previous]
            queue.waiting.remove(s)
            queue.free_slots.append(done[s][phase[s]])
            running[s] = False
            ready[s] = done[s][phase[s]]
        phase[s] += 1
        if phase[s] < num_phases:
            insert(queues[phase_queues[phase[s]]], s)
        if previous >= 0:
            fill(previous)
        if phase[s] < num_phases:
            fill(phase_queues[phase[s]])

    for s in range(num_streams):
        proceed(s)
    while events:
        _, _, s = heapq.heappop(events)
        proceed(s)
    return done


def _priority(stream: int, policy: SchedulingPolicy) -> int:
    """Sys::get_priority: a counter that counts up (LIFO), down (FIFO) or stays (EXPLICIT)."""
    if policy == "LIFO":
        return stream
    if policy == "FIFO":
        return -stream
    return 0
