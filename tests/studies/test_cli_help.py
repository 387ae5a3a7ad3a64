"""Every command's --help works, and every bad input a new user tried is one line and exit 2."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from trainsim.studies.cli import main
from trainsim.studies.cli._main import build_parser

DDP = FIXTURES / "pytorch-cpu" / "ddp_gloo_2rank"


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the parser tree (groups and leaves)."""
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.extend(_commands(child, (*path, name)))
    return found


COMMANDS = _commands(build_parser())


def test_the_tree_holds_every_command() -> None:
    tops = {path[0] for path in COMMANDS if path}
    assert {"predict", "forecast", "sweep", "presets", "et", "convert", "validate"} <= tops
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "trainsim")
def test_help_of_every_command(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: trainsim")
    assert "--help" in out


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "internal error" not in lines[0] and "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize("flag", ["--tp", "--pp", "--gpus", "--micro-batch", "--global-batch"])
def test_zero_sizes_are_refused_while_parsing(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["predict", "--model", "llama3-8b", "--gpus", "64", flag, "0"]
    line = _one_line_error(argv, capsys)
    assert f"argument {flag}: must be an integer >= 1, got '0'" in line


def test_a_flat_ring_too_large_for_memory_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["collective", "--topology", "ring:100000", "--op", "all_reduce", "--size", "1MiB"]
    line = _one_line_error(argv, capsys)
    assert "100,000 members" in line and "GiB" in line and "ring:8,switch:12500" in line


def test_misspelt_variability_preset_is_suggested(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["forecast", "--model", "llama3-8b", "--gpus", "64", "--tokens", "1e9"]
    line = _one_line_error([*argv, "--variability", "prsm"], capsys)
    assert "did you mean 'prism'?" in line
    line = _one_line_error([*argv, "--interruptions", "lama3"], capsys)
    assert "did you mean 'llama3'?" in line


@pytest.mark.parametrize(
    ("name", "kind"),
    [("host.0.json.gz", "PyTorch host execution trace"), ("device.0.json.gz", "Kineto")],
)
def test_et_info_on_a_pytorch_trace_says_to_convert_it(
    name: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _one_line_error(["et", "info", str(DDP / name)], capsys)
    assert kind in line and "trainsim convert pytorch" in line


def test_config_accepts_every_spelling_of_a_flag_and_checks_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "run.yaml"
    base = "model: llama3-8b\nlayers: 2\ngpus: 16\ntp: 2\nglobal-batch: 32\n"
    config.write_text(base + "sequence_parallel: true\n")
    assert main(["predict", "--config", str(config), "--json"]) == 0
    assert '"sequence_parallel": true' in capsys.readouterr().out
    config.write_text(base.replace("tp: 2", "tp: 0"))
    line = _one_line_error(["predict", "--config", str(config)], capsys)
    assert "tp: must be an integer >= 1, got '0'" in line
    config.write_text(base + "recompute: sometimes\n")
    line = _one_line_error(["predict", "--config", str(config)], capsys)
    assert "recompute: 'sometimes' is not one of none, selective, full" in line


def test_tokens_reads_as_required_not_as_a_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["forecast", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--tokens N training tokens to forecast (required" in out


def test_a_closed_pipe_ends_quietly() -> None:
    """``trainsim demo | head -1``: the reader leaving is not an error of the run."""
    process = subprocess.Popen(
        [sys.executable, "-m", "trainsim", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    # Closed before the demo has computed anything: its first write meets a closed pipe.
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == 0, stderr
    assert stderr == ""
