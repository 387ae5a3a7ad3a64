"""Kineto traces converted alone (no host execution trace): the HTA traces of
../shared/data/fixtures/public-gpu give their collectives with type, size and group, and say
what they could not recover."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES
from trainsim import chakra_et
from trainsim.chakra_et import NodeType, get_attr
from trainsim.chakra_et.convert import (
    Conversion,
    TraceConversionError,
    convert_directory,
    convert_kineto,
)
from trainsim.studies.cli._main import main

GPU = FIXTURES / "public-gpu"
NCCL_DATA = GPU / "hta_nccl_data_kineto" / "device.0.json.gz"
FILTER = GPU / "hta_trace_filter_kineto_2rank"
DIFF = GPU / "hta_trace_diff_kineto" / "device.3.json.gz"
_DTYPE_BYTES = {"Float": 4, "Half": 2, "BFloat16": 2, "Int": 4, "Long": 8, "Byte": 1}


def _events(path: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(gzip.decompress(path.read_bytes()))["traceEvents"]
    return events


def _kinds(result: Conversion) -> Counter[str]:
    return Counter(c["comm_type"] for c in result.report.collectives)


def test_nccl_metadata_gives_type_size_and_group() -> None:
    result = convert_kineto(NCCL_DATA)
    chakra_et.validate(result.graph)
    report = result.report
    assert report.schema == "kineto" and report.rank == 0
    assert report.process_groups == {"0": [0, 1]}
    # The last step (ProfilerStep#6) of three: its record_param_comms spans say what ran.
    events = _events(NCCL_DATA)
    step = max((e for e in events if e["name"].startswith("ProfilerStep#")), key=lambda e: e["ts"])
    expected = Counter(
        (
            e["args"]["Collective name"],
            e["args"]["In msg nelems"] * _DTYPE_BYTES[e["args"]["dtype"]],
        )
        for e in events
        if e.get("name") == "record_param_comms"
        and step["ts"] <= e["ts"] <= step["ts"] + step["dur"]
        and e["args"].get("Collective name") not in (None, "wait")  # a wait moves nothing
    )
    names = {"ALL_REDUCE": "allreduce", "BROADCAST": "broadcast"}
    found = Counter((names[c["comm_type"]], c["comm_size_bytes"]) for c in report.collectives)
    assert found == expected and sum(found.values()) == 7
    assert {c["pg_source"] for c in report.collectives} == {"NCCL metadata"}
    for node in result.graph:
        if node.type == NodeType.COMM_COLL_NODE:
            assert get_attr(node, "pg_name") == "0" and isinstance(get_attr(node, "stream"), int)
    assert report.measured_step_us == step["dur"]
    assert report.replay_error_pct is not None and abs(report.replay_error_pct) < 5.0
    assert any("converted ProfilerStep#6, the last of 3" in w for w in report.warnings)


def test_kernels_keep_their_streams() -> None:
    result = convert_kineto(NCCL_DATA)
    streams = Counter(
        get_attr(n, "stream") for n in result.graph if get_attr(n, "is_cpu_op") is False
    )
    assert streams[7] > 1000  # the compute stream
    assert result.report.device_fates["emitted"] == sum(streams.values())


@pytest.mark.parametrize("rank", [0, 1])
def test_ranks_of_a_128_gpu_job_convert_and_report_missing_sizes(rank: int) -> None:
    result = convert_kineto(FILTER / f"device.{rank}.json.gz")
    chakra_et.validate(result.graph)
    report = result.report
    assert report.rank == rank
    assert _kinds(result) == Counter({"ALL_REDUCE": 2, "ALL_TO_ALL": 2, "ALL_GATHER": 1})
    # record_param_comms holds only empty "Input Dims" here: sizes cannot be recovered.
    assert any("with no size" in w for w in report.warnings)
    assert any("name no process group" in w for w in report.warnings)
    assert report.replay_error_pct is not None and abs(report.replay_error_pct) < 5.0


def test_collectives_recorded_only_as_backend_spans_are_kept() -> None:
    result = convert_kineto(DIFF)
    chakra_et.validate(result.graph)
    report = result.report
    assert report.rank == 3
    assert _kinds(result) == Counter({"ALL_TO_ALL": 7, "ALL_REDUCE": 3})
    assert report.host_fates["emitted: backend span as its collective (no c10d op)"] == 7
    assert sum(report.host_fates.values()) == report.host_nodes_in
    assert report.replay_error_pct is not None and abs(report.replay_error_pct) < 5.0


def test_cli_converts_a_kineto_trace_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "k.et"
    assert main(["convert", "pytorch", "--kineto", str(NCCL_DATA), "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["host"] == "(Kineto only)" and report["et_nodes_out"] == len(chakra_et.load(out))


def test_a_kineto_trace_with_no_rank_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(gzip.decompress(NCCL_DATA.read_bytes()))
    del document["distributedInfo"]
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps(document))
    assert main(["convert", "pytorch", "--kineto", str(trace), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "names no rank" in err and len(err.splitlines()) == 1
    with pytest.raises(TraceConversionError, match="names no rank"):
        convert_kineto(trace)
    assert convert_kineto(trace, rank=0).report.rank == 0


def test_a_directory_of_kineto_traces_converts_every_rank(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for rank in (0, 1):  # names that say nothing: distributedInfo gives the rank
        (folder / f"sampled_{'ab'[rank]}.pt.trace.json.gz").symlink_to(
            FILTER / f"device.{rank}.json.gz"
        )
    results = convert_directory(folder, tmp_path / "out")
    assert [r.report.rank for r in results] == [0, 1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["et.0.et", "et.1.et"]
