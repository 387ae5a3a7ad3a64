"""``trainsim generate`` and ``trainsim memory``: files, JSON output and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainsim.chakra_et import get_attr, load, validate
from trainsim.studies.cli import main


def test_generate_rank_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "et"
    argv = ["generate", "--model", "llama3-8b", "--gpus", "64", "--tp", "4", "--pp", "4"]
    argv += ["--global-batch", "16", "--sp", "--recompute", "selective", "-o", str(out), "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["gpus"] == 64 and payload["plan"]["dp"] == 4
    assert [Path(f).name for f in payload["files"]] == [f"workload.stage{i}.et" for i in range(4)]
    for name in payload["files"]:
        validate(load(name))
    assert payload["hardware_flops_per_step"] > payload["model_flops_per_step"]


def test_generate_per_rank_with_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(
        "model: mixtral-8x7b\ngpus: 8\ntp: 2\nep: 2\nseq: 512\ngranularity: op\ndevice: h100-sxm\n"
    )
    out = tmp_path / "ranks"
    assert main(["generate", "--config", str(config), "--per-rank", "-o", str(out)]) == 0
    assert "wrote 8 rank ET file(s)" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.et")) == sorted(f"workload.{r}.et" for r in range(8))
    assert (out / "comm_groups.json").is_file()
    graph = load(out / "workload.5.et")
    assert sum(n.duration_micros for n in graph) > 0


def test_memory_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["memory", "--model", "gpt-175b", "--tp", "8", "--pp", "8", "--vpp", "3"]
    argv += ["--global-batch", "64", "--device", "a100-80gb", "--attention", "unfused"]
    assert main([*argv, "--all-stages"]) == 0
    text = capsys.readouterr().out
    assert "peak stage 0" in text and text.count("\n") >= 10
    assert main([*argv, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["device"] == "a100-80gb" and len(payload["stages"]) == 8
    assert payload["peak"]["activations_gib"] == pytest.approx(67.0, rel=0.01)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["memory", "--model", "llama3-70b", "--gpus", "1000", "--tp", "8", "--pp", "8"],
            "gpus=1000",
        ),
        (["memory", "--model", "llama3-70b", "--tp", "16"], "num_kv_heads=8 is not divisible"),
        (["memory", "--model", "nope-1b"], "model='nope-1b' is not a preset"),
        (["memory", "--model", "llama3-70b", "--tp", "8", "--strict"], "usable of h100-sxm"),
        (
            [
                "generate",
                "--model",
                "llama3-8b",
                "--pp",
                "3",
                "--first-stage-layers",
                "40",
                "-o",
                "x",
            ],
            "num_layers=32 minus first_stage_layers=40",
        ),
    ],
)
def test_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def _generate_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> list[str]:
    """The ET files ``trainsim generate --model gpt-1.7b ARGV`` writes."""
    out = tmp_path / "et"
    assert main(["generate", "--model", "gpt-1.7b", *argv, "-o", str(out), "--json"]) == 0
    files: list[str] = json.loads(capsys.readouterr().out)["files"]
    return files


@pytest.mark.parametrize("flag", [[], ["--no-pipeline-scatter-gather"]])
def test_generate_pipeline_scatter_gather_flag(
    flag: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stages exchange 1/tp of each activation (Megatron's scatter/gather) unless told not to."""
    argv = ["--gpus", "8", "--tp", "4", "--pp", "2", "--global-batch", "4", "--seq", "512"]
    stage1 = load(_generate_files(tmp_path, capsys, [*argv, *flag])[1])
    sizes = {
        get_attr(n, "comm_size")
        for n in stage1
        if n.name.startswith("recv.") and not n.name.endswith("tp_ag")
    }
    full = 2 * 512 * 2304  # one sequence's activation, 16-bit
    assert sizes == {full if flag else full // 4}


@pytest.mark.parametrize("flag", [[], ["--no-gemm-bias-fusion"]])
def test_generate_gemm_bias_fusion_flag(
    flag: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--no-gemm-bias-fusion`` gives the QKV bias its own node (op granularity)."""
    argv = ["--gpus", "2", "--tp", "2", "--granularity", "op", "--global-batch", "1"]
    files = _generate_files(tmp_path, capsys, [*argv, "--seq", "256", *flag])
    names = {n.name for n in load(files[0])}
    assert ("L0.fwd.mb0.qkv_bias" in names) == bool(flag)
