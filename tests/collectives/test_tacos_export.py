"""MSCCL-style export of synthesized schedules (JSON and XML) and the ``synthesize`` command."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.conftest import SHARED_DATA
from trainsim.collectives import (
    ConfigError,
    synthesize_tacos,
    to_msccl_json,
    to_msccl_xml,
    write_msccl,
)
from trainsim.studies.cli._main import main
from trainsim.topology import torus

EDGES = SHARED_DATA / "reference" / "tacos-topologies" / "torus2d_4x4.txt"


@pytest.mark.parametrize("op", ["all_gather", "reduce_scatter", "all_reduce"])
def test_json_export_lists_every_transfer_with_causal_deps(op: str) -> None:
    result = synthesize_tacos(op, 1 << 16, torus([2, 4]), chunks_per_npu=2, seed=5)
    doc = to_msccl_json(result)
    assert doc["ngpus"] == 8 and doc["nchunks"] == 16
    gpus = doc["gpus"]
    assert isinstance(gpus, list)
    sends = recvs = 0
    for gpu in gpus:
        for tb in gpu["threadblocks"]:
            assert (tb["send"] >= 0) != (tb["recv"] >= 0)
            starts = [st["start_us"] for st in tb["steps"]]
            assert starts == sorted(starts)  # a threadblock runs its steps in time order
            for st in tb["steps"]:
                if st["type"] == "s":
                    sends += 1
                else:
                    recvs += 1
                for b, i in st["deps"]:
                    dep = gpu["threadblocks"][b]["steps"][i]
                    assert dep["type"] in ("r", "rrc") and dep["hasdep"]
                    assert dep["chunk"] == st["chunk"]
                    if st["type"] == "s":
                        assert dep["end_us"] <= st["start_us"] + 1e-9
                    else:
                        # Reductions into one chunk are chained so they never race.
                        assert st["type"] == dep["type"] == "rrc"
                        assert dep["start_us"] <= st["start_us"]
    assert sends == recvs == result.schedule.num_transfers


def test_xml_export_is_msccl_shaped(tmp_path: Path) -> None:
    result = synthesize_tacos("reduce_scatter", 1 << 16, torus([4, 4]), seed=1)
    root = ElementTree.fromstring(to_msccl_xml(result))
    assert root.tag == "algo" and root.get("coll") == "reducescatter"
    assert root.get("ngpus") == "16" and root.get("proto") == "Simple"
    steps = root.findall("./gpu/tb/step")
    kinds = {s.get("type") for s in steps}
    assert kinds <= {"s", "rrc", "nop"} and "rrc" in kinds
    assert sum(s.get("type") == "s" for s in steps) == result.schedule.num_transfers
    for tb in root.findall("./gpu/tb"):
        assert [int(s.get("s", -1)) for s in tb] == list(range(len(tb)))
    written = write_msccl(result, tmp_path / "rs.xml")
    assert ElementTree.parse(written).getroot().tag == "algo"
    json.loads(write_msccl(result, tmp_path / "rs.json").read_text())
    with pytest.raises(ConfigError, match="csv"):
        write_msccl(result, tmp_path / "rs.csv")


def test_cli_prints_time_and_writes_schedule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ag.xml"
    argv = ["synthesize", "--edges", str(EDGES), "--op", "all_gather", "--size", "64MiB"]
    assert main([*argv, "--chunks-per-npu", "4", "--trials", "2", "-o", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["time_us"] <= 320.5 and record["synthesis_s"] > 0
    assert record["chunk_bytes"] == 1 << 20 and record["npus"] == 16
    assert record["congestion_time_us"] <= record["time_us"] + 1e-9
    assert ElementTree.parse(out).getroot().get("coll") == "allgather"
    assert main(["synthesize", "--topology", "ring:4,ring:2", "--op", "all_reduce"]) == 0
    assert "lower bound" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["synthesize", "--op", "all_gather"], "give the network"),
        (["synthesize", "--topology", "ring:4", "--op", "all_to_all"], "all_to_all"),
        (["synthesize", "--topology", "ring:4", "--chunks-per-npu", "0"], "--chunks-per-npu"),
        (["synthesize", "--topology", "ring:4", "--size", "lots"], "--size"),
        (["synthesize", "--edges", "/nonexistent/edges.txt"], "edges.txt"),
    ],
)
def test_cli_bad_input_is_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_disconnected_names_npus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edges = tmp_path / "cut.txt"
    edges.write_text("3\n0 1 50 0.5\n1 0 50 0.5\n2 0 50 0.5\n")
    assert main(["synthesize", "--edges", str(edges)]) == 2
    assert "NPUs that cannot reach or be reached from NPU 0: 2" in capsys.readouterr().err
