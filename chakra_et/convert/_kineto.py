"""Reader of Kineto device traces (the chrome-trace JSON ``torch.profiler`` exports).

Only what conversion needs is kept: CPU op and annotation spans (keyed by record-function id
when the trace has one), GPU kernels/memcpy/memset with their stream and launch correlation,
``ProfilerStep#N`` spans, and ``distributedInfo``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from trainsim.chakra_et.convert._errors import KinetoTraceError
from trainsim.chakra_et.convert._host_et import read_json_document

__all__ = [
    "COMM_ARGS",
    "SYNC_CALL_NAMES",
    "KinetoEvent",
    "KinetoTrace",
    "load_kineto_trace",
    "parse_kineto_trace",
]

_CPU_CATS = frozenset({"cpu_op", "user_annotation", "python_function"})
_GPU_CATS = frozenset({"kernel", "gpu_memcpy", "gpu_memset", "gpu_user_annotation"})
_RUNTIME_CATS = frozenset({"cuda_runtime", "cuda_driver", "runtime"})
#: Arguments that describe a collective (torch >= 2.1 writes them on record_param_comms and
#: on NCCL kernels); "Input Dims"/"Input type" are the older record_param_comms form.
COMM_ARGS = (
    "Collective name",
    "In msg nelems",
    "Out msg nelems",
    "dtype",
    "Group size",
    "Process Group Name",
    "Process Group Description",
    "Process Group Ranks",
    "Input Dims",
    "Input type",
)
#: Runtime calls after which the host thread or a stream waits for other GPU work.
SYNC_CALL_NAMES = frozenset(
    {
        "cudaStreamWaitEvent",
        "cudaStreamSynchronize",
        "cudaDeviceSynchronize",
        "cudaEventSynchronize",
        "cudaMemcpy",
        "cudaMemcpy2D",
        "cudaMemcpyFromSymbol",
        "cudaMemcpyToSymbol",
        "hipStreamWaitEvent",
        "hipStreamSynchronize",
        "hipDeviceSynchronize",
        "hipEventSynchronize",
        "hipMemcpy",
    }
)


@dataclass(slots=True)
class KinetoEvent:
    """One complete (``ph: X``) event: times in µs, its thread or stream, and link ids."""

    name: str
    cat: str
    ts_us: float
    dur_us: float
    tid: int | str
    rf_id: int | None = None
    external_id: int | None = None
    correlation: int | None = None
    stream: int | None = None
    #: NCCL metadata the profiler wrote on a collective's kernel or CPU op (``COMM_ARGS``).
    comm: dict[str, Any] | None = None

    @property
    def end_us(self) -> float:
        """Where the event ends, in µs on the trace clock."""
        return self.ts_us + self.dur_us


@dataclass
class KinetoTrace:
    """The parts of a Kineto trace the converter links to the host execution trace."""

    source: str
    cpu_events: list[KinetoEvent] = field(default_factory=list)
    gpu_events: list[KinetoEvent] = field(default_factory=list)
    runtime: dict[int, KinetoEvent] = field(default_factory=dict)
    profiler_steps: list[KinetoEvent] = field(default_factory=list)
    distributed_info: dict[str, Any] = field(default_factory=dict)
    #: Runtime calls that order GPU work (stream waits, synchronisations), in trace order.
    sync_calls: list[KinetoEvent] = field(default_factory=list)
    #: Process id of the CPU events (the host trace of the same run has the same one).
    pid: int | None = None
    #: Kineto's ``baseTimeNanoseconds`` when it has one (newer traces' clock origin).
    base_time_ns: int | None = None

    @property
    def cpu_window_us(self) -> tuple[float, float] | None:
        """First start and last end of the CPU events, in µs on the trace clock."""
        if not self.cpu_events:
            return None
        return (
            min(e.ts_us for e in self.cpu_events),
            max(e.end_us for e in self.cpu_events),
        )

    @property
    def has_rf_ids(self) -> bool:
        """Whether CPU events carry ``Record function id`` (Kineto in torch >= 2.2)."""
        return any(e.rf_id is not None for e in self.cpu_events)

    def by_rf_id(self) -> dict[int, KinetoEvent]:
        """CPU events by record-function id (the id the host trace calls ``rf_id``)."""
        return {e.rf_id: e for e in self.cpu_events if e.rf_id is not None}


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def parse_kineto_trace(document: object, source: str = "<kineto trace>") -> KinetoTrace:
    """Parse a decoded Kineto JSON document; raise ``KinetoTraceError`` naming what is wrong."""
    if isinstance(document, list):
        events: object = document
        document = {}
    elif isinstance(document, dict):
        events = document.get("traceEvents")
    else:
        raise KinetoTraceError(f"{source}: a Kineto trace is a JSON object with 'traceEvents'")
    if not isinstance(events, list):
        raise KinetoTraceError(f"{source}: field 'traceEvents' must be a list")
    trace = KinetoTrace(source)
    assert isinstance(document, dict)
    info = document.get("distributedInfo")
    if isinstance(info, dict):
        trace.distributed_info = info
    trace.base_time_ns = _opt_int(document.get("baseTimeNanoseconds"))
    for index, raw in enumerate(events):
        if not isinstance(raw, dict):
            raise KinetoTraceError(f"{source}: traceEvents[{index}] is not a JSON object")
        if raw.get("ph") != "X":
            continue
        cat = raw.get("cat")
        if not isinstance(cat, str):
            continue
        ts, dur = raw.get("ts"), raw.get("dur", 0)
        if isinstance(ts, bool) or not isinstance(ts, (int, float)):
            raise KinetoTraceError(f"{source}: traceEvents[{index}]: 'ts' must be a number")
        if isinstance(dur, bool) or not isinstance(dur, (int, float)) or dur < 0:
            raise KinetoTraceError(f"{source}: traceEvents[{index}]: 'dur' must be >= 0")
        args = raw.get("args")
        args = args if isinstance(args, dict) else {}
        name = raw.get("name")
        name = name if isinstance(name, str) else ""
        tid = raw.get("tid", 0)
        event = KinetoEvent(
            name,
            cat,
            float(ts),
            float(dur),
            tid if isinstance(tid, (int, str)) and not isinstance(tid, bool) else 0,
            rf_id=_opt_int(args.get("Record function id")),
            external_id=_opt_int(args.get("External id")),
            correlation=_opt_int(args.get("correlation")),
            stream=_opt_int(args.get("stream")),
        )
        if ("Collective name" in args or "Input Dims" in args) and (
            name.startswith(("nccl", "rccl", "c10d::")) or name == "record_param_comms"
        ):
            event.comm = {key: args[key] for key in COMM_ARGS if key in args}
        if cat in _CPU_CATS:
            trace.cpu_events.append(event)
            pid = raw.get("pid")
            if trace.pid is None and type(pid) is int:
                trace.pid = pid
            if name.startswith("ProfilerStep#"):
                trace.profiler_steps.append(event)
        elif cat in _GPU_CATS:
            trace.gpu_events.append(event)
        elif cat in _RUNTIME_CATS:
            if event.correlation is not None:
                trace.runtime[event.correlation] = event
            if name in SYNC_CALL_NAMES:
                trace.sync_calls.append(event)
    trace.gpu_events.sort(key=lambda e: e.ts_us)
    trace.profiler_steps.sort(key=lambda e: e.ts_us)  # the last one is the latest step
    return trace


def load_kineto_trace(path: str | os.PathLike[str]) -> KinetoTrace:
    """Read a Kineto trace from a ``.json`` or ``.json.gz`` file."""
    return parse_kineto_trace(read_json_document(path, KinetoTraceError), source=os.fspath(path))
