"""GPU-side ordering read from a Kineto trace: stream order, cross-stream waits, host syncs.

The host thread issues kernels and collectives without waiting for them. What orders GPU
work is the stream (kernels on one stream run in launch order), ``cudaStreamWaitEvent``
(the next work launched on the waiting stream, from any thread, waits for work already
launched on other streams: this is how a collective waits for the kernel that produced its
input, and how the compute stream waits for a collective's result; DDP calls it from the
autograd thread for the main thread's optimizer kernels), and blocking calls on the host
(``cudaStreamSynchronize``, ``cudaDeviceSynchronize``, ``cudaEventSynchronize``, a
synchronous ``cudaMemcpy``; ``.item()`` and copies to the host end in one of them).

Kineto does not say which stream waits, nor for which event, so the rule is: the waiting
stream is the one the calling thread launches to next (else the compute stream it launched
to last: the wait after a collective is for the thread's current stream, not NCCL's), the
candidates are
the last work launched on each other stream before the call, and a candidate is kept only
where the timeline allows it (it ended before the waiting work started, or before the
synchronising call returned). A stream sync waits for one stream: the one the same thread
last launched to (a copy to the host and its sync), else the streams still running when it
was called; when none was, the stream that finished last (the sync returned at once, but
the ordering it enforces still holds).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from trainsim.chakra_et.convert._kineto import KinetoEvent, KinetoTrace

__all__ = ["CLOCK_SLACK_US", "GpuSchedule", "SyncPoint", "gpu_schedule", "is_comm_kernel"]

#: GPU timestamps of one device share a clock; this absorbs their rounding only.
CLOCK_SLACK_US = 1.0
_WAIT_CALLS = frozenset({"cudaStreamWaitEvent", "hipStreamWaitEvent"})
_DEVICE_SYNC_CALLS = frozenset({"cudaDeviceSynchronize", "hipDeviceSynchronize"})


@dataclass
class SyncPoint:
    """A blocking runtime call on a host thread and the GPU events (indices) it waited for."""

    call: KinetoEvent
    waits: list[int] = field(default_factory=list)


@dataclass
class GpuSchedule:
    """Ordering of the GPU events of one trace, by index into ``KinetoTrace.gpu_events``.

    ``stream_prev``: the event before each one on its stream; ``waits``: events on other
    streams an event waits for (cross-stream waits); ``syncs``: blocking host calls.
    """

    stream_prev: dict[int, int] = field(default_factory=dict)
    waits: dict[int, list[int]] = field(default_factory=dict)
    syncs: list[SyncPoint] = field(default_factory=list)
    launch_of: dict[int, KinetoEvent] = field(default_factory=dict)


def _schedulable(event: KinetoEvent) -> bool:
    # GPU user annotations are spans over kernels, not work of their own.
    return event.stream is not None and event.cat != "gpu_user_annotation"


def gpu_schedule(kineto: KinetoTrace) -> GpuSchedule:
    """Derive stream order, cross-stream waits and host synchronisations (module docstring)."""
    schedule = GpuSchedule()
    gpu = kineto.gpu_events
    last_on_stream: dict[int, int] = {}
    for index, event in enumerate(gpu):  # gpu_events are sorted by start time
        if not _schedulable(event):
            continue
        assert event.stream is not None
        previous = last_on_stream.get(event.stream)
        if previous is not None:
            schedule.stream_prev[index] = previous
        last_on_stream[event.stream] = index
        runtime = kineto.runtime.get(event.correlation) if event.correlation is not None else None
        if runtime is not None:
            schedule.launch_of[index] = runtime

    # One walk over launches and ordering calls in host time. ``launched`` holds, per
    # stream, the last event launched so far (from any thread).
    steps: list[tuple[float, int, int, KinetoEvent | None]] = []
    for index, runtime in schedule.launch_of.items():
        steps.append((runtime.ts_us, 1, index, runtime))
    for position, call in enumerate(kineto.sync_calls):
        steps.append((call.ts_us, 0, position, call))
    steps.sort(key=lambda s: (s[0], s[1], s[2]))
    launched: dict[int, int] = {}
    last_by_thread: dict[int | str, int] = {}
    last_compute_by_thread: dict[int | str, int] = {}
    # Per thread, its launches in host time: which stream a wait on that thread is for.
    thread_launches: dict[int | str, list[tuple[float, int]]] = {}
    for index, runtime in schedule.launch_of.items():
        thread_launches.setdefault(runtime.tid, []).append((runtime.ts_us, index))
    for launches in thread_launches.values():
        launches.sort()
    pending_waits: dict[int, list[dict[int, int]]] = {}  # waiting stream -> snapshots
    own_launch = {id(r): i for i, r in schedule.launch_of.items()}
    for _, kind, payload, runtime in steps:
        assert runtime is not None
        if kind == 1:
            index = payload
            stream = gpu[index].stream
            assert stream is not None
            snapshots = pending_waits.pop(stream, None)
            if snapshots:
                waits = _waited_by(gpu, index, snapshots)
                if waits:
                    schedule.waits[index] = waits
            launched[stream] = index
            last_by_thread[runtime.tid] = index
            if not is_comm_kernel(gpu[index].name):
                last_compute_by_thread[runtime.tid] = stream
            continue
        call = runtime
        if call.name in _WAIT_CALLS:
            waiting = _waiting_stream(gpu, thread_launches.get(call.tid, []), call.ts_us)
            if waiting is None:
                waiting = last_compute_by_thread.get(call.tid)
            if waiting is not None:
                pending_waits.setdefault(waiting, []).append(dict(launched))
            continue
        candidates = dict(launched)
        own = own_launch.get(id(call))
        if own is not None:  # a synchronous cudaMemcpy waits for its own copy too
            stream = gpu[own].stream
            assert stream is not None
            candidates[stream] = own
        own_thread = own if own is not None else last_by_thread.get(call.tid)
        schedule.syncs.append(SyncPoint(call, _synced(gpu, call, candidates, own_thread)))
    return schedule


def is_comm_kernel(name: str) -> bool:
    """Whether a GPU kernel is a communication library's (NCCL/RCCL) rather than compute."""
    return name.startswith(("nccl", "rccl"))


