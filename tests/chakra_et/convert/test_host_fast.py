"""The typed msgspec reader of host ETs reads every trace as the ``json`` path does, and host
traces still load without msgspec."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainsim.chakra_et.convert import HostTraceError, _host_et, convert_pytorch, parse_host_trace
from trainsim.chakra_et.convert._host_et import HostOp, HostTrace, load_host_trace, typed_parser

pytest.importorskip("msgspec")
from trainsim.chakra_et.convert._host_fast import parse_typed

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "fixtures"

_NODE: dict[str, Any] = {
    "id": 5,
    "name": "aten::mm",
    "ctrl_deps": 3,
    "inputs": {"values": [[1, 2, 0, 16, 4, "cpu"]], "shapes": [[4, 4]], "types": ["Tensor(float)"]},
    "outputs": {"values": [[3, 4, 0, 16, 4, "cpu"]], "types": ["Tensor(float)"]},
    "attrs": [
        {"name": "rf_id", "type": "uint64", "value": 3},
        {"name": "tid", "type": "uint64", "value": 1},
        {"name": "scope", "type": "uint64", "value": 0},
    ],
}
_NODES: list[dict[str, Any]] = [
    {"id": 1, "name": "[pytorch|profiler|execution_trace|process]", "ctrl_deps": 1, "attrs": []},
    {"id": 2, "name": "[pytorch|profiler|execution_trace|thread]", "ctrl_deps": 1, "attrs": []},
    {"id": 3, "name": "ProfilerStep#1", "ctrl_deps": 2, "attrs": [{"name": "scope", "value": 7}]},
    _NODE,
]
_FIELDS = ("id", "name", "ctrl_deps", "inputs", "outputs", "attrs")
_EXTRA = ("cat", "ts", "dur", "inclusive_dur", "exclusive_dur", "stream")
_scalars = st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats()
_values = _scalars | st.text(max_size=4)
_values = _values | st.lists(_values, max_size=2) | st.dictionaries(st.text(max_size=4), _values)


def _key(trace: HostTrace) -> tuple[Any, ...]:
    ops = [tuple(repr(getattr(op, name)) for name in HostOp.__slots__) for op in trace.ops]
    return trace.schema, trace.pid, trace.recorded_at, ops


def _both(document: Any) -> tuple[Any, Any]:
    """What the typed reader and the ``json`` path make of one document."""
    data = json.dumps(document).encode()
    try:
        typed: Any = parse_typed(data, "t.json")
    except HostTraceError as exc:
        typed = str(exc)
    try:
        plain: Any = parse_host_trace(json.loads(data), "t.json")
    except HostTraceError as exc:
        plain = str(exc)
    return typed, plain


def _assert_same(document: Any) -> None:
    typed, plain = _both(document)
    if typed is None:
        return  # the json path reads it
    if isinstance(typed, str):
        assert typed == plain
    else:
        assert not isinstance(plain, str), plain
        assert _key(typed) == _key(plain)


def test_a_common_trace_is_read_typed_and_the_same() -> None:
    document = {"schema": "1.1.1-chakra.0.0.4", "pid": 7, "time": "2024-01-01", "nodes": _NODES}
    typed, plain = _both(document)
    assert isinstance(typed, HostTrace)
    assert _key(typed) == _key(plain)


@pytest.mark.parametrize(
    "change",
    [
        {"cat": "cpu_op", "ts": 10, "inclusive_dur": 4, "exclusive_dur": 3},
        {"stream": 7},
        {"dur": 2.5},
        {"attrs": [{"name": "inclusive_dur", "value": 9}, {"name": "rf_id", "value": 3}]},
        {"attrs": [{"name": "dur", "value": 9}, {"name": "tid", "value": 2**63}]},
        {"inputs": {}},
        {"inputs": None, "outputs": {"values": None, "types": None}},
    ],
)
def test_unusual_nodes_read_as_with_json(change: dict[str, Any]) -> None:
    node = {**_NODE, **change}
    _assert_same({"schema": "1.0.2", "nodes": [*_NODES[:3], node]})
    partial = {k: v for k, v in node.items() if k not in ("ctrl_deps", "id")}
    _assert_same({"schema": "1.0.2", "nodes": [*_NODES[:3], partial]})


def test_errors_are_the_json_paths() -> None:
    assert parse_typed(b"{not json", "t.json") is None
    assert parse_typed(json.dumps({"schema": "1.0.1", "nodes": []}).encode(), "t.json") is None
    assert _both({"schema": "9.0", "nodes": _NODES})[0] == _both({"schema": "9.0", "nodes": []})[1]
    _assert_same({"schema": "1.1.0", "nodes": [_NODE, _NODE]})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_FIELDS + _EXTRA + ("inputs.values", "inputs.types", "attrs.0")),
            st.booleans(),
            _values,
        ),
        max_size=3,
    )
)
def test_any_changed_node_reads_as_with_json(changes: list[tuple[str, bool, Any]]) -> None:
    node = copy.deepcopy(_NODE)
    for path, drop, value in changes:
        outer, _, last = path.rpartition(".")
        target = node.get(outer) if outer else node
        if isinstance(target, list) and target:
            target[0] = value
        elif isinstance(target, dict) and drop:
            target.pop(last, None)
        elif isinstance(target, dict):
            target[last] = value
    _assert_same({"schema": "1.1.1", "nodes": [*_NODES[:3], node]})


def test_fixtures_read_the_same_typed(tmp_path: Path) -> None:
    hosts = sorted((FIXTURES / "pytorch-cpu").glob("*/host.*.json.gz"))
    assert hosts
    for host in hosts[:4]:
        data = _host_et.read_trace_bytes(str(host), HostTraceError)
        typed = parse_typed(data, str(host))
        assert typed is not None
        assert _key(typed) == _key(parse_host_trace(json.loads(data), str(host)))


def test_host_traces_load_without_msgspec(monkeypatch: pytest.MonkeyPatch) -> None:
    host = sorted((FIXTURES / "pytorch-cpu").glob("*/host.0.json.gz"))[0]
    with_msgspec = convert_pytorch(host)
    monkeypatch.setitem(sys.modules, "msgspec", None)  # import msgspec raises ImportError
    monkeypatch.delitem(sys.modules, "trainsim.chakra_et.convert._host_fast")
    assert typed_parser() is None
    without = convert_pytorch(host)
    assert without.graph.node_list == with_msgspec.graph.node_list
    assert _key(load_host_trace(host)) == _key(
        parse_host_trace(
            json.loads(_host_et.read_trace_bytes(str(host), HostTraceError)), str(host)
        )
    )
