"""``trainsim validate --device-set published``: the study scores the measured presets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from trainsim.studies.cli import main
from trainsim.studies.validation import run_validation

PUBLISHED = SHARED_DATA / "ground_truth" / "published.csv"


def _gpt22b(tmp_path: Path) -> Path:
    with open(PUBLISHED, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [r for r in reader if r["model"] == "GPT-22B" and r["metric"] == "step_time_s"]
        fields = reader.fieldnames
    assert fields is not None and rows
    out = tmp_path / "gpt22b.csv"
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_published_device_set_changes_the_devices_scored(tmp_path: Path) -> None:
    data = _gpt22b(tmp_path)
    presets = run_validation(data, include_foundry=False, progress=False)
    published = run_validation(data, include_foundry=False, progress=False, device_set="published")
    before = [r.predicted for r in presets.rows]
    after = [r.predicted for r in published.rows]
    assert all(v is not None and v > 0 for v in before + after)
    assert before != after


def test_unknown_device_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="device_set='fitted'"):
        run_validation(_gpt22b(tmp_path), include_foundry=False, device_set="fitted")


def test_validate_cli_device_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["validate", "--data", str(_gpt22b(tmp_path)), "--no-foundry", "--json"]
    assert main([*argv, "--device-set", "published"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "Korthikanti 2022 Table 5" in data["mape_by_source"]
