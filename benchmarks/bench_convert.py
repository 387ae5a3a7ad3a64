"""Conversion speed and peak memory: the largest real fixtures and a synthetic 1,000,000-node
host execution trace (aim: at least 100,000 host nodes/s). Figures are medians of runs.

Each case runs in a fresh subprocess so its peak resident memory is its own.
"""

from __future__ import annotations

import gc
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from trainsim.chakra_et.convert import HostTraceError, convert_pytorch
from trainsim.chakra_et.convert._host_et import read_json_document, read_trace_bytes, typed_parser

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fixtures"
SYNTHETIC_NODES = 1_000_000
RUNS = 3


def _tensor(tensor_id: int) -> list[Any]:
    return [tensor_id, tensor_id, 0, 4096, 4, "cpu"]


def _node(
    op_id: int, name: str, parent: int, rf_id: int, tensor_in: int, tensor_out: int
) -> dict[str, Any]:
    return {
        "id": op_id,
        "name": name,
        "ctrl_deps": parent,
        "inputs": {
            "values": [_tensor(tensor_in)],
            "shapes": [[64, 64]],
            "types": ["Tensor(float)"],
        },
        "outputs": {
            "values": [_tensor(tensor_out)],
            "shapes": [[64, 64]],
            "types": ["Tensor(float)"],
        },
        "attrs": [
            {"name": "rf_id", "type": "uint64", "value": rf_id},
            {"name": "tid", "type": "uint64", "value": 1},
            {"name": "scope", "type": "uint64", "value": 0},
        ],
    }


def synthetic_host_trace(num_nodes: int) -> dict[str, Any]:
    """A training-step-shaped host ET: nested forward/backward ops, a gloo all-reduce per
    ten layers (with its worker-thread span), all under one ProfilerStep."""
    nodes: list[dict[str, Any]] = [
        {
            "id": 1,
            "name": "[pytorch|profiler|execution_trace|process]",
            "ctrl_deps": 1,
            "attrs": [],
        },
        {"id": 2, "name": "[pytorch|profiler|execution_trace|thread]", "ctrl_deps": 1, "attrs": []},
        {
            "id": 3,
            "name": "ProfilerStep#1",
            "ctrl_deps": 2,
            "attrs": [{"name": "scope", "value": 7}],
        },
    ]
    next_id = 4
    layer = 0
    while next_id < num_nodes:
        base, t = next_id, 10 * layer
        nodes += [
            _node(base, "aten::linear", 3, base, t, t + 1),
            _node(base + 1, "aten::t", base, base + 1, t + 2, t + 3),
            _node(base + 2, "aten::addmm", base, base + 2, t, t + 1),
            _node(base + 3, "aten::relu", 3, base + 3, t + 1, t + 4),
            _node(
                base + 4,
                "autograd::engine::evaluate_function: AddmmBackward0",
                3,
                base + 4,
                t + 4,
                t + 5,
            ),
            _node(base + 5, "AddmmBackward0", base + 4, base + 5, t + 4, t + 5),
            _node(base + 6, "aten::mm", base + 5, base + 6, t + 4, t + 6),
            _node(base + 7, "aten::mm", base + 5, base + 7, t + 4, t + 5),
        ]
        next_id += 8
        if layer % 10 == 9:
            allreduce = _node(next_id, "c10d::allreduce_", 3, next_id, t + 6, t + 6)
            allreduce["inputs"]["types"] = ["GenericList[Tensor(float)]"]
            allreduce["inputs"]["values"] = [[_tensor(t + 6)]]
            nodes += [
                allreduce,
                _node(next_id + 1, "gloo:all_reduce", 3, next_id + 1, t + 6, t + 6),
            ]
            nodes[-1]["attrs"][2]["value"] = 7
            next_id += 2
        layer += 1
    return {"schema": "1.1.1-chakra.0.0.4", "pid": 1, "nodes": nodes[:num_nodes]}


def _decode_host(host: str) -> None:
    """Decode a host ET as the converter does: msgspec's typed structs where it is installed
    (falling back to ``json`` for layouts they do not take), else ``json``."""
    if typed_parser() is not None:
        import msgspec

        from trainsim.chakra_et.convert._host_fast import _DECODER

        data = read_trace_bytes(host, HostTraceError)
        try:
            _DECODER.decode(data)
            return
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
    read_json_document(host, HostTraceError)


def _case(host: str, kineto: str | None) -> None:
    """Run one case in this process: print a JSON line of timings and peak memory."""
    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds, json_seconds = [], []
    for _ in range(RUNS):
        start = time.perf_counter()
        result = convert_pytorch(host, kineto)
        seconds.append(time.perf_counter() - start)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gc.disable()  # as the converter does while it reads
    for _ in range(RUNS):
        # The share no converter code can speed up: decoding the JSON itself.
        start = time.perf_counter()
        _decode_host(host)
        if kineto:
            read_json_document(kineto, HostTraceError)
        json_seconds.append(time.perf_counter() - start)
    gc.enable()
    calibration = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for _ in range(1_000_000):
            pass
        calibration.append(time.perf_counter() - start)
    report = result.report
    median = statistics.median(seconds)
    print(
        json.dumps(
            {
                "host_nodes": report.host_nodes_in,
                "et_nodes": report.et_nodes_out,
                "median_s": round(median, 3),
                "json_decode_s": round(statistics.median(json_seconds), 3),
                "empty_loop_1m_s": round(statistics.median(calibration), 4),
                "host_nodes_per_s": round(report.host_nodes_in / median),
                "peak_rss_mib": round(peak_kib / 1024),
                "rss_growth_mib": round((peak_kib - before_kib) / 1024),
            }
        )
    )


def _run_case(label: str, host: Path, kineto: Path | None) -> None:
    args = [
        sys.executable,
        "-c",
        "import sys, benchmarks.bench_convert as b; b._case(sys.argv[1], sys.argv[2] or None)",
    ]
    proc = subprocess.run(
        [*args, str(host), str(kineto or "")],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"{label:38s} {row['host_nodes']:>9,} host -> {row['et_nodes']:>8,} ET nodes  "
        f"{row['median_s'] * 1000:9.1f} ms  {row['host_nodes_per_s']:>9,} host nodes/s  "
        f"peak RSS {row['peak_rss_mib']:,} MiB  (JSON decode {row['json_decode_s'] * 1000:.0f} ms;"
        f" empty 1M loop {row['empty_loop_1m_s'] * 1000:.0f} ms)",
        flush=True,
    )


def main() -> None:
    """Print one line per case."""
    cpu = FIXTURES / "pytorch-cpu"
    public = FIXTURES / "public" / "param_et_replay"
    _run_case(
        "single_transformer (+Kineto)",
        cpu / "single_transformer" / "host.0.json.gz",
        cpu / "single_transformer" / "device.0.json.gz",
    )
    _run_case(
        "ddp_gloo_2rank rank 0 (+Kineto)",
        cpu / "ddp_gloo_2rank" / "host.0.json.gz",
        cpu / "ddp_gloo_2rank" / "device.0.json.gz",
    )
    _run_case(
        "param linear 1.0.1 (+GPU Kineto)",
        public / "linear_et.json.gz",
        public / "linear_kineto.json.gz",
    )
    _run_case("param resnet_2gpu 1.1.0 (largest)", public / "resnet_2gpu_et.json.gz", None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic_host.json"
        path.write_text(json.dumps(synthetic_host_trace(SYNTHETIC_NODES)))
        _run_case(f"synthetic {SYNTHETIC_NODES:,}-node host ET", path, None)


if __name__ == "__main__":
    main()
