"""The validation study on a few real rows of the published table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from trainsim.studies.cli import main
from trainsim.studies.validation import run_validation

PUBLISHED = SHARED_DATA / "ground_truth" / "published.csv"


def _subset(tmp_path: Path) -> Path:
    with open(PUBLISHED, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [
            r
            for r in reader
            if (r["model"] == "GPT-22B")
            or r["metric"].startswith("allreduce_busbw_GBps@1073741824")
            or r["source"].startswith("Golden")
        ]
        fields = reader.fieldnames
    assert fields is not None
    out = tmp_path / "subset.csv"
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_validation_rows_and_errors(tmp_path: Path) -> None:
    report = run_validation(_subset(tmp_path))
    by_metric = {(r.metric, r.measured): r for r in report.rows}
    memory = [r for r in report.rows if r.metric.startswith("mem_")]
    assert len(memory) == 3 and all(r.error is not None and r.error < 0.05 for r in memory)
    steps = [r for r in report.rows if r.metric == "step_time_s"]
    assert len(steps) == 2 and all(r.predicted and r.predicted > 0 for r in steps)
    # selective recompute is faster than full recompute, as measured
    full, selective = sorted(steps, key=lambda r: -(r.measured or 0))
    assert (selective.predicted or 0) < (full.predicted or 0)
    assert all(r.skipped for r in report.rows if r.source == "PRISM")
    assert ("allreduce_busbw_GBps@1073741824B", 297.86) in by_metric
    mape = report.mape_by_source()
    assert set(mape) == {"Korthikanti 2022 Table 5", "nccl-tests 2x8 H100"}
    assert "mean absolute percentage error" in report.format()
    for r in steps:
        assert r.signed_error is not None and abs(r.signed_error) == r.error
        assert (r.signed_error < 0) == ((r.predicted or 0) < (r.measured or 0))
    assert "step times alone" in report.format()


def test_validate_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--data", str(_subset(tmp_path)), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "Korthikanti 2022 Table 5" in data["mape_by_source"]


def test_predict_cli(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["predict", "--model", "gpt-1.7b", "--device", "a100-80gb", "--gpus", "16", "--tp", "2"]
    assert main([*argv, "--global-batch", "32", "--layers", "12", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["step_time_s"] > 0 and 0 < data["mfu"] < 1
    assert main([*argv, "--tp", "3"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_states_rows_count_the_layers_a_gpu_holds() -> None:
    """Korthikanti's Fig. 1 states bars: the transformer layers' weights, gradients and
    optimizer states per GPU, with and without pipeline stages (no embedding in them)."""
    from trainsim.studies.validation import _memory_metric, _model, _plan

    with open(PUBLISHED, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["metric"].startswith("mem_params")]
    assert {int(r["pp"]) for r in rows} >= {1, 8, 35, 64}
    for row in rows:
        predicted = _memory_metric(row["metric"], _model(row), _plan(row))
        assert predicted == pytest.approx(float(row["value"]), rel=1e-3), row["model"]


def test_rows_reduce_gradients_as_their_megatron_did() -> None:
    """Megatron-LM before Megatron-Core reduced data-parallel gradients after the backward
    pass; the Megatron-Core rows state --overlap-grad-reduce. A Narayanan row with data
    parallelism therefore exposes its all-reduce, and predicts a longer step."""
    from trainsim.engine import cluster_system, predict
    from trainsim.studies.validation import _device, _model, _plan

    with open(PUBLISHED, newline="") as handle:
        rows = list(csv.DictReader(handle))
    narayanan = next(r for r in rows if r["source"].startswith("Narayanan") and r["dp"] == "32")
    core = next(r for r in rows if "--overlap-grad-reduce" in r["notes"])
    assert not _plan(narayanan).overlap_grad_reduce
    assert _plan(core).overlap_grad_reduce
    model, plan = _model(narayanan), _plan(narayanan)
    system = cluster_system(_device(narayanan) or "", plan.num_gpus)
    exposed = predict(model, plan, system)
    overlapped = predict(model, plan.model_copy(update={"overlap_grad_reduce": True}), system)
    assert exposed.step_time_s > overlapped.step_time_s
