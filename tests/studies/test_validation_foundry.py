"""The llm-foundry source of the validation study, on real rows of MosaicML's MPT table."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from trainsim.models import DEVICE_PRESETS
from trainsim.studies._validation_foundry import (
    FOUNDRY_SOURCE,
    FoundryPrediction,
    foundry_device,
    foundry_model,
    foundry_plan,
    mpt_flops_per_token,
    predict_foundry_row,
    read_foundry_rows,
)
from trainsim.studies.cli import main
from trainsim.studies.validation import run_validation

FOUNDRY = SHARED_DATA / "ground_truth" / "llm_foundry.csv"
PUBLISHED = SHARED_DATA / "ground_truth" / "published.csv"


def _rows() -> list[dict[str, str]]:
    return read_foundry_rows(FOUNDRY)


def _find(**columns: str) -> dict[str, str]:
    return next(r for r in _rows() if all(r[k] == v for k, v in columns.items()))


def test_real_rows_map_to_their_model_and_fsdp_plan() -> None:
    """The 70B 512-GPU run, a SHARD_GRAD_OP run, a 64K-token run with checkpointing and an
    FP8 run: shapes match the published parameter counts, FSDP strategies their ZeRO stage."""
    big = _find(model="mpt-70b", gpus="512")
    grad_op = _find(model="mpt-3b", sharding="SHARD_GRAD_OP", gpus="128")
    long = _find(model="mpt-7b", seq_len="65536")
    fp8 = _find(precision="amp_fp8", model="mpt-3b", seq_len="32768")
    for row in (big, grad_op, long, fp8):
        model = foundry_model(row)
        assert model.num_params == pytest.approx(float(row["params"]), rel=0.02), row["model"]
        assert not model.gated_mlp and not model.bias and model.tied_embeddings
        assert model.learned_position_embeddings and model.kv_heads == model.num_heads
        plan = foundry_plan(row)
        assert plan.dp == plan.num_gpus == int(row["gpus"])
        assert plan.micro_batch_size == int(row["micro_batch"])
        assert plan.global_batch_size == int(row["global_batch"])
        # micro-batch x gradient accumulation x GPUs is the global batch, as the table states
        assert plan.micro_batch_size * int(row["grad_accum"]) * plan.dp == plan.global_batch_size
    assert foundry_plan(big).zero_stage == 3 and foundry_plan(grad_op).zero_stage == 2
    assert foundry_plan(big).recompute == "full" and foundry_plan(long).recompute == "full"
    assert foundry_plan(grad_op).recompute == "none"
    assert foundry_plan(fp8).dtype == "fp8" and foundry_plan(big).dtype == "bf16"
    assert foundry_device(big) == "h100-sxm"
    assert foundry_device(_find(gpu_type="a100_40gb")) == "a100-40gb"
    # learned positions: the same model at a longer sequence has more parameters
    assert foundry_model(long).num_params > foundry_model(_find(model="mpt-7b")).num_params


def test_every_row_maps_and_the_mpt_convention_reproduces_the_published_figures() -> None:
    """MPT's FLOPs per token (6N + 12LdT; 8N + 16LdT for HFU with checkpointing) over the
    precision's peak give every row's published MFU, HFU and TFLOP/s from its throughput."""
    rows = _rows()
    assert len(rows) == 216
    for row in rows:
        assert foundry_model(row).num_params == pytest.approx(float(row["params"]), rel=0.02)
        device = foundry_device(row)
        assert device is not None
        peak = DEVICE_PRESETS[device].peak_flops(foundry_plan(row).dtype)
        throughput = float(row["tokens_per_s_per_gpu"])
        flops = mpt_flops_per_token(row) * throughput
        hardware = mpt_flops_per_token(row, hardware=True) * throughput
        assert flops / 1e12 == pytest.approx(float(row["model_tflops_per_gpu"]), rel=0.01)
        assert 100 * flops / peak == pytest.approx(float(row["mfu_pct"]), rel=0.005)
        assert 100 * hardware / peak == pytest.approx(float(row["hfu_pct"]), rel=0.005)


def test_prediction_uses_the_convention_and_the_cache() -> None:
    row = _find(model="mpt-125m", seq_len="512")
    cache: dict[tuple[str, ...], FoundryPrediction] = {}
    first = predict_foundry_row(row, cache=cache)
    again = predict_foundry_row(dict(row), cache=cache)
    assert not isinstance(first, str) and again is first and len(cache) == 1
    assert first.tokens_per_s_per_gpu > 0
    peak = DEVICE_PRESETS["a100-40gb"].peak_flops("bf16")
    expected = 100 * mpt_flops_per_token(row) * first.tokens_per_s_per_gpu / peak
    assert first.mfu_pct == pytest.approx(expected)
    assert first.hfu_pct == pytest.approx(first.mfu_pct)  # no checkpointing: no extra forward


def test_rows_not_predictable_say_why() -> None:
    row = _find(model="mpt-125m", seq_len="512")
    assert predict_foundry_row({**row, "cpu_offload": "True"}) == "CPU offload is not modelled"
    assert "no device preset" in str(predict_foundry_row({**row, "gpu_type": "v100_32gb"}))
    assert "sharding" in str(predict_foundry_row({**row, "sharding": "HYBRID_SHARD"}))


def _tables(tmp_path: Path) -> tuple[Path, Path]:
    """A published table of the Korthikanti 22B rows and an llm-foundry table of five runs
    (one A100 40 GB, one A100 80 GB, one H100, one FP8, one with CPU offload)."""
    with open(PUBLISHED, newline="") as handle:
        reader = csv.DictReader(handle)
        published = [r for r in reader if r["model"] == "GPT-22B"]
        fields = reader.fieldnames
    assert fields is not None
    with open(FOUNDRY, newline="") as handle:
        reader = csv.DictReader(handle)
        foundry_fields = reader.fieldnames
        rows = list(reader)
    assert foundry_fields is not None
    picked = [
        next(r for r in rows if r["gpu_type"] == "a100_40gb" and r["model"] == "mpt-125m"),
        next(r for r in rows if r["gpu_type"] == "a100_80gb" and r["model"] == "mpt-1b"),
        next(r for r in rows if r["gpu_type"] == "h100_80gb" and r["model"] == "mpt-760m"),
        next(r for r in rows if r["precision"] == "amp_fp8"),
        {**rows[-1], "cpu_offload": "True"},
    ]
    out, foundry = tmp_path / "published.csv", tmp_path / "llm_foundry.csv"
    for path, names, data in ((out, fields, published), (foundry, foundry_fields, picked)):
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            writer.writerows(data)
    return out, foundry


def test_report_scores_the_foundry_source(tmp_path: Path) -> None:
    published, _ = _tables(tmp_path)
    report = run_validation(published)  # finds llm_foundry.csv beside the published table
    mape = report.mape_by_source()
    assert FOUNDRY_SOURCE in mape and "Korthikanti 2022 Table 5" in mape
    value, count = mape[FOUNDRY_SOURCE]
    assert math.isfinite(value) and count == 4
    assert math.isfinite(report.signed_mean_by_source()[FOUNDRY_SOURCE])
    skipped = [r for r in report.rows if r.source == FOUNDRY_SOURCE and r.skipped]
    assert [r.skipped for r in skipped] == ["CPU offload is not modelled"]
    secondary = report.secondary_errors(FOUNDRY_SOURCE)
    assert secondary["mfu_pct (MPT FLOPs)"][2] == 4
    groups = report.group_errors(FOUNDRY_SOURCE)
    assert groups[("precision", "fp8")][2] == 1 and groups[("gpu", "h100_80gb")][2] == 2
    assert len(report.worst_rows(FOUNDRY_SOURCE)) == 4
    text = report.format()
    assert FOUNDRY_SOURCE in text and "worst rows by source" in text
    assert "mean signed" in text and "precision=fp8" in text
    # every source gets its worst rows, not only the new one
    assert report.worst_rows("Korthikanti 2022 Table 5")


def test_foundry_table_found_missing_or_left_out(tmp_path: Path) -> None:
    published, foundry = _tables(tmp_path)
    alone = tmp_path / "alone"
    alone.mkdir()
    moved = alone / "published.csv"
    moved.write_text(published.read_text())
    report = run_validation(moved)
    assert FOUNDRY_SOURCE not in report.mape_by_source()
    assert any("llm_foundry.csv" in note for note in report.notes)
    assert FOUNDRY_SOURCE in run_validation(moved, foundry=foundry).mape_by_source()
    with pytest.raises(FileNotFoundError):
        run_validation(moved, foundry=alone / "absent.csv")
    left_out = run_validation(published, include_foundry=False)
    assert FOUNDRY_SOURCE not in left_out.mape_by_source() and not left_out.notes


def test_validate_cli_json_has_the_foundry_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    published, foundry = _tables(tmp_path)
    assert main(["validate", "--data", str(published), "--foundry", str(foundry), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    summary = data["mape_by_source"][FOUNDRY_SOURCE]
    assert summary["rows"] == 4 and math.isfinite(summary["mape"])
    assert "signed_mean" in summary and len(summary["worst"]) == 4
    assert "gpu=h100_80gb" in summary["groups"]
    assert main(["validate", "--data", str(published), "--no-foundry", "--json"]) == 0
    assert FOUNDRY_SOURCE not in json.loads(capsys.readouterr().out)["mape_by_source"]
