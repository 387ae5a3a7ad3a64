"""``ETGraph`` queries, attribute typing and validation rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainsim import chakra_et
from trainsim.chakra_et import (
    CollectiveCommType,
    ETGraph,
    ETValidationError,
    NodeType,
    get_attr,
    make_attr,
    new_node,
    set_attr,
)

COMP, COLL = NodeType.COMP_NODE, NodeType.COMM_COLL_NODE


def _diamond() -> ETGraph:
    return ETGraph(
        nodes=[
            new_node(1, "a", COMP, duration_micros=10),
            new_node(2, "b", COMP, duration_micros=5, data_deps=[1]),
            new_node(3, "c", COMP, duration_micros=30, ctrl_deps=[1]),
            new_node(4, "d", COMP, duration_micros=1, data_deps=[2], ctrl_deps=[3]),
        ]
    )


def test_parents_children_roots() -> None:
    graph = _diamond()
    assert graph.parents(4) == [2, 3]
    assert graph.children(1) == [2, 3]
    assert graph.roots() == [1]
    assert 3 in graph and 9 not in graph


def test_topological_order_and_critical_path() -> None:
    graph = _diamond()
    assert graph.topological_order() == [1, 2, 3, 4]
    assert graph.critical_path() == (41, [1, 3, 4])


def test_cycle_is_named() -> None:
    graph = _diamond()
    graph.node_list[0].ctrl_deps.append(4)
    graph.add(new_node(5, "e", COMP))  # invalidates caches
    assert graph.find_cycle() in ([1, 3, 4, 1], [1, 2, 4, 1])
    with pytest.raises(ETValidationError, match="dependency cycle 1 -> "):
        graph.topological_order()
    with pytest.raises(ETValidationError, match="dependency cycle"):
        chakra_et.validate(graph)


def test_to_networkx_edges() -> None:
    nxg = _diamond().to_networkx()
    assert set(nxg.edges) == {(1, 2), (1, 3), (2, 4), (3, 4)}
    assert nxg.edges[3, 4]["kind"] == "ctrl"
    assert nxg.nodes[3]["duration_micros"] == 30


def test_reserved_attributes_get_exact_oneof_types() -> None:
    node = new_node(
        1,
        "ar",
        COLL,
        attrs={
            "is_cpu_op": False,
            "num_ops": 5,
            "tensor_size": 7,
            "comm_type": CollectiveCommType.ALL_REDUCE,
            "comm_size": 1 << 40,
            "comm_priority": 1,
            "comm_src": 0,
            "comm_dst": 1,
            "comm_tag": 3,
            "pg_name": "2",
        },
    )
    kinds = {a.name: a.WhichOneof("value") for a in node.attr}
    assert kinds == {
        "is_cpu_op": "bool_val",
        "num_ops": "int64_val",
        "tensor_size": "uint64_val",
        "comm_type": "int64_val",
        "comm_size": "int64_val",
        "comm_priority": "int32_val",
        "comm_src": "int32_val",
        "comm_dst": "int32_val",
        "comm_tag": "int32_val",
        "pg_name": "string_val",
    }
    set_attr(node, "comm_size", 8)
    assert get_attr(node, "comm_size") == 8 and len(node.attr) == 10


def test_attribute_range_and_kind_errors() -> None:
    with pytest.raises(ValueError, match="comm_src"):
        make_attr("comm_src", 2**31)
    with pytest.raises(ValueError, match="unknown kind"):
        make_attr("x", 1, kind="int128")
    assert make_attr("xs", [1.5, 2.5]).WhichOneof("value") == "double_list"
    assert make_attr("u", 3, kind="uint32_list").uint32_list.values == [3]


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(
            st.booleans(),
            st.integers(-(2**63), 2**63 - 1),
            st.floats(allow_nan=False),
            st.text(max_size=10),
            st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=4),
        ),
        max_size=6,
    )
)
def test_attribute_values_round_trip(values: dict[str, object]) -> None:
    reserved = set(chakra_et.RESERVED_ATTR_KINDS)
    values = {k: v for k, v in values.items() if k not in reserved}
    node = new_node(1, "n", COMP, attrs=values)
    again = chakra_et.from_json(chakra_et.to_json(ETGraph(nodes=[node]))).node_list[0]
    assert chakra_et.attrs_dict(again) == values


def test_validation_collects_every_problem() -> None:
    graph = ETGraph(
        nodes=[
            new_node(1, "a", COMP),
            new_node(1, "dup", COMP),
            new_node(2, "self", COMP, ctrl_deps=[2]),
            new_node(3, "coll", COLL),
            new_node(4, "send", NodeType.COMM_SEND_NODE, attrs={"comm_dst": -1}),
            new_node(5, "long", COMP, duration_micros=10**13, data_deps=[77]),
            new_node(6, "bad", NodeType.INVALID_NODE),
            new_node(7, "ct", COLL, attrs={"comm_type": 42, "comm_size": 1}),
        ]
    )
    problems = chakra_et.check(graph)
    found = {(p.node_id, p.field, p.severity) for p in problems}
    assert (1, "id", "error") in found
    assert (2, "deps", "error") in found
    assert (3, "comm_type", "error") in found and (3, "comm_size", "error") in found
    assert {(4, f, "error") for f in ("comm_size", "comm_tag", "comm_dst")} <= found
    assert (5, "duration_micros", "error") in found
    assert (5, "data_deps", "warning") in found
    assert (6, "type", "error") in found
    assert (7, "comm_type", "error") in found
    with pytest.raises(ETValidationError) as info:
        chakra_et.validate(graph, source="x.et")
    assert str(info.value).startswith("x.et: ")
    assert all(p.severity == "error" for p in info.value.problems)


def test_valid_graph_returns_warnings_only() -> None:
    graph = _diamond()
    graph.node_list[0].ctrl_deps.append(1234)
    warnings = chakra_et.validate(graph)
    assert [p.field for p in warnings] == ["ctrl_deps"]
