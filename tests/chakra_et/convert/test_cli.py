"""``trainsim convert pytorch``: single-rank and directory forms, JSON report, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from trainsim import chakra_et
from trainsim.studies.cli._main import main

DDP = FIXTURES / "pytorch-cpu" / "ddp_gloo_2rank"


def test_single_rank_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ddp.0.et"
    argv = ["convert", "pytorch", "--host", str(DDP / "host.0.json.gz")]
    argv += ["--kineto", str(DDP / "device.0.json.gz"), "-o", str(out), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["et_nodes_out"] == len(chakra_et.load(out))
    assert report["et_nodes_by_type"]["COMM_COLL_NODE"] == 12
    assert report["rank"] == 0 and report["process_groups"] == {"0": [0, 1], "1": [0, 1]}
    assert abs(report["replay"]["error_pct"]) < 10


def test_directory_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", "pytorch", str(DDP), "-o", str(tmp_path / "out"), "--name", "w"]) == 0
    text = capsys.readouterr().out
    assert "COMM_SEND_NODE" in text and "critical path" in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["w.0.et", "w.1.et"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["convert", "pytorch", "-o", "x.et"], "either DIR or --host"),
        (["convert", "pytorch", "--host", "/nonexistent.json", "-o", "x.et"], "no such file"),
        (["convert", "pytorch", str(FIXTURES / "public" / "chakra"), "-o", "x"], "no host"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_unknown_schema_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = tmp_path / "host.0.json"
    host.write_text(json.dumps({"schema": "9.9.9", "nodes": []}))
    assert main(["convert", "pytorch", "--host", str(host), "-o", str(tmp_path / "x.et")]) == 2
    assert "schema '9.9.9' is not supported" in capsys.readouterr().err
