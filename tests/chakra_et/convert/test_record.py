"""Fresh traces recorded with torch on CPU (gloo, 2 and 4 processes) convert into ETs that
show exactly the communication the recording script issued."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from trainsim import chakra_et
from trainsim.chakra_et import CollectiveCommType, NodeType, get_attr
from trainsim.chakra_et.convert import Conversion, convert_directory

pytest.importorskip("torch")


def _record(mode: str, world: int, out: Path) -> list[Conversion]:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.chakra_et.convert._record_worker",
            mode,
            str(world),
            str(out),
        ],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return convert_directory(out, out / "et")


@pytest.fixture(scope="module")
def explicit4(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Conversion]]:
    out = tmp_path_factory.mktemp("explicit4")
    return out, _record("explicit", 4, out)


@pytest.fixture(scope="module")
def fsdp2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Conversion]]:
    out = tmp_path_factory.mktemp("fsdp2")
    return out, _record("fsdp", 2, out)


def _expected(out: Path, rank: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / f"expected.{rank}.json").read_text())
    return data


def _comm_nodes(result: Conversion) -> list[dict[str, Any]]:
    """Every communication node as (type, bytes, ranks of its group, src, dst, tag)."""
    meta = result.graph.metadata
    rows = []
    for node in result.graph:
        if node.type not in (
            NodeType.COMM_COLL_NODE,
            NodeType.COMM_SEND_NODE,
            NodeType.COMM_RECV_NODE,
        ):
            continue
        if node.type == NodeType.COMM_COLL_NODE:
            comm_type = get_attr(node, "comm_type")
            assert isinstance(comm_type, int)
            kind = CollectiveCommType.Name(comm_type)
        else:
            kind = "SEND" if node.type == NodeType.COMM_SEND_NODE else "RECV"
        rows.append(
            {
                "type": kind,
                "bytes": get_attr(node, "comm_size"),
                "ranks": get_attr(meta, f"pg_ranks:{get_attr(node, 'pg_name')!s}"),
                "src": get_attr(node, "comm_src"),
                "dst": get_attr(node, "comm_dst"),
                "tag": get_attr(node, "comm_tag"),
            }
        )
    return rows


def test_explicit_collectives_on_4_ranks(explicit4: tuple[Path, list[Conversion]]) -> None:
    out, results = explicit4
    assert len(results) == 4
    for rank, result in enumerate(results):
        chakra_et.validate(result.graph)
        found = _comm_nodes(result)
        for want in _expected(out, rank)["expected"]:
            matches = [
                row for row in found if all(row[k] == v for k, v in want.items() if k in row)
            ]
            assert matches, f"rank {rank}: {want} not in the converted ET"
        # DDP's gradient all-reduce moves every parameter byte.
        params_bytes = _expected(out, rank)["params_bytes"]
        big = [r["bytes"] for r in found if r["type"] == "ALL_REDUCE" and r["bytes"] > 10_000]
        assert sum(big) == params_bytes
        report = result.report
        assert sum(report.host_fates.values()) == report.host_nodes_in
        assert report.replay_error_pct is not None and abs(report.replay_error_pct) < 10


def test_subgroup_is_placed_on_its_ranks(explicit4: tuple[Path, list[Conversion]]) -> None:
    _, results = explicit4
    for rank in (0, 2):
        sub = [
            r for r in _comm_nodes(results[rank]) if r["type"] == "ALL_REDUCE" and r["bytes"] == 128
        ]
        assert [r["ranks"] for r in sub] == [[0, 2]]
    for rank in (1, 3):
        assert not [r for r in _comm_nodes(results[rank]) if r["bytes"] == 128]


def test_send_recv_pairs_match_across_4_ranks(explicit4: tuple[Path, list[Conversion]]) -> None:
    _, results = explicit4
    sends: Counter[tuple[Any, ...]] = Counter()
    recvs: Counter[tuple[Any, ...]] = Counter()
    for result in results:
        for row in _comm_nodes(result):
            key = (row["src"], row["dst"], row["tag"], row["bytes"])
            if row["type"] == "SEND":
                sends[key] += 1
            elif row["type"] == "RECV":
                recvs[key] += 1
    assert sends == recvs
    assert sorted(sends) == [(r, (r + 1) % 4, 7, 512) for r in range(4)]


def test_fsdp2_all_gathers_and_reduce_scatters(fsdp2: tuple[Path, list[Conversion]]) -> None:
    out, results = fsdp2
    for rank, result in enumerate(results):
        chakra_et.validate(result.graph)
        rows = _comm_nodes(result)
        params_bytes = _expected(out, rank)["params_bytes"]
        gathers = [r for r in rows if r["type"] == "ALL_GATHER"]
        scatters = [r for r in rows if r["type"] == "REDUCE_SCATTER"]
        assert len(scatters) == 2, "one reduce-scatter per sharded Linear"
        assert len(gathers) >= 2
        # Each rank gathers its shard: shards of both layers make half the (padded) params.
        assert params_bytes <= sum(r["bytes"] for r in scatters) <= params_bytes + 1024
        assert all(r["ranks"] == [0, 1] for r in gathers + scatters)
        assert result.report.replay_error_pct is not None
        assert abs(result.report.replay_error_pct) < 10


def test_capture_records_and_converts_in_process(tmp_path: Path) -> None:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with chakra_et.capture(tmp_path, warmup_steps=1, rank=3) as cap:
        for _ in range(2):
            loss = model(torch.randn(4, 32)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            cap.step()
    assert cap.conversion is not None
    assert cap.host_path.name == "host.3.json" and cap.kineto_path.name == "device.3.json"
    assert chakra_et.load(tmp_path / "et.3.et").count_by_type()["COMP_NODE"] > 5
    report = cap.conversion.report
    assert report.kineto_match_ratio == 1.0
    assert report.replay_error_pct is not None and abs(report.replay_error_pct) < 25


def test_capture_without_steps_is_a_clear_error(tmp_path: Path) -> None:
    with (
        pytest.raises(chakra_et.CaptureError, match=r"call session\.step"),
        chakra_et.capture(tmp_path, warmup_steps=2),
    ):
        pass
