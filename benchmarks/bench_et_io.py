"""Read, validate and write a 1,000,000-node ET; compare reading with a bare protobuf loop.

The bare loop parses the same pre-split message payloads with ``Node.ParseFromString`` and
nothing else: the in-Python limit for any reader. Figures are medians of several runs.
"""

from __future__ import annotations

import functools
import gc
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from google.protobuf.internal.decoder import _DecodeVarint32

from trainsim import chakra_et
from trainsim.chakra_et import ETGraph, ETReader, NodeType, new_metadata, new_node

NODES = 1_000_000
RUNS = 5


def build(num_nodes: int) -> ETGraph:
    """A trace-shaped graph: chains of compute with a collective every 50 nodes."""
    graph = ETGraph(new_metadata(attrs={"schema": "bench"}))
    comp, coll = NodeType.COMP_NODE, NodeType.COMM_COLL_NODE
    for i in range(num_nodes):
        deps = [i - 1] if i else []
        if i % 50 == 49:
            node = new_node(
                i,
                f"all_reduce_{i}",
                coll,
                duration_micros=20,
                data_deps=deps,
                attrs={"is_cpu_op": False, "comm_type": 0, "comm_size": 1 << 20, "pg_name": "0"},
            )
        else:
            node = new_node(
                i,
                f"aten::mm_{i}",
                comp,
                duration_micros=i % 97,
                data_deps=deps,
                ctrl_deps=[i - 2] if i > 1 else [],
                attrs={"is_cpu_op": False, "num_ops": 4096 * i, "tensor_size": 8192},
            )
        graph.add(node)
    return graph


def _split(data: bytes) -> list[bytes]:
    """Split a length-delimited stream with protobuf's own varint decoder (baseline input)."""
    frames, pos = [], 0
    while pos < len(data):
        size, pos = _DecodeVarint32(data, pos)
        frames.append(data[pos : pos + size])
        pos += size
    return frames


def _median_s(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Print nodes/s for read, validate, write and the bare protobuf loop, and peak memory."""
    t0 = time.perf_counter()
    graph = build(NODES)
    print(f"built {NODES:,} nodes in {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.0.et"
        write_s = _median_s(functools.partial(chakra_et.save, graph, path))
        # Reads are timed the way a reading process runs: without a million other live objects
        # from building the input, whose presence makes every garbage collection walk them.
        del graph
        gc.collect()
        data = path.read_bytes()
        print(f"file size {len(data) / 2**20:.1f} MiB")
        frames = _split(data)[1:]

        def bare() -> None:
            for payload in frames:
                chakra_et.Node().ParseFromString(payload)

        def bare_keep() -> None:
            # the same loop keeping every message, as a whole-graph load must
            gc.disable()
            try:
                kept = []
                for payload in frames:
                    node = chakra_et.Node()
                    node.ParseFromString(payload)
                    kept.append(node)
            finally:
                gc.enable()

        def stream() -> None:
            with ETReader(path) as reader:
                for _ in reader:
                    pass

        bare_s = _median_s(bare)
        bare_keep_s = _median_s(bare_keep)
        stream_s = _median_s(stream)
        load_s = _median_s(lambda: chakra_et.load(path))
        loaded = chakra_et.load(path)
        validate_s = _median_s(lambda: chakra_et.validate(loaded))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        ("bare ParseFromString loop", bare_s),
        ("bare loop keeping messages", bare_keep_s),
        ("stream (ETReader)", stream_s),
        ("load (whole graph)", load_s),
        ("validate", validate_s),
        ("write (save)", write_s),
    ]
    for name, seconds in rows:
        print(f"{name:<28} {seconds:7.3f} s  {NODES / seconds:>12,.0f} nodes/s")
    print(f"stream / bare loop: {stream_s / bare_s:.2f}x")
    print(f"load / bare loop keeping messages: {load_s / bare_keep_s:.2f}x")
    print(f"peak RSS {peak_mib:,.0f} MiB (whole process, graph held in memory)")


if __name__ == "__main__":
    main()
