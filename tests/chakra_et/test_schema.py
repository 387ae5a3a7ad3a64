"""The committed protobuf bindings match et_def.proto and the official Chakra numbering."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trainsim.chakra_et.schema import (
    AttributeProto,
    CollectiveCommType,
    GlobalMetadata,
    Node,
    NodeType,
)

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "chakra_et" / "schema"


def test_node_type_numbers_match_chakra_v1() -> None:
    expected = {
        "INVALID_NODE": 0,
        "METADATA_NODE": 1,
        "MEM_LOAD_NODE": 2,
        "MEM_STORE_NODE": 3,
        "COMP_NODE": 4,
        "COMM_SEND_NODE": 5,
        "COMM_RECV_NODE": 6,
        "COMM_COLL_NODE": 7,
    }
    assert dict(NodeType.items()) == expected


def test_collective_numbers_match_chakra_v1() -> None:
    expected = [
        "ALL_REDUCE",
        "REDUCE",
        "ALL_GATHER",
        "GATHER",
        "SCATTER",
        "BROADCAST",
        "ALL_TO_ALL",
        "REDUCE_SCATTER",
        "REDUCE_SCATTER_BLOCK",
        "BARRIER",
    ]
    assert [CollectiveCommType.Name(i) for i in range(10)] == expected


def test_field_numbers() -> None:
    node_fields = {f.name: f.number for f in Node.DESCRIPTOR.fields}
    assert node_fields == {
        "id": 1,
        "name": 2,
        "type": 3,
        "ctrl_deps": 4,
        "data_deps": 5,
        "start_time_micros": 6,
        "duration_micros": 7,
        "inputs": 8,
        "outputs": 9,
        "attr": 10,
    }
    assert {f.name: f.number for f in GlobalMetadata.DESCRIPTOR.fields} == {"version": 1, "attr": 2}
    oneof = AttributeProto.DESCRIPTOR.oneofs_by_name["value"]
    numbers = sorted(f.number for f in oneof.fields)
    assert numbers == list(range(3, 33))
    assert Node.DESCRIPTOR.file.package == "ChakraProtoMsg"


def test_committed_bindings_match_generator(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    shutil.copy(SCHEMA_DIR / "et_def.proto", tmp_path / "et_def.proto")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{tmp_path}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            str(tmp_path / "et_def.proto"),
        ],
        check=True,
    )
    for name in ("et_def_pb2.py", "et_def_pb2.pyi"):
        generated = (tmp_path / name).read_text()
        committed = (SCHEMA_DIR / name).read_text()
        assert generated == committed, f"{name} is stale: run `make proto`"
