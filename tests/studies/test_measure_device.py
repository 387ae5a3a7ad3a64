"""A measured device through the system, the validation study and the command line."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from trainsim.engine import cluster_system, predict
from trainsim.models import (
    GemmMeasurement,
    ParallelPlan,
    device_preset,
    load_device,
    measured_device,
    model_preset,
)
from trainsim.studies.cli import main
from trainsim.studies.validation import run_validation


def _flat_table(tflops: float) -> GemmMeasurement:
    points = [(*shape, tflops) for shape in itertools.product((256, 4096), repeat=3)]
    return GemmMeasurement.model_validate({"dtype": "bf16", "points": points})


def test_measured_device_runs_through_file_system_and_validation(tmp_path: Path) -> None:
    device = measured_device("a100-80gb", _flat_table(200.0))
    path = tmp_path / "a100.json"
    path.write_text(device.model_dump_json())
    loaded = load_device(path)
    assert loaded == device
    system = cluster_system(str(path), 8)
    assert system.device_spec == device
    assert cluster_system("a100-80gb", 8).device == "a100-80gb"
    # Half the preset's GEMM rate makes the predicted step slower.
    model, plan = model_preset("gpt-1.7b"), ParallelPlan(tp=1, dp=8, global_batch_size=8)
    base = predict(model, plan, cluster_system("a100-80gb", 8))
    half = 0.5 * device_preset("a100-80gb").gemm_flops_per_s(4096, 4096, 4096) / 1e12
    slow = predict(model, plan, cluster_system(measured_device("a100-80gb", _flat_table(half)), 8))
    assert slow.step_time_s > 1.2 * base.step_time_s
    with pytest.raises(ValueError, match="device 'my-gpu' is not one the table uses"):
        run_validation(devices=[device.model_copy(update={"name": "my-gpu"})])


def test_measure_device_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "cpu.json"
    small = ["--seq-lens", "32,64", "--head-dims", "16"]
    argv = ["measure-device", "--base", "h100-sxm", *small, "--out", str(out), "--dims", "16,32"]
    assert main([*argv, "--torch-device", "cpu", "--quiet", "--repeats", "1"]) == 0
    spec = load_device(json.loads(out.read_text()))
    assert spec.efficiency.measured_gemm("bf16") is not None
    assert spec.efficiency.measured_attention("fp16") is not None
    printed = capsys.readouterr().out
    assert "8 bf16 GEMMs" in printed and "2 bf16 attention shapes" in printed
    assert main([*argv[:-1], "16,x"]) == 2
    assert "expected comma-separated integers" in capsys.readouterr().err
    assert main(["validate", "--device", str(tmp_path / "none.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_measure_device_from_a_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw.json"
    table = _flat_table(321.0)
    raw.write_text(json.dumps({"gemm_measured": [table.model_dump()]}))
    out = tmp_path / "dev.json"
    argv = ["measure-device", "--base", "a100-80gb", "--out", str(out), "--from-raw"]
    assert main([*argv, str(raw)]) == 0
    assert load_device(out).efficiency.measured_gemm("bf16") == table
    assert "8 bf16 GEMMs, 4096x4096x4096 at 321 TFLOP/s" in capsys.readouterr().out
    raw.write_text("[]")
    assert main([*argv, str(raw)]) == 2
    assert "not a recording" in capsys.readouterr().err
    raw.write_text(json.dumps({"gemm_measured": [{"dtype": "bf16", "points": [[1, 2]]}]}))
    assert main([*argv, str(raw)]) == 2
    err = capsys.readouterr().err
    assert "recording gemm_measured[0] points.0.2: Field required" in err
