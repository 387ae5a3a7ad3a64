"""Property tests: whatever bytes the reader gets, only our exception types come out."""

from __future__ import annotations

import contextlib
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES
from trainsim import chakra_et
from trainsim.chakra_et import ChakraETError, ETWriter, NodeType, new_metadata, new_node


def _reference_bytes() -> bytes:
    graph = chakra_et.ETGraph(new_metadata(attrs={"k": "v"}))
    for i in range(20):
        graph.add(
            new_node(
                i,
                f"n{i}",
                NodeType.COMM_COLL_NODE if i % 5 == 0 else NodeType.COMP_NODE,
                duration_micros=i,
                data_deps=[i - 1] if i else [],
                attrs={"comm_type": 0, "comm_size": 1 << i} if i % 5 == 0 else {"num_ops": i},
            )
        )
    out = io.BytesIO()
    with ETWriter(out, graph.metadata) as writer:
        writer.write_all(graph.node_list)
    return out.getvalue()


REFERENCE = _reference_bytes()
OFFICIAL = (FIXTURES / "official-chakra-text-converter" / "data_parallel.0.et").read_bytes()


def _exercise(data: bytes) -> None:
    try:
        graph = chakra_et.load(data)
        chakra_et.check(graph)
        chakra_et.summarize(graph)
        chakra_et.from_json(chakra_et.to_json(graph))
    except ChakraETError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    _exercise(data)


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from([REFERENCE, OFFICIAL]),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=8),
    cut=st.integers(min_value=0),
)
def test_mutated_real_bytes(base: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(base)
    for pos, value in edits:
        data[pos % len(data)] = value
    _exercise(bytes(data[: max(1, len(data) - cut % 16)]))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_json_text(text: str) -> None:
    with contextlib.suppress(ChakraETError):
        chakra_et.from_json(text)
