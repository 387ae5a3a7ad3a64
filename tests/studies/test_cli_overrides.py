"""Model overrides apply before the plan is checked, on every command that takes a model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainsim.studies.cli import main

#: MT-NLG 530B as a user states it: GPT-3's preset with its own shape, 105 layers on 35 stages.
MT_NLG = [
    "--model", "gpt3-175b", "--layers", "105", "--hidden", "20480", "--heads", "128",
    "--ffn", "81920", "--vocab", "50272", "--tp", "8", "--pp", "35",
]  # fmt: skip


def test_predict_checks_the_overridden_shape(capsys: pytest.CaptureFixture[str]) -> None:
    """Was: num_layers=96 is not divisible by pp*vpp=35*1=35 (the preset's shape)."""
    argv = ["predict", *MT_NLG, "--gpus", "280", "--global-batch", "70", "--json"]
    assert main(argv) == 0, capsys.readouterr().err
    payload = json.loads(capsys.readouterr().out)
    assert payload["plan"]["pp"] == 35


@pytest.mark.parametrize("command", [["memory"], ["generate", "-o", "OUT"]])
def test_memory_and_generate_take_the_overrides(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: unrecognized arguments: --layers 105."""
    argv = [c.replace("OUT", str(tmp_path)) for c in command]
    assert main([*argv, *MT_NLG, "--gpus", "280", "--json"]) == 0, capsys.readouterr().err
    payload = json.loads(capsys.readouterr().out)
    if command[0] == "memory":
        assert payload["fits"] in (True, False) and payload["peak"]["params"] > 0
    else:
        assert payload["plan"]["pp"] == 35 and len(payload["nodes"]) == 35


def test_an_override_that_breaks_the_plan_names_the_overridden_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["memory", "--model", "llama3-8b", "--layers", "30", "--pp", "4", "--gpus", "4"]
    assert main(argv) == 2
    assert "num_layers=30" in capsys.readouterr().err


def test_precision_reaches_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    steps = {}
    for precision in ("bf16", "fp8"):
        run = ["predict", "--model", "llama3-8b", "--layers", "2", "--gpus", "8", "--tp", "2",
               "--global-batch", "16", "--precision", precision, "--json"]  # fmt: skip
        assert main(run) == 0
        steps[precision] = json.loads(capsys.readouterr().out)["step_time_s"]
    assert steps["fp8"] < steps["bf16"]
