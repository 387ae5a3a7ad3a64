"""The ``trainsim collective`` command: ASTRA-sim files in, one line or one JSON object out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainsim.collectives import ALGORITHMS, CollectiveOp, NcclParams, collective_cost
from trainsim.studies.cli._collective import CollectiveSize, parse_size
from trainsim.studies.cli._main import main
from trainsim.topology import SPEC_KINDS, parse_spec

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
        (["collective", "--topology", "ring:8", "--ranks", ","], "at least one rank"),
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


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main([*argv, "--json"]) == 0
    record: dict[str, Any] = json.loads(capsys.readouterr().out)
    return record


@pytest.mark.parametrize(
    ("op", "per_rank_bytes", "meaning"),
    [
        # nccl-tests' size column: the all-gather output, 8 MiB from each of the 8 ranks...
        ("all_gather", (64 << 20) // 8, "all-gather output"),
        # ...the reduce-scatter input and the all-reduce buffer, which every rank holds whole.
        ("reduce_scatter", 64 << 20, "reduce-scatter input on every rank"),
        ("all_reduce", 64 << 20, "all-reduce buffer on every rank"),
    ],
)
def test_collective_and_synthesize_read_size_alike(
    op: str, per_rank_bytes: int, meaning: str, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--topology", "ring:8", "--op", op, "--size", "64MiB"]
    ring = _json(["collective", *flags, "--algo", "ring"], capsys)
    congested = _json(["collective", *flags, "--algo", "ring", "--model", "congestion"], capsys)
    tacos = _json(["synthesize", *flags, "--trials", "1"], capsys)
    for record in (ring, congested, tacos):
        assert record["size_bytes"] == 64 << 20
        assert record["per_rank_bytes"] == per_rank_bytes
        assert record["size_meaning"] == meaning
    # The baseline synthesize prints is what collective answers, and what the library gives
    # for the per-rank request; before, all-gather's two answers were 9,399 us and 673 us.
    expected = collective_cost(op, per_rank_bytes, range(8), parse_spec("ring:8"), "ring")
    assert ring["time_us"] == pytest.approx(expected.time_us, rel=1e-12)
    assert tacos["baseline"]["algorithm"] == "ring"
    assert tacos["baseline"]["time_us"] == pytest.approx(ring["time_us"], rel=1e-12)
    assert tacos["baseline"]["congestion_time_us"] == pytest.approx(congested["time_us"], rel=1e-12)
    # Same case: the synthesized schedule is within a small factor of the ring, either way.
    assert 0.2 < tacos["time_us"] / ring["time_us"] < 5.0


def test_text_output_says_what_the_size_is(capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--topology", "ring:8", "--op", "all_gather", "--size", "64MiB"]
    phrase = "64 MiB all-gather output, 8 MiB input per rank"
    for command in ("collective", "synthesize"):
        assert main([command, *flags]) == 0
        out = capsys.readouterr().out
        assert phrase in out, (command, out)
    assert main(["synthesize", *flags]) == 0
    assert "ring baseline" in capsys.readouterr().out


def test_per_rank_bytes_follow_the_library_convention() -> None:
    sizes = {
        op: CollectiveSize(op, 12 << 20, 3)
        for op in (CollectiveOp.ALL_GATHER, CollectiveOp.ALL_REDUCE, CollectiveOp.ALL_TO_ALL)
    }
    assert sizes[CollectiveOp.ALL_GATHER].per_rank_bytes == 4 << 20
    assert sizes[CollectiveOp.ALL_REDUCE].per_rank_bytes == 12 << 20
    assert sizes[CollectiveOp.ALL_TO_ALL].describe() == (
        "12 MiB all-to-all send buffer on every rank, 4 MiB to each peer"
    )
    # algbw is the typed size over the time, whatever the op (nccl-tests' definition).
    for op, size in sizes.items():
        cost = collective_cost(op, size.per_rank_bytes, range(3), parse_spec("ring:3"))
        assert cost.algbw_gbps == pytest.approx(size.buffer_bytes / cost.time_ns, rel=1e-12)
    with pytest.raises(ValueError, match="--ranks"):
        CollectiveSize(CollectiveOp.ALL_GATHER, 1 << 20, 0)


def test_help_of_both_commands_states_size_and_spec_grammar(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in ("collective", "synthesize"):
        assert main([command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "nccl-tests" in text and "all-gather output" in text
        assert "KIND:N[@BW][/LAT]" in text and "trainsim presets topologies" in text
        for kind in SPEC_KINDS:
            if kind.dimension:
                assert kind.kind in text
            else:
                assert kind.example in text


@pytest.mark.parametrize("model", ["analytical", "congestion", "nccl"])
def test_compare_never_repeats_a_row(model: str, capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--topology", "ring:8", "--op", "all_gather", "--size", "8MiB", "--model", model]
    record = _json(["collective", *flags, "--compare"], capsys)
    rows = [json.dumps(r, sort_keys=True) for r in record["results"]]
    labels = [r["algorithm"] for r in record["results"]]
    assert len(set(rows)) == len(rows) and len(set(labels)) == len(labels)
    assert main(["collective", *flags, "--compare"]) == 0
    table = capsys.readouterr().out.splitlines()[2:]
    assert len(set(table)) == len(table)
    if model == "nccl":
        # What NCCL chooses between is its protocols; its choice is the single-run answer.
        assert labels == [f"nccl-{p.name}" for p in NcclParams().protocols]
        alone = _json(["collective", *flags], capsys)
        assert record["best_algorithm"] == alone["algorithm"]
        assert record["time_ns"] == pytest.approx(alone["time_ns"], rel=1e-12)
        assert len({r["time_ns"] for r in record["results"]}) == len(labels)
    else:
        assert len(labels) == len(ALGORITHMS)
