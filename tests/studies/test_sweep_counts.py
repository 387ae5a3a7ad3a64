"""What a sweep reports about itself: one global batch for all plans, why plans were invalid,
what memory pruning compared, the distributed-optimizer alias, and when progress shows."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainsim.models import (
    ModelSpec,
    ParallelPlan,
    device_preset,
    load_model,
    model_from_mapping,
)
from trainsim.studies import SearchSpace, SweepConfigError, sweep
from trainsim.studies._sweep_progress import SweepProgress
from trainsim.studies._sweep_space import (
    DEFAULT_BATCH_TOKENS,
    enumerate_plans,
    invalid_reason,
    resolve_global_batch,
    space_from_mapping,
)
from trainsim.studies._sweep_store import RECORD_COLUMNS
from trainsim.studies.cli import main

# Long sequences keep the chosen global batch (about DEFAULT_BATCH_TOKENS tokens) at a few
# sequences, so sweeps that choose it stay quick to simulate.
_LONG_SEQ = 2**15
_CLI_OVERRIDES = {
    "num_layers": 4, "hidden_size": 512, "num_heads": 8, "num_kv_heads": 8,
    "ffn_hidden_size": 1024, "vocab_size": 8192, "seq_len": _LONG_SEQ,
}  # fmt: skip
_CLI_MODEL = [
    "--model", "llama3-8b", "--layers", "4", "--hidden", "512", "--heads", "8",
    "--kv-heads", "8", "--ffn", "1024", "--vocab", "8192", "--seq", str(_LONG_SEQ),
]  # fmt: skip
_SMALL_SPACE: dict[str, Any] = {
    "tp": [1, 2],
    "pp": [1, 2],
    "cp": [1],
    "overlap_tp_comm": [False],
    "micro_batch_size": [1, 2],
    "zero_stage": [1],
    "recompute": ["none"],
}


@pytest.fixture(scope="module")
def long_model() -> ModelSpec:
    """The CLI's ``_CLI_MODEL``: llama3-8b's shape, shrunk, with long sequences."""
    return model_from_mapping({**load_model("llama3-8b").model_dump(), **_CLI_OVERRIDES})


def _tiny(**fields: Any) -> ModelSpec:
    base = {
        "name": "tiny", "num_layers": 8, "hidden_size": 1024, "num_heads": 8,
        "vocab_size": 8192, "seq_len": 1024,
    }  # fmt: skip
    return model_from_mapping({**base, **fields})


# -- one global batch -----------------------------------------------------------------------

_BATCH_REASONS = ("global_batch_size", "micro-batches")


@settings(max_examples=60, deadline=None)
@given(
    tp=st.sets(st.sampled_from([1, 2, 3, 4, 8]), min_size=1),
    pp=st.sets(st.sampled_from([1, 2, 3, 4]), min_size=1),
    cp=st.sets(st.sampled_from([1, 2]), min_size=1),
    vpp=st.sets(st.sampled_from([1, 2]), min_size=1),
    micro=st.sets(st.sampled_from([1, 2, 3]), min_size=1),
    gpus=st.sampled_from([4, 6, 8, 12, 16, 24]),
    seq_len=st.sampled_from([1024, 4096, 2**15]),
)
def test_every_plan_of_a_space_runs_one_global_batch(
    tp: set[int], pp: set[int], cp: set[int], vpp: set[int], micro: set[int], gpus: int,
    seq_len: int,
) -> None:  # fmt: skip
    model = _tiny(seq_len=seq_len)
    space = SearchSpace(
        tp=sorted(tp), pp=sorted(pp), cp=sorted(cp), vpp=sorted(vpp),
        micro_batch_size=sorted(micro), zero_stage=[0], recompute=["none"],
        overlap_tp_comm=[False],
    )  # fmt: skip
    batch = resolve_global_batch(model, gpus, space)
    plans, reasons = enumerate_plans(model, gpus, space)
    assert batch.chosen and batch.tokens == batch.sequences * seq_len
    assert {plan.global_batch_size for plan, _ in plans} <= {batch.sequences}
    # Interleaving without a pipeline is the plan with vpp=1: tried once, not counted twice.
    repeats = space.size() // (len(space.pp) * len(space.vpp))
    repeats *= (1 in space.pp) * (1 in space.vpp) * sum(v > 1 for v in space.vpp)
    assert len(plans) + sum(reasons.values()) == space.size() - repeats
    target = math.ceil(DEFAULT_BATCH_TOKENS / seq_len)
    power = 1 << (target - 1).bit_length()
    steps = [p.micro_batch_size * p.dp for p, _ in plans]
    batch_reasons = [why for why in reasons if any(word in why for word in _BATCH_REASONS)]
    if batch.sequences == power:
        # What a real run fixes: the fewest sequences at or above the target, a power of
        # two; the plans kept split it, the others are invalid for that reason.
        assert target <= power < 2 * target
        assert all(power % step == 0 for step in steps)
    else:
        # No plan splits the power of two: the fewest sequences every plan can run, and no
        # plan dropped for the batch.
        assert not batch_reasons
        common = math.lcm(*steps) if steps else 1
        assert batch.sequences % common == 0
        assert target <= batch.sequences < target + common


def test_a_given_global_batch_is_kept_and_plans_that_cannot_run_it_say_so() -> None:
    model = _tiny(num_layers=6)
    space = space_from_mapping(
        {"tp": [1, 4], "pp": [1], "cp": [1], "micro_batch_size": [1], "zero_stage": [0],
         "recompute": ["none"], "overlap_tp_comm": [False], "global_batch_size": 18}
    )  # fmt: skip
    batch = resolve_global_batch(model, 12, space)
    assert (batch.sequences, batch.chosen) == (18, False)
    plans, reasons = enumerate_plans(model, 12, space)
    # dp=12 does not divide 18 sequences; tp=4 leaves dp=3, which does.
    assert [(p.tp, p.dp, p.global_batch_size) for p, _ in plans] == [(4, 3, 18)]
    assert reasons == {"global_batch_size must be a multiple of micro_batch_size*dp": 1}


def test_sweep_without_global_batch_gives_every_plan_the_same_work(
    long_model: ModelSpec,
) -> None:
    result = sweep(long_model, "h100-sxm", 8, space=_SMALL_SPACE, executor="serial")
    expected = resolve_global_batch(long_model, 8, space_from_mapping(_SMALL_SPACE))
    assert result.global_batch_chosen and result.global_batch_size == expected.sequences
    assert result.global_batch_tokens == expected.sequences * _LONG_SEQ >= DEFAULT_BATCH_TOKENS
    assert result.records and all(
        r["global_batch_size"] == result.global_batch_size for r in result.records + result.pruned
    )
    # Same work per step: tokens per second times step time is the batch's tokens for all.
    for record in result.records:
        assert record["tokens_per_s"] * record["step_time_s"] == pytest.approx(
            result.global_batch_tokens, rel=1e-9
        )
    # With equal work, the fastest step is the highest rate.
    by_rate = sweep(
        long_model, "h100-sxm", 8, space=_SMALL_SPACE, objective="tokens_per_s",
        executor="serial",
    )  # fmt: skip
    assert by_rate.best_plan == result.best_plan
    summary = result.summary()
    assert summary["global_batch_size"] == result.global_batch_size
    assert summary["global_batch_chosen"] is True and "chosen" in summary["global_batch_reason"]
    text = result.format()
    assert f"global batch: {result.global_batch_size} sequences" in text
    assert "a power of two" in text or "micro_batch_size x dp" in text


def test_baseline_runs_the_sweeps_batch_and_another_batch_is_refused(
    long_model: ModelSpec,
) -> None:
    space = {**_SMALL_SPACE, "tp": [2], "pp": [1], "micro_batch_size": [1]}
    result = sweep(
        long_model, "h100-sxm", 8, space=space, executor="serial",
        baseline=ParallelPlan.for_gpus(8, tp=2, zero_stage=1, sequence_parallel=True),
    )  # fmt: skip
    assert result.baseline is not None
    assert result.baseline["global_batch_size"] == result.global_batch_size
    # The baseline is the space's one plan at the chosen batch: the sweep's own record.
    assert result.best_record is not None
    assert result.baseline["key"] == result.best_record["key"] and result.speedup == 1.0
    with pytest.raises(SweepConfigError, match=r"baseline global_batch_size=8 .*global_batch_size"):
        sweep(
            long_model, "h100-sxm", 8, space=space, executor="serial",
            baseline=ParallelPlan.for_gpus(8, tp=2, global_batch_size=8),
        )  # fmt: skip


def test_cli_sweep_chooses_the_batch_the_api_chooses(
    long_model: ModelSpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space_file = tmp_path / "space.yaml"
    space_file.write_text(json.dumps(_SMALL_SPACE))
    argv = ["sweep", *_CLI_MODEL, "--gpus", "8", "--space", str(space_file),
            "--executor", "serial"]  # fmt: skip
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    api = sweep(long_model, "h100-sxm", 8, space=_SMALL_SPACE, executor="serial")
    assert data["global_batch_size"] == api.global_batch_size
    assert data["global_batch_reason"] == api.global_batch_reason
    assert data["best"]["global_batch_size"] == api.global_batch_size
    assert data["best"]["step_time_s"] == pytest.approx(api.best_record["step_time_s"])  # type: ignore[index]
    assert main(argv) == 0
    assert f"global batch: {api.global_batch_size} sequences" in capsys.readouterr().out


# -- invalid plans and memory pruning -------------------------------------------------------


def test_invalid_reason_drops_the_numbers_of_real_check_errors() -> None:
    from trainsim.models import InvalidPlanError, check_plan, plan_from_mapping

    with pytest.raises(InvalidPlanError) as heads:
        check_plan(_tiny(), ParallelPlan(tp=3))
    assert invalid_reason(heads.value) == "num_heads is not divisible by tp"
    with pytest.raises(InvalidPlanError) as interleaved:
        plan_from_mapping({"pp": 1, "vpp": 2})
    assert invalid_reason(interleaved.value) == "vpp needs pp > 1"
    with pytest.raises(InvalidPlanError) as gpus:
        ParallelPlan.for_gpus(12, tp=8)
    assert invalid_reason(gpus.value) == "gpus must be a positive multiple of tp*pp*cp"


#: A 6-layer, 12-head model on 16 GPUs over tp x pp of {1, 4, 8} x {1, 3, 4}, even stages only:
#: tp1 pp1 and tp4 pp1 run; tp*pp of 3, 12, 24 and 32 do not divide 16 GPUs; pp4 (with tp1
#: or tp4) cannot split 6 layers; tp8 pp1 cannot split 12 heads.
_KNOWN_INVALID = {
    "gpus must be a positive multiple of tp*pp*cp": 4,
    "num_layers is not divisible by pp*vpp": 2,
    "num_heads is not divisible by tp": 1,
}


def test_invalid_plans_are_counted_by_reason(capsys: pytest.CaptureFixture[str]) -> None:
    model = _tiny(num_layers=6, hidden_size=768, num_heads=12)
    space = {
        "tp": [1, 4, 8], "pp": [1, 3, 4], "cp": [1], "micro_batch_size": [1], "zero_stage": [0],
        "recompute": ["none"], "uneven_stages": False, "global_batch_size": 32, "vpp": [1],
        "overlap_tp_comm": [False],
    }  # fmt: skip
    plans, reasons = enumerate_plans(model, 16, space_from_mapping(space))
    assert sorted((p.tp, p.pp) for p, _ in plans) == [(1, 1), (4, 1)]
    assert reasons == _KNOWN_INVALID
    assert list(reasons.values()) == sorted(reasons.values(), reverse=True)
    result = sweep(model, "h100-sxm", 16, space=space, executor="serial",
                   constraints={"max_memory_gib": 60.0})  # fmt: skip
    assert result.plans_invalid == 7 and result.invalid_reasons == _KNOWN_INVALID
    summary = result.summary()
    assert summary["invalid_reasons"] == _KNOWN_INVALID and summary["plans_invalid"] == 7
    assert summary["memory_limit_gib"] == 60.0
    assert summary["memory_limit_source"] == "the max_memory_gib constraint"
    text = result.format()
    assert "7 invalid" in text and "invalid plans by reason:" in text
    for why, count in _KNOWN_INVALID.items():
        assert f"{count:>8}  {why}" in text
    assert "pruned by memory: per-GPU memory of the fullest pipeline stage" in text
    assert "over 60.0 GiB (the max_memory_gib constraint)" in text
    on_device = sweep(model, "h100-sxm", 16, space=space, executor="serial")
    summary = on_device.summary()
    assert summary["memory_limit_source"] == (
        "the usable memory of one h100-sxm (80 GiB less 1 the runtime holds)"
    )
    assert summary["memory_limit_gib"] == device_preset("h100-sxm").usable_memory_gib


def test_cli_json_lists_invalid_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space_file = tmp_path / "space.yaml"
    space_file.write_text("tp: [1, 2, 3]\npp: [1]\ncp: [1]\nmicro_batch_size: [1]\n"
                          "zero_stage: [0]\nrecompute: [none]\n"
                          "overlap_tp_comm: [false]\n")  # fmt: skip
    argv = ["sweep", *_CLI_MODEL, "--gpus", "8", "--global-batch", "8", "--space",
            str(space_file), "--executor", "serial", "--json"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["invalid_reasons"] == {"gpus must be a positive multiple of tp*pp*cp": 1}
    assert data["plans_invalid"] == 1 and data["global_batch_chosen"] is False


# -- one knob for the sharded optimizer -----------------------------------------------------


def test_records_have_one_column_for_the_sharded_optimizer(long_model: ModelSpec) -> None:
    assert "distributed_optimizer" not in RECORD_COLUMNS and "zero_stage" in RECORD_COLUMNS
    result = sweep(long_model, "h100-sxm", 8, space={**_SMALL_SPACE, "tp": [2], "pp": [1]},
                   executor="serial")  # fmt: skip
    assert all("distributed_optimizer" not in r for r in result.records)
    assert "distributed_optimizer" not in result.to_dataframe().columns


def _one_plan_space(tmp_path: Path) -> list[str]:
    """``--space`` of a file that holds one plan (tp 2, ZeRO-1), to keep CLI sweeps short."""
    path = tmp_path / "one.yaml"
    path.write_text("tp: [2]\npp: [1]\nmicro_batch_size: [1]\nzero_stage: [1]\nrecompute: [none]\n")
    return ["--space", str(path)]


def test_cli_distributed_optimizer_is_zero_stage_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sweep", *_CLI_MODEL, "--gpus", "8", "--global-batch", "8", "--executor", "serial",
            "--baseline", "--tp", "2", "--json"]  # fmt: skip
    space = _one_plan_space(tmp_path)
    assert main([*argv, *space, "--distributed-optimizer"]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"]["zero_stage"] == 1
    assert main([*argv, *space, "--use-distributed-optimizer", "--zero", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"]["zero_stage"] == 2
    assert main([*argv, *space, "--distributed-optimizer", "--zero", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "distributed_optimizer=True" in err and "zero_stage=0" in err


# -- progress -------------------------------------------------------------------------------


def test_progress_is_quiet_when_stderr_is_not_a_terminal(
    long_model: ModelSpec,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    space = {**_SMALL_SPACE, "tp": [2], "pp": [1], "micro_batch_size": [1]}
    assert not sys.stderr.isatty()
    result = sweep(long_model, "h100-sxm", 8, space=space, executor="serial")
    assert result.records and capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert SweepProgress(1, objective="step_time").enabled
    assert not SweepProgress(1, objective="step_time", enabled=False).enabled
    sweep(long_model, "h100-sxm", 8, space=space, executor="serial")
    assert "sweep" in capsys.readouterr().err
    # The CLI's --json output is for programs: no bar even on a terminal.
    argv = ["sweep", *_CLI_MODEL, "--gpus", "8", "--global-batch", "8", "--tp", "2",
            "--executor", "serial", "--json", *_one_plan_space(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
