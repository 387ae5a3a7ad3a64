"""Host-ET and Kineto readers: every malformed input raises only this package's error types."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainsim.chakra_et import ChakraETError
from trainsim.chakra_et.convert import (
    HostTraceError,
    KinetoTraceError,
    UnsupportedSchemaError,
    convert_traces,
    load_host_trace,
    load_kineto_trace,
    parse_host_trace,
    parse_kineto_trace,
)
from trainsim.chakra_et.convert._host_et import iter_tensors

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)

_NEW_NODE: dict[str, Any] = {
    "id": 5,
    "name": "aten::mm",
    "ctrl_deps": 2,
    "inputs": {"values": [[1, 2, 0, 16, 4, "cpu"]], "shapes": [[4, 4]], "types": ["Tensor(float)"]},
    "outputs": {
        "values": [[3, 4, 0, 16, 4, "cpu"]],
        "shapes": [[4, 4]],
        "types": ["Tensor(float)"],
    },
    "attrs": [
        {"name": "rf_id", "type": "uint64", "value": 3},
        {"name": "tid", "type": "uint64", "value": 1},
    ],
}
_ROOT = {"id": 2, "name": "[pytorch|profiler|execution_trace|thread]", "ctrl_deps": 1, "attrs": []}


def _doc(nodes: list[Any], schema: object = "1.1.1-chakra.0.0.4") -> dict[str, Any]:
    return {"schema": schema, "pid": 1, "nodes": nodes}


def test_a_minimal_trace_parses_and_converts() -> None:
    host = parse_host_trace(_doc([_ROOT, _NEW_NODE]))
    assert [op.name for op in host.ops] == ["[pytorch|profiler|execution_trace|thread]", "aten::mm"]
    assert host.by_id[5].rf_id == 3 and host.by_id[5].parent == 2
    result = convert_traces(host)
    assert result.report.et_nodes_out == 1


@pytest.mark.parametrize("schema", ["2.0.0", "0.9.1", "1.2.0-chakra.0.0.4", "x", ""])
def test_unknown_schema_names_the_version(schema: str) -> None:
    with pytest.raises(UnsupportedSchemaError, match=repr(schema).replace(".", r"\.")):
        parse_host_trace(_doc([], schema), "trace.json")


@pytest.mark.parametrize(
    "schema",
    [
        "1.0.1",
        "1.0.2-chakra.0.0.4",
        "1.0.3-chakra.0.0.4",
        "1.1.0-chakra.0.0.4",
        "1.1.1-chakra.0.0.4",
        "1.1.5",
    ],
)
def test_known_schemas_are_accepted(schema: str) -> None:
    assert parse_host_trace(_doc([], schema)).schema == schema


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("id", "7", "'id'"),
        ("name", 3, "'name'"),
        ("ctrl_deps", [1], "'ctrl_deps'"),
        ("attrs", {"rf_id": 1}, "'attrs'"),
        ("inputs", [1, 2], "'inputs'"),
    ],
)
def test_bad_fields_are_named(field: str, value: object, needle: str) -> None:
    node = dict(_NEW_NODE, **{field: value})
    with pytest.raises(HostTraceError, match=needle):
        parse_host_trace(_doc([node]), "t.json")


def test_duplicate_ids_are_an_error() -> None:
    with pytest.raises(HostTraceError, match="node 5: duplicate node id"):
        parse_host_trace(_doc([_NEW_NODE, _NEW_NODE]))


def test_files_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(gzip.compress(b"{not json"))
    with pytest.raises(HostTraceError, match=r"bad\.json\.gz: not valid JSON"):
        load_host_trace(bad)
    with pytest.raises(HostTraceError, match="no such file"):
        load_host_trace(tmp_path / "missing.json")
    truncated = tmp_path / "cut.json.gz"
    truncated.write_bytes(gzip.compress(b'{"traceEvents": []}')[:-6])
    with pytest.raises(KinetoTraceError, match=r"cut\.json\.gz"):
        load_kineto_trace(truncated)


def test_iter_tensors_reads_nested_lists() -> None:
    value = [[[1, 2, 0, 4, 4, "cpu"], [3, 4, 0, 2, 8, "cpu"]]]
    assert sorted(iter_tensors(value, "GenericList[Tensor(float)]")) == [(1, 2, 16), (3, 4, 16)]
    assert list(iter_tensors([1, 2, 3], "GenericList[Int]")) == []


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(document=json_values)
def test_arbitrary_json_gives_only_host_trace_errors(document: object) -> None:
    try:
        host = parse_host_trace(document, "fuzz.json")
    except HostTraceError:
        return
    convert_traces(host, check=False)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    nodes=st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "id": st.integers(-3, 12) | st.integers(2**63 - 2, 2**64) | json_values,
                "name": st.sampled_from(
                    [
                        "aten::mm",
                        "c10d::allreduce_",
                        "gloo:all_reduce",
                        "c10d::send",
                        "record_param_comms",
                        "ProfilerStep#1",
                        "## process_group:init ##",
                        "[pytorch|profiler|execution_trace|thread]",
                    ]
                )
                | json_values,
                "ctrl_deps": st.integers(-1, 12) | json_values,
                "inputs": st.fixed_dictionaries(
                    {
                        "values": st.lists(json_values, max_size=4),
                        "types": st.lists(
                            st.sampled_from(
                                ["Tensor(float)", "Int", "GenericList[Tensor(float)]", "String"]
                            ),
                            max_size=4,
                        ),
                    }
                )
                | json_values,
                "attrs": st.lists(
                    st.fixed_dictionaries(
                        {
                            "name": st.sampled_from(["rf_id", "tid", "scope", "pg_name"]),
                            "value": json_values,
                        }
                    ),
                    max_size=3,
                )
                | json_values,
            },
        ),
        max_size=12,
    )
)
def test_malformed_nodes_give_only_host_trace_errors_and_valid_graphs(nodes: list[Any]) -> None:
    try:
        host = parse_host_trace(_doc(nodes), "fuzz.json")
    except HostTraceError:
        return
    try:
        result = convert_traces(host)  # validates: the graph is acyclic and well-formed
    except ChakraETError as exc:  # pragma: no cover - a failure here is a bug
        raise AssertionError(f"valid host trace gave an invalid ET: {exc}") from exc
    report = result.report
    assert sum(report.host_fates.values()) == report.host_nodes_in == len(host.ops)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    events=st.lists(
        st.fixed_dictionaries(
            {"ph": st.sampled_from(["X", "M", "i", 3])},
            optional={
                "cat": st.sampled_from(["cpu_op", "kernel", "cuda_runtime", "user_annotation"])
                | json_values,
                "name": json_values,
                "ts": st.floats(allow_nan=False) | json_values,
                "dur": st.floats(allow_nan=False) | json_values,
                "tid": json_values,
                "args": st.dictionaries(
                    st.sampled_from(["Record function id", "External id", "correlation", "stream"]),
                    json_values,
                ),
            },
        )
        | json_values,
        max_size=8,
    )
)
@pytest.mark.filterwarnings("ignore::trainsim.chakra_et.ConversionWarning")
def test_malformed_kineto_gives_only_kineto_errors(events: list[Any]) -> None:
    try:
        trace = parse_kineto_trace(
            {"traceEvents": events, "distributedInfo": {"rank": 0}}, "k.json"
        )
    except KinetoTraceError:
        return
    host = parse_host_trace(_doc([_ROOT, _NEW_NODE]))
    # Random events are another run's by every measure: forced, the build must still hold.
    convert_traces(host, trace, force=True)


def test_kineto_top_level_must_hold_events() -> None:
    with pytest.raises(KinetoTraceError, match="traceEvents"):
        parse_kineto_trace({"traceEvents": 3})
    with pytest.raises(KinetoTraceError):
        parse_kineto_trace("nope")
    assert json.dumps(parse_kineto_trace([]).distributed_info) == "{}"
