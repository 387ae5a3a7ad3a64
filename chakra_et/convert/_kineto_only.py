"""Converting a Kineto trace on its own, with no host execution trace.

The host ops are rebuilt from the Kineto CPU spans of one profiled step (the last
``ProfilerStep#N``; the whole trace when it has none): nesting on each thread gives the
parents, so the converter sees the same tree a host trace would give it, linked to its own
spans. Collectives come from the ``c10d::*`` spans, or from a backend span (``nccl:*``)
where older profilers recorded no ``c10d`` op. What Kineto does not have is reported, not
invented: tensor ids (so no data dependencies beyond program and stream order), and a
collective's size or group where neither its NCCL kernel's arguments nor its
``record_param_comms`` span carry them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from trainsim.chakra_et.convert._host_et import HostOp, HostTrace
from trainsim.chakra_et.convert._kineto import KinetoEvent, KinetoTrace
from trainsim.chakra_et.convert._link import HostKinetoLink, link_launchers, link_spans
from trainsim.chakra_et.convert._units import Unit

__all__ = [
    "KINETO_ONLY_SCHEMA",
    "KinetoOnly",
    "annotate_collectives",
    "host_from_kineto",
    "process_group_configs",
]

KINETO_ONLY_SCHEMA = "kineto"
_THREAD_ROOT = "[pytorch|profiler|execution_trace|thread]"
_USER_SCOPE = 7
#: Bytes per element of the dtype names the profiler writes in NCCL metadata.
_DTYPE_BYTES = {
    "float": 4,
    "float32": 4,
    "half": 2,
    "float16": 2,
    "bfloat16": 2,
    "double": 8,
    "float64": 8,
    "int": 4,
    "int32": 4,
    "long": 8,
    "int64": 8,
    "short": 2,
    "int16": 2,
    "byte": 1,
    "uint8": 1,
    "char": 1,
    "int8": 1,
    "bool": 1,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "complexfloat": 8,
}
_TENSOR_TYPE_PREFIX = "Tensor("
# Containment tolerance: Kineto rounds span ends to the microsecond (or nanosecond).
_NEST_SLACK_US = 0.01


@dataclass
class KinetoOnly:
    """Host ops rebuilt from a Kineto trace, their link to its spans, and what is missing."""

    host: HostTrace
    link: HostKinetoLink
    notes: list[str] = field(default_factory=list)


def _step_window(kineto: KinetoTrace, notes: list[str]) -> tuple[float, float]:
    if kineto.profiler_steps:
        step = kineto.profiler_steps[-1]
        if len(kineto.profiler_steps) > 1:
            notes.append(
                f"Kineto only: converted {step.name}, the last of "
                f"{len(kineto.profiler_steps)} profiled steps"
            )
        return step.ts_us, step.end_us
    window = kineto.cpu_window_us
    notes.append("Kineto only: no ProfilerStep in the trace; the whole trace is one step")
    return window if window is not None else (0.0, 0.0)


def host_from_kineto(kineto: KinetoTrace) -> KinetoOnly:
    """Rebuild the host ops of one step from Kineto CPU spans (module docstring)."""
    notes: list[str] = []
    start_us, end_us = _step_window(kineto, notes)
    # Python-function spans (with_stack) wrap whole modules: they are not ops.
    events = [
        e for e in kineto.cpu_events if e.cat != "python_function" and start_us <= e.ts_us <= end_us
    ]
    events.sort(key=lambda e: (str(e.tid), e.ts_us, -e.dur_us))
    string_tids: dict[str, int] = {}
    ops: list[HostOp] = []
    spans: dict[int, KinetoEvent] = {}
    stack: list[tuple[float, int]] = []  # (end, op id) of the open spans on this thread
    current_tid: int | str | None = None
    root_id, tid, next_id = 0, 0, 1
    # Ops are numbered in start order, as record-function ids are (units sort by them).
    order = sorted(range(len(events)), key=lambda i: (events[i].ts_us, -events[i].dur_us))
    rf_of = {i: position for position, i in enumerate(order)}
    for index, event in enumerate(events):
        if event.tid != current_tid:
            current_tid = event.tid
            if isinstance(event.tid, str):  # host op thread ids are ints
                tid = string_tids.setdefault(event.tid, -len(string_tids) - 1)
            else:
                tid = event.tid
            root_id, next_id = next_id, next_id + 1
            ops.append(HostOp(root_id, _THREAD_ROOT, root_id, rf_id=-1, tid=tid))
            stack = []
        while stack and event.end_us > stack[-1][0] + _NEST_SLACK_US:
            stack.pop()  # not inside the open span: a sibling of it, or of an ancestor
        op = HostOp(
            next_id,
            event.name,
            stack[-1][1] if stack else root_id,
            rf_id=rf_of[index],
            tid=tid,
            scope=_USER_SCOPE if event.cat == "user_annotation" else 0,
            attrs={"kineto_comm": event.comm} if event.comm is not None else {},
        )
        ops.append(op)
        spans[op.id] = event
        stack.append((event.end_us, op.id))
        next_id += 1
    host = HostTrace(KINETO_ONLY_SCHEMA, ops, source=kineto.source, pid=kineto.pid)
    link = link_spans(host, spans, method="Kineto only")
    link_launchers(link, kineto)
    notes.append(
        "Kineto only: no tensor ids, so no data dependencies beyond program and stream order"
    )
    return KinetoOnly(host, link, notes)


def _ranks(value: object) -> list[int] | None:
    if isinstance(value, list):
        items: object = value
    elif isinstance(value, str):
        try:
            items = json.loads(value)
        except json.JSONDecodeError:
            return None
    else:
        return None
    if not isinstance(items, list) or not items:
        return None
    ranks = [r for r in items if isinstance(r, int) and not isinstance(r, bool)]
    return ranks if len(ranks) == len(items) else None


def process_group_configs(kineto: KinetoTrace) -> list[dict[str, Any]]:
    """Process groups named in NCCL metadata, in ``distributedInfo.pg_config`` form."""
    configs: dict[str, dict[str, Any]] = {}
    for event in (*kineto.cpu_events, *kineto.gpu_events):
        meta = event.comm
        if not meta or "Process Group Name" not in meta:
            continue
        name = str(meta["Process Group Name"])
        ranks = _ranks(meta.get("Process Group Ranks"))
        entry = configs.setdefault(name, {"pg_name": name})
        if ranks and "ranks" not in entry:
            entry["ranks"] = ranks
            entry["pg_size"] = len(ranks)
        if "Process Group Description" in meta:
            entry.setdefault("pg_desc", str(meta["Process Group Description"]))
    return list(configs.values())


def _bytes_from(meta: dict[str, Any], size_arg: int) -> int | None:
    """Per-rank buffer bytes from NCCL metadata (``In msg nelems`` x dtype), else from
    record_param_comms ``Input Dims``/``Input type``."""
    nelems = meta.get("In msg nelems")
    width = _DTYPE_BYTES.get(str(meta.get("dtype", "")).lower())
    if isinstance(nelems, int) and not isinstance(nelems, bool) and width is not None:
        return nelems * width
    dims, types = meta.get("Input Dims"), meta.get("Input type")
    if not isinstance(dims, list) or not isinstance(types, list):
        return None
    for position in (size_arg, 0):
        if position >= len(dims) or position >= len(types):
            continue
        shape, type_str = dims[position], types[position]
        if not (isinstance(type_str, str) and type_str.startswith(_TENSOR_TYPE_PREFIX)):
            continue
        width = _DTYPE_BYTES.get(type_str[len(_TENSOR_TYPE_PREFIX) : -1].lower())
        if (
            width is not None
            and isinstance(shape, list)
            and shape
            and all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        ):
            return math.prod(shape) * width
    return None


def annotate_collectives(units: list[Unit], link: HostKinetoLink, kineto: KinetoTrace) -> list[str]:
    """Give each collective its size and group from NCCL metadata (``kineto_comm_bytes``,
    ``kineto_pg_name`` attributes of its op); return what could not be recovered."""
    kernels_of: dict[int, list[KinetoEvent]] = {}
    for index, op_id in link.launcher_of.items():
        kernels_of.setdefault(op_id, []).append(kineto.gpu_events[index])
    no_size: list[str] = []
    no_group: list[str] = []
    for unit in units:
        if unit.kind != "comm" or unit.spec is None:
            continue
        sources: list[dict[str, Any]] = []
        ops = [*unit.members, *unit.backend]
        if unit.param_comms is not None:
            ops.insert(0, unit.param_comms)
        for op in ops:
            meta = op.attrs.get("kineto_comm")
            if isinstance(meta, dict):
                sources.append(meta)
            sources.extend(k.comm for k in kernels_of.get(op.id, ()) if k.comm)
        size = next(
            (b for b in (_bytes_from(m, unit.spec.size_arg) for m in sources) if b is not None),
            None,
        )
        group = next((m["Process Group Name"] for m in sources if "Process Group Name" in m), None)
        if size is not None:
            unit.op.attrs["kineto_comm_bytes"] = size
        else:
            no_size.append(unit.op.name)
        if group is not None:
            unit.op.attrs["kineto_pg_name"] = str(group)
        else:
            no_group.append(unit.op.name)
    notes = []
    if no_size:
        notes.append(
            f"Kineto only: {len(no_size)} collective(s) with no size in their NCCL metadata or "
            f"record_param_comms dims (comm_size 0): {', '.join(sorted(set(no_size)))}"
        )
    if no_group:
        notes.append(
            f"Kineto only: {len(no_group)} collective(s) name no process group; "
            "placed on the default group"
        )
    return notes