def _waiting_stream(
    gpu: list[KinetoEvent], launches: list[tuple[float, int]], ts_us: float
) -> int | None:
    """The stream of a thread's first launch after ``ts_us`` (None when it launches no more)."""
    position = bisect.bisect_right(launches, (ts_us, len(gpu)))
    return gpu[launches[position][1]].stream if position < len(launches) else None


def _waited_by(gpu: list[KinetoEvent], index: int, snapshots: list[dict[int, int]]) -> list[int]:
    """Events on other streams that the event ``index`` can have waited for."""
    event = gpu[index]
    found: list[int] = []
    for snapshot in snapshots:
        for stream, candidate in snapshot.items():
            if stream == event.stream or candidate in found:
                continue
            if gpu[candidate].end_us <= event.ts_us + CLOCK_SLACK_US:
                found.append(candidate)
    return sorted(found)


def _synced(
    gpu: list[KinetoEvent],
    call: KinetoEvent,
    candidates: dict[int, int],
    thread_last: int | None,
) -> list[int]:
    """Events a blocking call waited for, by the rule in the module docstring;
    ``thread_last`` is the event the calling thread launched last."""
    done = {
        stream: index
        for stream, index in candidates.items()
        if gpu[index].end_us <= call.end_us + CLOCK_SLACK_US
    }
    if not done:
        return []
    if call.name in _DEVICE_SYNC_CALLS:
        return sorted(done.values())
    if thread_last is not None:
        stream = gpu[thread_last].stream
        if stream is not None and stream in done:
            return [done[stream]]
    running = [i for i in done.values() if gpu[i].end_us > call.ts_us]
    if running:
        return sorted(running)
    return [max(done.values(), key=lambda i: gpu[i].end_us)]
