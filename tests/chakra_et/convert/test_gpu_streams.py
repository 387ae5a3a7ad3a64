"""GPU-side dependencies on hand-made traces: the host thread issues kernels without waiting,
a stream runs in order, ``cudaStreamWaitEvent`` waits across streams, and a blocking
``.item()`` (``cudaStreamSynchronize``) waits for the copy it synchronises with."""

from __future__ import annotations

from typing import Any

import pytest

from trainsim import chakra_et
from trainsim.chakra_et import ETGraph, get_attr
from trainsim.chakra_et.convert import (
    Conversion,
    convert_traces,
    parse_host_trace,
    parse_kineto_trace,
)
from trainsim.chakra_et.schema import Node

PID = 4242
STEP_US = 130.0


def _host_doc(ops: list[tuple[int, str, int]]) -> dict[str, Any]:
    """A host ET (schema 1.1.1) with one thread, one ProfilerStep and ``ops`` under it."""
    empty = {"values": [], "shapes": [], "types": []}

    def node(op_id: int, name: str, parent: int, rf_id: int) -> dict[str, Any]:
        return {
            "id": op_id,
            "name": name,
            "ctrl_deps": parent,
            "inputs": empty,
            "outputs": empty,
            "attrs": [
                {"name": "rf_id", "type": "uint64", "value": rf_id},
                {"name": "tid", "type": "uint64", "value": 1},
            ],
        }

    nodes = [node(2, "[pytorch|profiler|execution_trace|thread]", 1, 1)]
    nodes.append(node(3, "ProfilerStep#1", 2, 2))
    nodes.extend(node(op_id, name, 3, rf_id) for op_id, name, rf_id in ops)
    return {"schema": "1.1.1-chakra.0.0.4", "pid": PID, "nodes": nodes}


