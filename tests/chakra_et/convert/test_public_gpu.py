"""Public GPU traces (../shared/data/fixtures/public-gpu): NCCL collectives ordered on the
GPU, Kineto files paired by content, traces of different runs rejected."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from trainsim import chakra_et
from trainsim.chakra_et import NodeType, get_attr
from trainsim.chakra_et.convert import (
    Conversion,
    ConversionWarning,
    RunMismatchError,
    TraceConversionError,
    convert_directory,
    convert_pytorch,
    find_rank_files,
    load_host_trace,
    load_kineto_trace,
)
from trainsim.chakra_et.convert._link import link_traces
from trainsim.studies.cli._main import main

GPU = FIXTURES / "public-gpu"
DLRM = GPU / "param_dlrm_8rank"
OTHER_RUN = GPU / "param_resnet_et_kineto"
_COMM = {NodeType.COMM_COLL_NODE, NodeType.COMM_SEND_NODE, NodeType.COMM_RECV_NODE}

_cache: dict[int, Conversion] = {}


def _dlrm(rank: int) -> Conversion:
    if rank not in _cache:
        _cache[rank] = convert_pytorch(
            DLRM / f"host.{rank}.json.gz", DLRM / f"device.{rank}.json.gz"
        )
    return _cache[rank]


@pytest.mark.parametrize("rank", range(8))
def test_dlrm_replays_within_5_percent_of_its_profiler_step(rank: int) -> None:
    result = _dlrm(rank)
    chakra_et.validate(result.graph)
    report = result.report
    assert report.rank == rank and report.measured_step_us
    assert report.replay_error_pct is not None and abs(report.replay_error_pct) < 5.0
    assert report.critical_path_us == result.graph.critical_path()[0]


@pytest.mark.parametrize("rank", [0, 3])
def test_dlrm_collectives_sit_on_the_gpu_not_on_the_cpu_chain(rank: int) -> None:
    graph = _dlrm(rank).graph
    nodes = graph.nodes
    comm = {n.id for n in graph if n.type in _COMM}
    assert len(comm) == 8  # 3 all-reduce + 5 all-to-all(v)
    gpu = {n.id for n in graph if get_attr(n, "is_cpu_op") is False}
    for node in graph:
        if get_attr(node, "is_cpu_op") is True:
            # The host thread never blocks on a collective: it only waits at syncs.
            assert not comm & set(node.ctrl_deps), node.name
    for cid in comm:
        node = nodes[cid]
        assert isinstance(get_attr(node, "stream"), int) and get_attr(node, "pg_name") == "0"
    # Each collective waits for GPU work before it on its streams, and GPU work (a kernel,
    # or the next collective on its stream) waits for it.
    assert all(gpu & set(nodes[c].ctrl_deps) for c in comm)
    assert all(any(c in n.ctrl_deps for n in graph if n.id in gpu | comm) for c in comm)
    # The optimizer's kernels wait for the last gradient all-reduce (DDP's wait is issued
    # from the autograd thread, the kernels from the main thread).
    last = max(comm)
    assert nodes[last].name == "c10d::allreduce_"
    assert any(last in n.ctrl_deps for n in graph if n.id in gpu)


def test_dlrm_report_gives_the_durations_written_to_the_et() -> None:
    result = _dlrm(1)
    by_host = {get_attr(n, "host_id"): n for n in result.graph if n.type in _COMM}
    assert len(result.report.collectives) == 8
    kernel_names = ("AllReduce", "SendRecv")
    for record in result.report.collectives:
        node = by_host[record["host_id"]]
        assert record["duration_us"] == node.duration_micros
        assert record["stream"] == get_attr(node, "stream")
    # The figure is the NCCL kernel's, not the c10d op's CPU time.
    kernels = [
        e
        for e in json.loads(gzip.decompress((DLRM / "device.1.json.gz").read_bytes()))[
            "traceEvents"
        ]
        if e.get("cat") == "kernel" and any(k in e["name"] for k in kernel_names)
    ]
    written = {r["duration_us"] for r in result.report.collectives}
    assert {round(e["dur"]) for e in kernels} >= written


def _pytorch_named(tmp_path: Path) -> Path:
    """DLRM under the names torch.profiler and param write, host ranks rotated by 3: only
    the content can pair them."""
    folder = tmp_path / "dlrm"
    folder.mkdir()
    for rank in range(8):
        (folder / f"dlrm_eg_{(rank + 3) % 8}.json.gz").symlink_to(DLRM / f"host.{rank}.json.gz")
        name = f"worker{rank}_step_12.16941282015{rank:02d}.pt.trace.json.gz"
        (folder / name).symlink_to(DLRM / f"device.{rank}.json.gz")
    return folder


def test_kineto_files_pair_by_rank_and_pid_whatever_their_names(tmp_path: Path) -> None:
    folder = _pytorch_named(tmp_path)
    pairs = find_rank_files(folder)
    assert sorted(pairs) == list(range(8))
    for rank, (host, kineto) in pairs.items():
        assert host.resolve() == (DLRM / f"host.{rank}.json.gz").resolve()
        assert kineto is not None and kineto.name.startswith(f"worker{rank}_")
    results = convert_directory(folder, tmp_path / "out")
    assert [r.report.rank for r in results] == list(range(8))
    assert all(r.report.duration_source == "kineto" for r in results)
    assert all(abs(r.report.replay_error_pct or 100.0) < 5.0 for r in results)


def test_rank_files_in_a_folder_without_kineto_rank_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "host.json.gz").symlink_to(DLRM / "host.0.json.gz")
    document = json.loads(gzip.decompress((DLRM / "device.0.json.gz").read_bytes()))
    del document["distributedInfo"]
    (tmp_path / "trace.pt.trace.json").write_text(json.dumps(document))
    with pytest.raises(TraceConversionError, match="names no rank"):
        find_rank_files(tmp_path)


def test_traces_of_different_runs_are_rejected_with_why() -> None:
    with pytest.raises(RunMismatchError) as caught:
        convert_pytorch(OTHER_RUN / "host.0.json.gz", OTHER_RUN / "device.0.json.gz")
    message = str(caught.value)
    assert "host pid 1734239, Kineto pid 23442" in message
    assert "days apart" in message and "% of host ops match" in message


def test_forced_different_runs_convert_with_a_warning() -> None:
    with pytest.warns(ConversionWarning, match="look like different runs"):
        result = convert_pytorch(
            OTHER_RUN / "host.0.json.gz", OTHER_RUN / "device.0.json.gz", force=True
        )
    chakra_et.validate(result.graph)
    assert any("different runs" in w for w in result.report.warnings)


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_cli_rejects_different_runs_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["convert", "pytorch", "--host", str(OTHER_RUN / "host.0.json.gz")]
    argv += ["--kineto", str(OTHER_RUN / "device.0.json.gz"), "-o", str(tmp_path / "x.et")]
    assert "different runs: host pid" in _one_line_exit_2(argv, capsys)
    assert main([*argv, "--force"]) == 0
    assert "look like different runs" in capsys.readouterr().out


def test_cli_bad_gpu_inputs_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = str(DLRM / "host.0.json.gz")
    truncated = tmp_path / "device.0.json.gz"
    truncated.write_bytes((DLRM / "device.0.json.gz").read_bytes()[:5000])
    argv = ["convert", "pytorch", "--host", host, "--kineto", str(truncated), "-o", "x.et"]
    assert str(truncated) in _one_line_exit_2(argv, capsys)
    not_json = tmp_path / "device.1.json"
    not_json.write_text("this is not a trace")
    argv = ["convert", "pytorch", "--host", host, "--kineto", str(not_json), "-o", "x.et"]
    assert "not valid JSON" in _one_line_exit_2(argv, capsys)
    schema = tmp_path / "host.2.json"
    schema.write_text(json.dumps({"schema": "3.0.0", "pid": 1, "nodes": []}))
    argv = ["convert", "pytorch", "--host", str(schema), "-o", str(tmp_path / "y.et")]
    assert "schema '3.0.0' is not supported" in _one_line_exit_2(argv, capsys)
    folder = tmp_path / "norank"
    folder.mkdir()
    (folder / "et.json.gz").symlink_to(DLRM / "host.0.json.gz")
    document = json.loads(gzip.decompress((DLRM / "device.0.json.gz").read_bytes()))
    del document["distributedInfo"]
    (folder / "trace.json").write_text(json.dumps(document))
    argv = ["convert", "pytorch", str(folder), "-o", str(tmp_path / "out")]
    assert "names no rank" in _one_line_exit_2(argv, capsys)


def _et_plus(rank: int, out: Path) -> int:
    """DLRM's host trace as the Chakra trace linker writes ET+: each host op with its Kineto
    times, each GPU event it launched as a node (``cat``, ``ts``, durations, ``stream``) under
    it. Returns the number of GPU nodes added."""
    document = json.loads(gzip.decompress((DLRM / f"host.{rank}.json.gz").read_bytes()))
    host = load_host_trace(DLRM / f"host.{rank}.json.gz")
    kineto = load_kineto_trace(DLRM / f"device.{rank}.json.gz")
    link = link_traces(host, kineto)
    by_id = {node["id"]: node for node in document["nodes"]}
    for op_id, span in link.span_of.items():
        by_id[op_id].update(ts=span.ts_us, inclusive_dur=span.dur_us, exclusive_dur=span.dur_us)
    next_id = max(by_id) + 1
    for index, op_id in sorted(link.launcher_of.items()):
        event = kineto.gpu_events[index]
        node = dict(by_id[op_id])  # the linker copies the launching op, then overrides
        node.update(id=next_id, parent=op_id, name=event.name, cat=event.cat, ts=event.ts_us)
        node.update(inclusive_dur=event.dur_us, exclusive_dur=event.dur_us, stream=event.stream)
        document["nodes"].append(node)
        next_id += 1
    out.write_bytes(gzip.compress(json.dumps(document).encode()))
    return len(link.launcher_of)


def test_an_et_plus_trace_keeps_its_kernels_and_warns(tmp_path: Path) -> None:
    path = tmp_path / "host.0.json.gz"
    added = _et_plus(0, path)
    with pytest.warns(ConversionWarning, match=f"ET\\+ trace: its {added} GPU nodes"):
        result = convert_pytorch(path)
    chakra_et.validate(result.graph)
    report = result.report
    assert report.device_fates == {"emitted": added - 8, "timed its collective": 8}
    assert sum(1 for n in result.graph if get_attr(n, "is_cpu_op") is False) == added - 8
    assert sum(report.host_fates.values()) == report.host_nodes_in
    # Collectives take their NCCL kernel's time, as with the Kineto trace beside the host one.
    reference = _dlrm(0).report
    assert [c["duration_us"] for c in report.collectives] == [
        c["duration_us"] for c in reference.collectives
    ]
    assert reference.measured_step_us is not None
    assert abs(report.critical_path_us / reference.measured_step_us - 1) < 0.05


def test_old_kineto_kernels_do_not_wait_for_ops_that_started_after_them() -> None:
    """param's linear pair (Kineto without record-function ids, reused correlation ids):
    an External id can name an op that started after the kernel; the kernel is linked to the
    op around its launch call instead, and the replay spans what the trace spans, from the
    first host op to the last kernel (waiting for ops that came later made it 33% longer)."""
    folder = FIXTURES / "public" / "param_et_replay"
    host = load_host_trace(folder / "linear_et.json.gz")
    kineto = load_kineto_trace(folder / "linear_kineto.json.gz")
    link = link_traces(host, kineto)
    start_us = min(span.ts_us for span in link.span_of.values())
    end_us = max(
        max(span.end_us for span in link.span_of.values()),
        max(kineto.gpu_events[i].end_us for i in link.launcher_of),
    )
    result = convert_pytorch(folder / "linear_et.json.gz", folder / "linear_kineto.json.gz")
    for index, op_id in link.launcher_of.items():
        assert link.span_of[op_id].ts_us <= kineto.gpu_events[index].ts_us
    assert abs(result.report.critical_path_us / (end_us - start_us) - 1) < 0.02
