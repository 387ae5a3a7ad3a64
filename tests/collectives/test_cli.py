"""The ``trainsim collective`` command: ASTRA-sim files in, one line or one JSON object out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainsim.studies.cli._collective import parse_size
from trainsim.studies.cli._main import main

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CASE = DATA / "reference" / "astra-sim-workloads" / "dp_overlap_8"


def test_astra_files_give_astra_time(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "collective",
        "--network",
        str(CASE / "network.yml"),
        "--system",
        str(CASE / "system.json"),
        "--op",
        "all_reduce",
        "--size",
        "1GiB",
        "--json",
    ]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    # ASTRA-sim's own figure for this setting (astra-sim-collectives.json): 36,790,164 ns
    assert record["time_ns"] == pytest.approx(36_790_164, rel=0.01)
    assert record["busbw_gbps"] > record["algbw_gbps"] > 0


def test_compare_lists_every_algorithm(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["collective", "--topology", "switch:8", "--size", "64MiB", "--compare", "--json"])
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    names = [r["algorithm"] for r in record["results"]]
    assert len(names) == 6
    assert record["time_ns"] == min(r["time_ns"] for r in record["results"] if "time_ns" in r)


def test_text_output_and_congestion_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collective", "--topology", "switch:8", "--size", "1MiB", "--congestion"]) == 0
    out = capsys.readouterr().out
    assert "congestion model" in out and "busbw" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["collective", "--topology", "bogus:3"], "unknown dimension kind"),
        (["collective", "--topology", "ring:8", "--size", "lots"], "--size"),
        (["collective", "--topology", "ring:8", "--algo", "ring,ring"], "2 algorithms"),
        (["collective", "--topology", "ring:8", "--ranks", "0-9"], "rank 8"),
        (["collective"], "give the network"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_parse_size() -> None:
    assert parse_size("1GiB") == 1 << 30
    assert parse_size("64MiB") == 64 << 20
    assert parse_size("1.5GB") == 1_500_000_000
    assert parse_size("4096") == 4096