class _Kineto:
    """Builder of a small Kineto trace on host thread 1 of process ``PID``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._correlation = 1000

    def cpu(self, name: str, rf_id: int, ts: float, dur: float, ext: int) -> None:
        args = {"Record function id": rf_id, "External id": ext}
        self.events.append(self._x("cpu_op", name, PID, 1, ts, dur, args))

    def call(self, name: str, ts: float, dur: float, ext: int) -> int:
        self._correlation += 1
        args = {"External id": ext, "correlation": self._correlation}
        self.events.append(self._x("cuda_runtime", name, PID, 1, ts, dur, args))
        return self._correlation

    def gpu(self, cat: str, name: str, stream: int, ts: float, dur: float, corr: int) -> None:
        args = {"correlation": corr, "stream": stream, "device": 0}
        self.events.append(self._x(cat, name, 0, stream, ts, dur, args))

    @staticmethod
    def _x(
        cat: str, name: str, pid: int, tid: int, ts: float, dur: float, args: dict[str, Any]
    ) -> dict[str, Any]:
        return {"ph": "X", "cat": cat, "name": name, "pid": pid, "tid": tid, "ts": ts,
                "dur": dur, "args": args}  # fmt: skip

    def document(self) -> dict[str, Any]:
        return {"distributedInfo": {"rank": 0, "world_size": 1}, "traceEvents": self.events}


def _streams_case() -> Conversion:
    """mm launches a GEMM on stream 7; add waits for it on stream 20; relu launches on
    stream 30 with no wait; item copies to the host on stream 20 and synchronises."""
    ops = [(10, "aten::mm"), (11, "aten::add"), (12, "aten::relu")]
    ops += [(13, "aten::item"), (14, "aten::mul")]
    host = _host_doc([(op_id, name, op_id) for op_id, name in ops])
    k = _Kineto()
    k.cpu("ProfilerStep#1", 2, 0, STEP_US, 99)
    k.cpu("aten::mm", 10, 10, 20, 100)
    k.gpu("kernel", "gemm", 7, 22, 60, k.call("cudaLaunchKernel", 15, 5, 100))
    k.cpu("aten::add", 11, 35, 15, 101)
    k.call("cudaStreamWaitEvent", 38, 1, 101)
    k.gpu("kernel", "add_kernel", 20, 83, 10, k.call("cudaLaunchKernel", 42, 5, 101))
    k.cpu("aten::relu", 12, 55, 10, 102)
    k.gpu("kernel", "side_kernel", 30, 60, 10, k.call("cudaLaunchKernel", 58, 4, 102))
    k.cpu("aten::item", 13, 70, 40, 103)
    k.gpu("gpu_memcpy", "Memcpy DtoH", 20, 94, 2, k.call("cudaMemcpyAsync", 72, 4, 103))
    k.call("cudaStreamSynchronize", 77, 20, 103)
    k.cpu("aten::mul", 14, 112, 8, 104)
    return convert_traces(
        parse_host_trace(host, "host.json"), parse_kineto_trace(k.document(), "kineto.json")
    )


def _by_name(graph: ETGraph) -> dict[str, Node]:
    return {node.name: node for node in graph}


@pytest.fixture(scope="module")
def streams() -> Conversion:
    return _streams_case()


def test_the_host_thread_does_not_wait_for_its_kernels(streams: Conversion) -> None:
    nodes = _by_name(streams.graph)
    gemm, add = nodes["gemm"], nodes["aten::add"]
    assert gemm.id not in add.ctrl_deps
    assert nodes["aten::mm"].id in gemm.ctrl_deps  # launched by mm
    chakra_et.validate(streams.graph)


def test_a_wait_event_orders_kernels_across_streams(streams: Conversion) -> None:
    nodes = _by_name(streams.graph)
    add_kernel = nodes["add_kernel"]
    assert set(add_kernel.ctrl_deps) == {nodes["gemm"].id, nodes["aten::add"].id}
    # Launched on another stream with no wait before it: only its launcher.
    assert list(nodes["side_kernel"].ctrl_deps) == [nodes["aten::relu"].id]
    assert get_attr(add_kernel, "stream") == 20
    # Same stream: the copy runs after the kernel before it.
    assert add_kernel.id in nodes["Memcpy DtoH"].ctrl_deps


def test_a_blocking_item_waits_for_its_copy(streams: Conversion) -> None:
    nodes = _by_name(streams.graph)
    wait = nodes["aten::item [cudaStreamSynchronize]"]
    item, copy = nodes["aten::item"], nodes["Memcpy DtoH"]
    assert set(wait.ctrl_deps) == {item.id, copy.id}
    assert get_attr(wait, "sync_of") == 13
    # The call began at 77 us and the copy ended at 96: 19 us blocked, 14 us of CPU after.
    assert get_attr(wait, "gpu_wait_us") == 19
    assert wait.duration_micros == 110 - 96
    assert nodes["aten::mul"].ctrl_deps == [wait.id]
    assert streams.report.gpu_syncs == {"host op waits for the GPU (cudaStreamSynchronize)": 1}


def test_critical_path_follows_the_gpu_through_the_sync(streams: Conversion) -> None:
    length, path = streams.graph.critical_path()
    names = [streams.graph.nodes[i].name for i in path]
    assert names[-3:] == ["Memcpy DtoH", "aten::item [cudaStreamSynchronize]", "aten::mul"]
    assert "gemm" in names and "add_kernel" in names
    # Kernels start when their launching op ends (not at the launch call inside it), which
    # delays the GEMM by 8 us here; everything else is as measured.
    assert length == streams.report.critical_path_us == 136
    assert streams.report.measured_step_us == STEP_US


def test_without_gpu_events_nothing_is_split() -> None:
    host = _host_doc([(10, "aten::mm", 10), (13, "aten::item", 13)])
    k = _Kineto()
    k.cpu("ProfilerStep#1", 2, 0, 50, 99)
    k.cpu("aten::mm", 10, 5, 20, 100)
    k.cpu("aten::item", 13, 30, 10, 103)
    k.call("cudaStreamSynchronize", 32, 5, 103)
    result = convert_traces(parse_host_trace(host), parse_kineto_trace(k.document()))
    assert [n.name for n in result.graph] == ["aten::mm", "aten::item"]
    assert result.report.critical_path_us == 50
