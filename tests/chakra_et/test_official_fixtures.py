"""Every official Chakra ``.et`` in the shared fixtures reads, writes back byte for byte, and
dumps to the same JSON as the official ``chakra_jsonizer``."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES
from trainsim import chakra_et
from trainsim.chakra_et import ETWriter

GEN = "official-chakra-generator"
COLL = {"COMM_COLL_NODE": 1}

# Node counts by type, as the official tools wrote them (checked against their JSON dumps).
EXPECTED_COUNTS: dict[str, dict[str, int]] = {
    **{
        f"{GEN}/{c}.{r}.et": COLL
        for c in (
            "ALL_GATHER",
            "ALL_REDUCE",
            "ALL_TO_ALL",
            "BARRIER",
            "BROADCAST",
            "REDUCE_SCATTER",
        )
        for r in (0, 1)
    },
    **{f"{GEN}/one_comm_recv_node.{r}.et": {"COMM_RECV_NODE": 1} for r in (0, 1)},
    **{f"{GEN}/one_comm_send_node.{r}.et": {"COMM_SEND_NODE": 1} for r in (0, 1)},
    **{f"{GEN}/one_comp_node.{r}.et": {"COMP_NODE": 1} for r in (0, 1)},
    **{f"{GEN}/one_metadata_node_all_types.{r}.et": {"METADATA_NODE": 1} for r in (0, 1)},
    **{f"{GEN}/one_remote_mem_load_node.{r}.et": {"MEM_LOAD_NODE": 1} for r in (0, 1)},
    **{f"{GEN}/one_remote_mem_store_node.{r}.et": {"MEM_STORE_NODE": 1} for r in (0, 1)},
    **{f"{GEN}/two_comp_nodes_dependent.{r}.et": {"COMP_NODE": 2} for r in (0, 1)},
    **{f"{GEN}/two_comp_nodes_independent.{r}.et": {"COMP_NODE": 2} for r in (0, 1)},
    "official-chakra-text-converter/data_parallel.0.et": {"COMP_NODE": 8, "COMM_COLL_NODE": 3},
    "official-chakra-text-converter/data_parallel.1.et": {"COMP_NODE": 8, "COMM_COLL_NODE": 3},
    "pytorch-cpu/single_transformer/official_chakra/single_transformer.0.et": {"COMP_NODE": 2012},
    "pytorch-cpu/ddp_gloo_2rank/official_chakra/et.0.et": {"COMP_NODE": 358, "METADATA_NODE": 1},
    "pytorch-cpu/ddp_gloo_2rank/official_chakra/et.1.et": {"COMP_NODE": 358, "METADATA_NODE": 1},
}
FEEDER_COUNTS = {"COMP_NODE": 3643, "COMM_COLL_NODE": 21}


def _official_et_files() -> list[str]:
    found = sorted(
        str(p.relative_to(FIXTURES))
        for pattern in (
            f"{GEN}/*.et",
            "official-chakra-text-converter/*.et",
            "pytorch-cpu/*/official_chakra/*.et",
        )
        for p in FIXTURES.glob(pattern)
    )
    return found


def test_every_official_file_is_listed(shared_data: Path) -> None:
    assert _official_et_files() == sorted(EXPECTED_COUNTS)


def _json_objects(path: Path) -> list[Any]:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    decoder, text, pos, out = json.JSONDecoder(), raw.decode(), 0, []
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        obj, pos = decoder.raw_decode(text, pos)
        out.append(obj)
    return out


def _rewrite(graph: chakra_et.ETGraph) -> bytes:
    out = io.BytesIO()
    with ETWriter(out, graph.metadata) as writer:
        writer.write_all(graph.node_list)
    return out.getvalue()


@pytest.mark.parametrize("rel", sorted(EXPECTED_COUNTS))
def test_official_et_counts_bytes_and_json(rel: str, shared_data: Path) -> None:
    path = FIXTURES / rel
    graph = chakra_et.load(path)
    assert graph.count_by_type() == EXPECTED_COUNTS[rel]
    assert _rewrite(graph) == path.read_bytes()
    dumps = [p for p in (Path(f"{path}.json"), Path(f"{path}.json.gz")) if p.exists()]
    if dumps:
        official = _json_objects(dumps[0])
        ours = json.loads("[" + chakra_et.to_json(graph).replace("}{", "},{") + "]")
        assert ours == official
        # The official dump itself parses back into the same bytes.
        assert _rewrite(chakra_et.load_json(dumps[0])) == path.read_bytes()


def test_feeder_trace_from_the_chakra_repository(shared_data: Path) -> None:
    with tarfile.open(FIXTURES / "public" / "chakra" / "feeder_tests_trace.tar.gz") as tar:
        member = tar.extractfile("tests/data/chakra.0.et")
        assert member is not None
        data = member.read()
    graph = chakra_et.load(data)
    assert len(graph) == 3664
    assert graph.count_by_type() == FEEDER_COUNTS
    assert _rewrite(graph) == data
    # The old converter wrote a graph ASTRA-sim cannot finish: 383 nodes control-depend on
    # themselves, a CPU op control-depends on its own GPU kernel (a 2-cycle), 14 CPU-side
    # collectives lack comm_type/comm_size, and control edges point at dropped nodes (warnings).
    problems = chakra_et.check(graph)
    errors = Counter(p.message for p in problems if p.severity == "error")
    assert errors["node depends on itself"] == 383
    assert errors["dependency cycle 3317 -> 3318 -> 3317"] == 1
    assert errors["collective node has no comm_type"] == 14
    assert errors["COMM_COLL_NODE has no comm_size attribute"] == 14
    assert sum(errors.values()) == 383 + 1 + 14 + 14
    warnings = [p for p in problems if p.severity == "warning"]
    assert warnings and all("missing node" in p.message for p in warnings)
    with pytest.raises(chakra_et.ETValidationError, match="3317 -> 3318 -> 3317"):
        chakra_et.summarize(graph)
    colls = [n for n in graph if n.type == chakra_et.NodeType.COMM_COLL_NODE]
    assert len(colls) == 21
    kernel = next(n for n in colls if n.name.startswith("ncclKernel"))
    attrs = chakra_et.attrs_dict(kernel)
    assert {"comm_type", "comm_size", "involved_dim"} <= set(attrs)


def test_unknown_attributes_survive(shared_data: Path, tmp_path: Path) -> None:
    path = FIXTURES / GEN / "one_metadata_node_all_types.0.et"
    graph = chakra_et.load(path)
    out = tmp_path / "copy.et"
    chakra_et.save(graph, out)
    again = chakra_et.load(out)
    assert chakra_et.attrs_dict(again.node_list[0]) == chakra_et.attrs_dict(graph.node_list[0])
    assert len(chakra_et.attrs_dict(graph.node_list[0])) == 30
    assert out.read_bytes() == path.read_bytes()
