"""Plan ranking in the validation study: runs that differ only in their plan, ranked both ways."""

from __future__ import annotations

import csv

import pytest

from trainsim.studies._validation_ranking import plan_rankings, ranking_lines, run_key
from trainsim.studies.validation import ValidationRow, default_data_path


def _row(run: str, metric: str, measured: float, predicted: float | None) -> ValidationRow:
    return ValidationRow("src", "m", "8", metric, measured, predicted, run_key=run)


def test_groups_rank_by_their_metric_and_leave_the_rest_out() -> None:
    rows = [
        _row("a", "step_time_s", 1.4, 1.3),
        _row("a", "step_time_s", 1.1, 1.0),
        _row("a", "step_time_s", 1.2, 0.9),  # predicted fastest, measured middle
        _row("a", "mem_activations_GiB_per_gpu", 50.0, 49.0),  # not a ranking metric
        _row("b", "tokens_per_s_per_gpu", 10.0, 30.0),  # a group of one
        _row("c", "tokens_per_s_per_gpu", 10.0, 30.0),
        _row("c", "tokens_per_s_per_gpu", 20.0, 25.0),  # higher is better: order reversed
        _row("d", "step_time_s", 1.0, None),  # not predicted
        _row("d", "step_time_s", 2.0, 2.0),
    ]
    a, c = plan_rankings(rows)
    assert (a.run, a.size, a.pairs, a.pairs_in_order) == ("a", 3, 3, 2)
    assert not a.best_agrees and a.spearman == pytest.approx(0.5)
    assert (c.run, c.size, c.spearman, c.best_agrees) == ("c", 2, -1.0, False)
    lines = ranking_lines([a, c])
    assert "2 groups: predicted best is the measured best in 0; 2 of 4 pairs" in lines[1]
    assert ranking_lines([])[1] == "  no such group among the predicted runs"


def test_korthikanti_table_5_runs_share_a_run_key_per_model() -> None:
    """The published table's groups: each Table 5 model ran two plans at one batch."""
    with open(default_data_path(), newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["source"].startswith("Korthikanti")]
    steps = [r for r in rows if r["metric"] == "step_time_s"]
    keys = [run_key(r) for r in steps]
    assert len(keys) == 8 and len(set(keys)) == 4
    assert "GPT-175B on 64 A100-80GB (Selene), batch 64 x 2048, fp16 mixed" in keys
