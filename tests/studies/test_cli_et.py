"""``trainsim et``: output on real traces and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from trainsim import chakra_et
from trainsim.studies.cli import main

TEXT_ET = FIXTURES / "official-chakra-text-converter" / "data_parallel.0.et"


def test_info_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["et", "info", str(TEXT_ET)]) == 0
    out = capsys.readouterr().out
    assert "11 nodes" in out and "ALL_REDUCE" in out and "3,670,016 bytes" in out
    assert main(["et", "info", str(TEXT_ET), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["nodes_by_type"] == {"COMP_NODE": 8, "COMM_COLL_NODE": 3}
    assert data["collectives"]["ALL_REDUCE"] == {"count": 3, "bytes": 3670016}
    assert data["compute_time_us"] == 835 and data["critical_path_us"] == 835


def test_to_json_from_json_reproduces_bytes(tmp_path: Path) -> None:
    dump, back = tmp_path / "d.json", tmp_path / "d.et"
    assert main(["et", "to-json", str(TEXT_ET), "-o", str(dump)]) == 0
    assert main(["et", "from-json", str(dump), "-o", str(back)]) == 0
    assert back.read_bytes() == TEXT_ET.read_bytes()


def test_validate_reports_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    good = FIXTURES / "pytorch-cpu" / "ddp_gloo_2rank" / "official_chakra" / "et.0.et"
    assert main(["et", "validate", str(good)]) == 0
    assert "ok, 3 warning(s)" in capsys.readouterr().out
    bad = FIXTURES / "official-chakra-generator" / "one_comm_send_node.0.et"
    assert main(["et", "validate", str(bad), "--json"]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)[str(bad)]["valid"] is False
    assert captured.err.count("\n") == 1


def _write_cycle(path: Path) -> None:
    graph = chakra_et.ETGraph(
        nodes=[
            chakra_et.new_node(1, "a", chakra_et.NodeType.COMP_NODE, ctrl_deps=[2]),
            chakra_et.new_node(2, "b", chakra_et.NodeType.COMP_NODE, ctrl_deps=[1]),
        ]
    )
    chakra_et.save(graph, path)


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (TEXT_ET.read_bytes()[:-5], "cut short"),
        (bytes(range(7, 200)), "error"),
        (b"\x00\x00", "zero-length"),
        (b"\xff\xff\xff\xff\x7f", "exceeds"),
        (None, "dependency cycle"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, content: bytes | None, expect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.et"
    if content is None:
        _write_cycle(path)
    else:
        path.write_bytes(content)
    assert main(["et", "info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expect in err and "Traceback" not in err


def test_console_script_subprocess(tmp_path: Path) -> None:
    bad = tmp_path / "bad.et"
    bad.write_bytes(b"\x05ab")
    proc = subprocess.run(
        [sys.executable, "-m", "trainsim", "et", "info", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("trainsim: error:") and proc.stderr.count("\n") == 1


def test_config_file_supplies_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("json: true\n")
    assert main(["et", "info", str(TEXT_ET), "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["nodes"] == 11
    config.write_text("bogus: 1\n")
    assert main(["et", "info", str(TEXT_ET), "--config", str(config)]) == 2
    assert "unknown key 'bogus'" in capsys.readouterr().err


def test_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["et", "info"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_simulate_astra_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = FIXTURES.parent / "reference" / "astra-sim-workloads" / "pipeline_4"
    timeline = tmp_path / "t.json"
    argv = [
        "simulate",
        "--workload",
        str(folder / "et" / "workload"),
        "--network",
        str(folder / "network.yml"),
        "--system",
        str(folder / "system.json"),
        "--timeline",
        str(timeline),
        "--json",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["step_time_ns"] == 6774750
    assert out["rank_finish_ns"] == [6774750, 6174750, 5495625, 4816500]
    trace = json.loads(timeline.read_text())
    assert any(e.get("ph") == "X" for e in trace["traceEvents"])
    assert main(["simulate", "--workload", str(tmp_path / "none")]) == 2
    assert "give --system" in capsys.readouterr().err
