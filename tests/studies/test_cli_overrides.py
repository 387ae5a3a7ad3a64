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
    argv = ["memory", "--model", "llama3-8b", "--heads", "16", "--kv-heads", "16", "--tp", "32"]
    assert main([*argv, "--gpus", "32"]) == 2
    assert "num_heads=16 is not divisible by tp=32" in capsys.readouterr().err


def test_precision_reaches_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    steps = {}
    for precision in ("bf16", "fp8"):
        run = ["predict", "--model", "llama3-8b", "--layers", "2", "--gpus", "8", "--tp", "2",
               "--global-batch", "16", "--precision", precision, "--json"]  # fmt: skip
        assert main(run) == 0
        steps[precision] = json.loads(capsys.readouterr().out)["step_time_s"]
    assert steps["fp8"] < steps["bf16"]


#: Published configurations, from their stated flags alone (issue 17's list).
PUBLISHED = {
    "llama3-405b-pp16-vpp": [
        "--model", "llama3-405b", "--gpus", "16384", "--tp", "8", "--pp", "16", "--vpp", "2",
        "--seq", "8192", "--global-batch", "2048", "--sp", "--zero", "1",
    ],
    "llama3-405b-cp16-128k": [
        "--model", "llama3-405b", "--gpus", "16384", "--tp", "8", "--pp", "16", "--vpp", "2",
        "--cp", "16", "--seq", "131072", "--global-batch", "128", "--sp", "--zero", "1",
    ],
    "deepseek-v3-fp8": [
        "--model", "deepseek-v3", "--device", "h800", "--gpus", "2048", "--pp", "16",
        "--ep", "64", "--precision", "fp8", "--global-batch", "1920",
    ],
    "mt-nlg-530b": [*MT_NLG, "--gpus", "2240", "--global-batch", "1920"],
    "gpt3-175b-fp8-vpp6": [
        "--model", "gpt3-175b", "--gpus", "128", "--tp", "4", "--pp", "8", "--vpp", "6",
        "--precision", "fp8", "--global-batch", "256",
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_configurations_predict_and_state_their_layout(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", *PUBLISHED[name]]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.startswith("run: sequences of ")
    assert "micro-batch(es) per step" in out
    assert "pipeline: " in out and " stage(s) of " in out


def test_llama3_405b_layout_and_a_large_bubble_is_warned(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["predict", *PUBLISHED["llama3-405b-pp16-vpp"]]) == 0
    out = capsys.readouterr().out
    assert "16 stage(s) of 7, 8 x 14, 7 layers" in out and "2 virtual chunks" in out
    # No --global-batch: a typical pre-training batch is chosen, and said so.
    argv = ["predict", "--model", "gpt-1.7b", "--device", "a100-80gb", "--gpus", "16",
            "--tp", "2", "--pp", "2"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "global batch 2,048 (4.19M tokens; not given: chosen to hold 4.2M tokens" in out
    assert "warning: the pipeline bubble" not in out
    # One micro-batch per pipeline: the bubble is most of the step, and warned.
    assert main([*argv, "--global-batch", "4"]) == 0
    assert "warning: the pipeline bubble is" in capsys.readouterr().out


def test_a_config_json_trains_at_a_pretraining_sequence_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Qwen2-7B's config allows 131,072 positions; it predicted a 132 s step at that length."""
    config = {
        "hidden_act": "silu", "hidden_size": 3584, "intermediate_size": 18944,
        "max_position_embeddings": 131072, "model_type": "qwen2", "num_attention_heads": 28,
        "num_hidden_layers": 28, "num_key_value_heads": 4, "vocab_size": 152064,
        "tie_word_embeddings": False,
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    argv = ["predict", "--model", str(path), "--gpus", "8", "--global-batch", "8"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "allows 131,072 positions; training at 8,192 tokens" in captured.err
    assert "run: sequences of 8,192 tokens" in captured.out
    assert main([*argv, "--seq", "4096"]) == 0
    captured = capsys.readouterr()
    assert "positions" not in captured.err and "sequences of 4,096 tokens" in captured.out
