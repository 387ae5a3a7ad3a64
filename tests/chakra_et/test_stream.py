"""Reading and writing the length-delimited ``.et`` stream, and its failure modes."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from trainsim import chakra_et
from trainsim.chakra_et import (
    ETFormatError,
    ETReader,
    ETWriter,
    NodeType,
    _stream,
    new_metadata,
    new_node,
)


def _graph(n: int) -> chakra_et.ETGraph:
    graph = chakra_et.ETGraph(new_metadata(attrs={"world_size": 2}))
    for i in range(n):
        deps = [i - 1] if i else []
        graph.add(
            new_node(
                i,
                f"op{i}",
                NodeType.COMP_NODE,
                duration_micros=i % 7,
                data_deps=deps,
                attrs={"num_ops": 1000 * i, "tensor_size": 4 * i},
            )
        )
    return graph


def _bytes(graph: chakra_et.ETGraph) -> bytes:
    out = io.BytesIO()
    with ETWriter(out, graph.metadata) as writer:
        writer.write_all(graph.node_list)
    return out.getvalue()


def test_round_trip_plain_and_gzip(tmp_path: Path) -> None:
    graph = _graph(50)
    for name in ("t.0.et", "t.0.et.gz"):
        path = tmp_path / name
        chakra_et.save(graph, path)
        assert chakra_et.load(path).node_list == graph.node_list
    assert (tmp_path / "t.0.et.gz").read_bytes()[:2] == b"\x1f\x8b"
    # gzip is detected by magic, not by the name
    disguised = tmp_path / "disguised.et"
    disguised.write_bytes(gzip.compress((tmp_path / "t.0.et").read_bytes()))
    assert chakra_et.load(disguised).node_list == graph.node_list


def test_gzip_output_is_deterministic(tmp_path: Path) -> None:
    graph = _graph(10)
    chakra_et.save(graph, tmp_path / "a.et.gz")
    chakra_et.save(graph, tmp_path / "b.et.gz")
    assert (tmp_path / "a.et.gz").read_bytes() == (tmp_path / "b.et.gz").read_bytes()


def test_streaming_across_chunk_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = _graph(300)
    data = _bytes(graph)
    for chunk in (1, 2, 3, 7, 64):
        monkeypatch.setattr(_stream, "_CHUNK_BYTES", chunk)
        with ETReader(data) as reader:
            assert reader.metadata == graph.metadata
            assert list(reader) == graph.node_list


def test_iter_nodes_streams_lazily() -> None:
    data = _bytes(_graph(5))
    it = chakra_et.iter_nodes(data)
    assert next(it).id == 0
    assert [n.id for n in it] == [1, 2, 3, 4]


def test_large_length_prefix_varint() -> None:
    # a node with a long name needs a multi-byte length prefix
    graph = chakra_et.ETGraph(new_metadata(), [new_node(1, "x" * 100_000, NodeType.COMP_NODE)])
    assert chakra_et.load(_bytes(graph)).node_list[0].name == "x" * 100_000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"\x05abc", "cut short"),
        (b"\x80", "ends inside a length prefix"),
        (b"\x00", "zero-length"),
        (b"\xff" * 11, "longer than 10 bytes"),
        (b"\xff\xff\xff\xff\x0f", "exceeds"),
        (b"\x02\x0a\x00\x00", "zero-length"),
        (b"\x1f\x8b\x08\x00garbage", "cannot read data"),
    ],
)
def test_malformed_streams_name_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(ETFormatError, match=message):
        chakra_et.load(data)


def test_truncated_real_file_reports_offset() -> None:
    data = _bytes(_graph(20))
    with pytest.raises(ETFormatError, match=r"at byte \d+: message of \d+ bytes is cut short"):
        chakra_et.load(data[:-3])


def test_unparsable_node_names_its_index() -> None:
    meta = new_metadata().SerializeToString()
    bad = b"\x0a\x05ab"  # field 1 (id) declared with wire type 2, then a short length
    data = bytes([len(meta)]) + meta + bytes([len(bad)]) + bad
    with pytest.raises(ETFormatError, match="message 1"):
        chakra_et.load(data)


def test_missing_file_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        chakra_et.load(tmp_path / "nope.et")


def test_varint_encoding_matches_protobuf() -> None:
    from google.protobuf.internal.encoder import _VarintBytes

    for value in (0, 1, 127, 128, 300, 2**21, 2**35 + 5, 2**63):
        assert _stream.encode_varint(value) == _VarintBytes(value)
