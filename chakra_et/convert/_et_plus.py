"""Reading an "ET+" host trace: one the Chakra trace linker already merged Kineto into.

The linker gives every host op its Kineto ``ts``/``inclusive_dur``/``exclusive_dur`` and adds
each GPU kernel, copy and set as a node of its own (``cat: kernel``, ``gpu_memcpy``,
``gpu_memset``; ``stream``; its parent is the op that launched it). Those nodes are not host
ops: they are taken out and given back as the Kineto view the rest of the converter links
to, so the kernels are written as GPU nodes and collectives take their NCCL kernel's time.
What ET+ does not keep (the runtime calls: stream waits, host syncs) cannot be modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainsim.chakra_et.convert._host_et import HostOp, HostTrace
from trainsim.chakra_et.convert._kineto import KinetoEvent, KinetoTrace
from trainsim.chakra_et.convert._link import HostKinetoLink, link_spans

__all__ = ["ET_PLUS_GPU_CATS", "EtPlus", "split_et_plus"]

ET_PLUS_GPU_CATS = frozenset({"kernel", "gpu_memcpy", "gpu_memset"})


@dataclass
class EtPlus:
    """An ET+ trace taken apart: host ops only, the GPU view, and the link between them."""

    host: HostTrace
    kineto: KinetoTrace
    link: HostKinetoLink
    gpu_nodes: int


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return float(value)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def split_et_plus(host: HostTrace) -> EtPlus | None:
    """Take an ET+ trace apart (module docstring); None when it holds no GPU nodes."""
    gpu_ops = [op for op in host.ops if op.attrs.get("cat") in ET_PLUS_GPU_CATS]
    if not gpu_ops:
        return None
    gpu_ids = {op.id for op in gpu_ops}
    cpu_ops = [op for op in host.ops if op.id not in gpu_ids]
    cpu = HostTrace(
        host.schema,
        cpu_ops,
        source=host.source,
        pid=host.pid,
        by_id={op.id: op for op in cpu_ops},
        recorded_at=host.recorded_at,
    )
    kineto = KinetoTrace(f"{host.source} (ET+ GPU nodes)")
    kineto.pid = host.pid
    spans: dict[int, KinetoEvent] = {}
    for op in cpu_ops:
        ts = _number(op.attrs.get("ts"))
        dur = _number(op.attrs.get("inclusive_dur"))
        dur = dur if dur is not None else op.duration_us
        if ts is None or dur is None:
            continue
        event = KinetoEvent(op.name, "cpu_op", ts, dur, op.tid, rf_id=op.rf_id)
        kineto.cpu_events.append(event)
        spans[op.id] = event
        if op.name.startswith("ProfilerStep#"):
            kineto.profiler_steps.append(event)
    launchers: list[tuple[KinetoEvent, HostOp]] = []
    for op in gpu_ops:
        ts = _number(op.attrs.get("ts"))
        dur = _number(op.attrs.get("exclusive_dur"))
        dur = dur if dur is not None else (_number(op.attrs.get("inclusive_dur")) or 0.0)
        stream = _int(op.attrs.get("stream"))
        if ts is None:
            continue  # a GPU node without a time cannot be placed; the report counts it
        name = op.name
        event = KinetoEvent(name, str(op.attrs["cat"]), ts, dur, stream or 0, stream=stream)
        launchers.append((event, op))
    launchers.sort(key=lambda pair: pair[0].ts_us)
    kineto.gpu_events = [event for event, _ in launchers]
    link = link_spans(cpu, spans, method="ET+ (merged by the Chakra trace linker)")
    for index, (_, op) in enumerate(launchers):
        if op.parent in cpu.by_id:
            link.launcher_of[index] = op.parent
    return EtPlus(cpu, kineto, link, len(gpu_ops))
