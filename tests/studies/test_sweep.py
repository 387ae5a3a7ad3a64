"""Parallelism sweeps: search space, pruning, objectives, executors, resume, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from trainsim.models import (
    ModelSpec,
    ParallelPlan,
    model_from_mapping,
    model_preset,
    stage_layer_counts,
)
from trainsim.studies import SearchSpace, SweepConfigError, load_space, sweep
from trainsim.studies._sweep_space import enumerate_plans, space_from_mapping
from trainsim.studies.cli import main

_TINY = {
    "name": "tiny",
    "num_layers": 8,
    "hidden_size": 1024,
    "num_heads": 8,
    "vocab_size": 8192,
    "seq_len": 1024,
}
_SPACE: dict[str, Any] = {
    "tp": [1, 2, 4],
    "pp": [1, 2, 4],
    "cp": [1],
    "vpp": [1],
    "overlap_tp_comm": [False],
    "micro_batch_size": [1, 2],
    "recompute": ["none", "full"],
    "zero_stage": [0, 1],
    "global_batch_size": 64,
}


@pytest.fixture(scope="module")
def tiny() -> ModelSpec:
    return model_from_mapping(_TINY)


def _by_key(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["key"]: {k: v for k, v in r.items() if k != "sweep_id"} for r in records}


# -- search space ---------------------------------------------------------------------------


def test_uneven_stages_let_llama3_405b_use_16_stages() -> None:
    model = model_preset("llama3-405b")
    space = SearchSpace(
        tp=[8], pp=[16], cp=[1], vpp=[1], micro_batch_size=[1], zero_stage=[1],
        recompute=["full"], overlap_tp_comm=[False],
    )  # fmt: skip
    plans, invalid = enumerate_plans(model, 16384, space)
    assert invalid == {} and len(plans) == 1
    plan = plans[0][0]
    assert plan.dp == 128
    assert stage_layer_counts(model, plan) == (7, *[8] * 14, 7)
    even_only = space.model_copy(update={"uneven_stages": False})
    assert enumerate_plans(model, 16384, even_only) == (
        [],
        {"num_layers is not divisible by pp*vpp": 1},
    )


def test_sequence_parallel_without_tp_is_tried_once(tiny: ModelSpec) -> None:
    space = space_from_mapping(
        {
            "tp": [1, 2],
            "pp": [1],
            "micro_batch_size": [1],
            "zero_stage": [0],
            "recompute": ["none"],
            "sequence_parallel": [True, False],
            "cp": [1],
            "overlap_tp_comm": [False],
        }
    )
    plans, _ = enumerate_plans(tiny, 8, space)
    keys = [(p.tp, p.sequence_parallel) for p, _ in plans]
    assert len(keys) == len(set(keys))
    assert (1, True) not in keys and (1, False) in keys and (2, True) in keys


def test_tp_overlap_is_tried_where_it_overlaps_something(tiny: ModelSpec) -> None:
    """TE's overlap needs TP and sequence parallelism: other plans run without it, once."""
    space = space_from_mapping(
        {"tp": [1, 2], "pp": [1], "cp": [1], "micro_batch_size": [1], "zero_stage": [0],
         "recompute": ["none"], "sequence_parallel": [True, False]}
    )  # fmt: skip
    assert space.overlap_tp_comm == [False, True]  # both, by default
    plans, invalid = enumerate_plans(tiny, 8, space)
    keys = [(p.tp, p.sequence_parallel, p.overlap_tp_comm) for p, _ in plans]
    assert sorted(keys) == [(1, False, False), (2, False, False), (2, True, False), (2, True, True)]
    assert invalid == {}
    assert space_from_mapping({"overlap_tp_comm": True}).overlap_tp_comm == [True]


def test_space_errors_name_the_field_and_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(SweepConfigError, match=r"recompute.*'none', 'selective' or 'full'"):
        space_from_mapping({"recompute": ["sometimes"]})
    with pytest.raises(SweepConfigError, match=r"tp.*>= 1"):
        space_from_mapping({"tp": [0, 2]})
    with pytest.raises(SweepConfigError, match=r"extra|not permitted"):
        space_from_mapping({"tensor": [2]})
    bad = tmp_path / "space.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(SweepConfigError, match="mapping"):
        load_space(bad)
    good = tmp_path / "good.yaml"
    good.write_text("tp: [2, 1]\nrecompute: [full]\n")
    assert load_space(good).tp == [1, 2]
    assert issubclass(SweepConfigError, ValueError)


# -- pruning, objectives, constraints -------------------------------------------------------


def test_plans_over_memory_are_pruned_before_simulating(
    tiny: ModelSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    simulated: list[float] = []
    result = sweep(
        tiny,
        "h100-sxm",
        16,
        space=_SPACE,
        constraints={"max_memory_gib": 2.0},
        executor="serial",
        progress=True,
        on_result=lambda r: simulated.append(r["memory_gib"]),
    )
    bar = capsys.readouterr().err
    assert f"{len(simulated)}/{len(simulated)}" in bar and "best step_time=" in bar
    summary = result.summary()
    assert summary["plans_pruned"] > 0 and summary["plans_evaluated"] > 0
    assert summary["plans_evaluated"] == len(simulated)
    assert max(simulated) <= 2.0
    assert min(r["memory_gib"] for r in result.pruned) > 2.0
    frame = result.to_dataframe(include_pruned=True)
    assert len(frame) == summary["plans_evaluated"] + summary["plans_pruned"]


def test_objectives_rank_plans_and_constraints_mark_infeasible(tiny: ModelSpec) -> None:
    small = {**_SPACE, "tp": [1, 2], "pp": [1, 2], "zero_stage": [1]}
    by_time = sweep(tiny, "h100-sxm", 16, space=small, executor="serial")
    by_rate = sweep(tiny, "h100-sxm", 16, space=small, objective="tokens_per_s", executor="serial")
    # A fixed global batch makes tokens per step constant: fastest step = highest rate.
    assert by_time.best_plan == by_rate.best_plan
    times = by_time.to_dataframe()["step_time_s"].tolist()
    assert times == sorted(times)
    tokens = 1e9
    ttt = sweep(
        tiny, "h100-sxm", 16, space=small, objective="time_to_train", tokens=tokens,
        executor="serial",
    )  # fmt: skip
    best = ttt.best_record
    assert best is not None and ttt.best_plan == by_time.best_plan
    steps = -(-tokens // (64 * 1024))
    assert best["time_to_train_days"] == pytest.approx(steps * best["step_time_s"] / 86400, 1e-6)
    limit = by_time.to_dataframe()["step_time_s"].median()
    capped = sweep(
        tiny, "h100-sxm", 16, space=small, constraints={"max_step_time_s": limit},
        executor="serial",
    )  # fmt: skip
    statuses = {r["status"] for r in capped.records}
    assert statuses == {"ok", "infeasible"}
    assert all(r["step_time_s"] <= limit for r in capped.records if r["status"] == "ok")
    with pytest.raises(SweepConfigError, match="tokens"):
        sweep(tiny, "h100-sxm", 16, space=small, objective="time_to_train")
    with pytest.raises(SweepConfigError, match="objective"):
        sweep(tiny, "h100-sxm", 16, space=small, objective="cost")  # type: ignore[arg-type]


def test_narayanan_best_plan_at_least_as_fast_as_published() -> None:
    """Sweep GPT-1.7B on 32 A100 (Narayanan et al. 2021, Table 1, first row)."""
    from trainsim.studies.validation import _model, _plan, default_data_path

    with open(default_data_path(), newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["model"] == "GPT-1.7B")
    model, published = _model(row), _plan(row)
    assert (published.tp, published.pp, published.dp, published.num_gpus) == (1, 1, 32, 32)
    space = {
        "tp": [1, 2],
        "pp": [1, 2],
        "micro_batch_size": [1, 2],
        "recompute": ["none", "full"],
        "zero_stage": [0],
        "sequence_parallel": [False],
        "global_batch_size": published.global_batch_size,
    }
    result = sweep(model, "a100-80gb", 32, space=space, baseline=published, executor="local")
    best, base = result.best_record, result.baseline
    assert best is not None and base is not None
    assert best["step_time_s"] <= base["step_time_s"]
    assert result.speedup is not None and result.speedup >= 1.0
    assert result.summary()["speedup_over_baseline"] == result.speedup


# -- executors ------------------------------------------------------------------------------


def test_local_processes_give_the_serial_results(tiny: ModelSpec) -> None:
    serial = sweep(tiny, "h100-sxm", 16, space=_SPACE, executor="serial")
    local = sweep(tiny, "h100-sxm", 16, space=_SPACE, executor="local", workers=2)
    assert local.executor == "local"
    assert _by_key(local.records) == _by_key(serial.records)
    assert local.to_dataframe().equals(serial.to_dataframe())


def test_ray_gives_the_local_results(tiny: ModelSpec) -> None:
    ray = pytest.importorskip("ray")
    from trainsim.studies import RayExecutor

    space = {**_SPACE, "zero_stage": [1]}
    local = sweep(tiny, "h100-sxm", 16, space=space, executor="local", workers=2)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = sweep(tiny, "h100-sxm", 16, space=space, executor=RayExecutor())
    finally:
        ray.shutdown()
    assert on_ray.executor == "ray"
    assert _by_key(on_ray.records) == _by_key(local.records)
    assert on_ray.to_dataframe().equals(local.to_dataframe())


# -- results file and resume ----------------------------------------------------------------


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_killed_sweep_resumes_without_repeating_or_losing_plans(
    tiny: ModelSpec, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"results{suffix}"
    reference = sweep(tiny, "h100-sxm", 16, space=_SPACE, executor="serial")
    total = len(reference.records)
    first: list[str] = []

    def stop_after_ten(record: dict[str, Any]) -> None:
        first.append(record["key"])
        if len(first) == 10:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        sweep(tiny, "h100-sxm", 16, space=_SPACE, out=out, executor="local", workers=2,
              on_result=stop_after_ten)  # fmt: skip
    # A kill in the middle of a write leaves a partial line: it must not count.
    with open(out, "a") as handle:
        handle.write('{"sweep_id": "trunc' if suffix == ".jsonl" else "abc,def")
    second: list[str] = []
    resumed = sweep(tiny, "h100-sxm", 16, space=_SPACE, out=out, executor="local", workers=2,
                    on_result=lambda r: second.append(r["key"]))  # fmt: skip
    assert resumed.plans_resumed == 10
    assert not set(first) & set(second)
    assert len(first) + len(second) == total
    assert _by_key(resumed.records) == _by_key(reference.records)
    lines = out.read_text().splitlines()
    verified = resumed.summary()["plans_verified"]
    assert verified == reference.summary()["plans_verified"] > 0
    # One line per plan, and one more for each plan the engine re-simulated.
    assert len(lines) == total + verified + (1 if suffix == ".csv" else 0)
    # A third run has nothing left to simulate nor to verify.
    again = sweep(tiny, "h100-sxm", 16, space=_SPACE, out=out, executor="serial")
    assert again.plans_resumed == total
    assert again.best_plan == reference.best_plan
    assert len(out.read_text().splitlines()) == len(lines)


def test_results_file_of_another_sweep_is_refused(tiny: ModelSpec, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    small = {**_SPACE, "tp": [1], "pp": [1]}
    sweep(tiny, "h100-sxm", 16, space=small, out=out, executor="serial")
    with pytest.raises(SweepConfigError, match="another sweep"):
        sweep(tiny, "h100-sxm", 8, space=small, out=out, executor="serial")
    # Objective and constraints are applied when ranking: the same file serves them all.
    fastest = sweep(
        tiny, "h100-sxm", 16, space=small, out=out, objective="tokens_per_s",
        constraints={"max_step_time_s": 1e-9}, executor="serial",
    )  # fmt: skip
    assert fastest.plans_resumed == len(fastest.records) > 0
    assert {r["status"] for r in fastest.records} == {"infeasible"}
    assert fastest.best_record is None


# -- plots and CLI --------------------------------------------------------------------------


def test_pareto_front_and_plot(tiny: ModelSpec, tmp_path: Path) -> None:
    baseline = ParallelPlan.for_gpus(16, tp=4, pp=4, global_batch_size=64)
    result = sweep(tiny, "h100-sxm", 16, space=_SPACE, executor="serial", baseline=baseline)
    front = result.pareto_front()
    assert len(front) >= 1
    assert front["memory_gib"].is_monotonic_increasing
    assert front["step_time_s"].is_monotonic_decreasing
    assert front["step_time_s"].iloc[-1] == pytest.approx(result.best_record["step_time_s"])  # type: ignore[index]
    path = tmp_path / "pareto.png"
    result.plot_pareto(path)
    assert path.stat().st_size > 1000
    assert "baseline" in result.format()


_CLI_MODEL = [
    "--model", "llama3-8b", "--layers", "4", "--hidden", "1024", "--heads", "8",
    "--kv-heads", "8", "--ffn", "2048", "--vocab", "8192", "--seq", "1024",
]  # fmt: skip


def test_cli_sweep_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("tp: [1, 2]\npp: [1, 2]\nmicro_batch_size: [1]\nzero_stage: [0, 1]\n")
    out = tmp_path / "results.csv"
    argv = [
        "sweep", *_CLI_MODEL, "--gpus", "8", "--global-batch", "32", "--space", str(space),
        "--executor", "serial", "--out", str(out), "--baseline", "--tp", "2", "--pp", "2",
        "--json",
    ]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["plans_evaluated"] > 0 and data["plans_resumed"] == 0
    assert {"plans_pruned", "wall_s", "best", "speedup_over_baseline"} <= set(data)
    best = data["best"]
    assert {"tp", "pp", "dp", "micro_batch_size", "recompute", "step_time_s"} <= set(best)
    assert best["global_batch_size"] == 32
    assert data["speedup_over_baseline"] >= 1.0
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["plans_resumed"] == data["plans_evaluated"]
    assert again["best"] == data["best"]


def test_cli_sweep_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("recompute: [often]\n")
    code = main(["sweep", *_CLI_MODEL, "--gpus", "8", "--space", str(space), "--json"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "recompute" in err and "'full'" in err
    assert main(["sweep", *_CLI_MODEL, "--json"]) == 2
    assert "--gpus" in capsys.readouterr().err


def test_public_names_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    from trainsim import studies

    names = {
        "Constraints", "Executor", "LocalExecutor", "RayExecutor", "SearchSpace",
        "SerialExecutor", "SweepConfigError", "SweepResult", "WhatIfResult",
        "compression_whatif", "load_space", "sweep", "topology_whatif",
    }  # fmt: skip
    assert names <= set(studies.__all__)
    assert all(hasattr(studies, name) for name in studies.__all__)
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert "sweep" in listed and "whatif" in listed


def test_cli_sweep_killed_by_signal_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    space = tmp_path / "space.yaml"
    space.write_text(json.dumps({k: v for k, v in _SPACE.items() if k != "global_batch_size"}))
    out = tmp_path / "results.jsonl"
    argv = [
        "sweep", *_CLI_MODEL, "--gpus", "16", "--global-batch", "64", "--space", str(space),
        "--executor", "serial", "--out", str(out), "--json",
    ]  # fmt: skip
    code = "import sys; from studies.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 5:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the sweep finished before it could be killed"
    text = out.read_text()
    before = {json.loads(line)["key"] for line in text[: text.rfind("\n") + 1].splitlines()}
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    keys = [r["key"] for r in lines]
    assert len(set(keys)) == data["plans_evaluated"]
    # A plan appears twice only when the engine re-simulated it after the fast tier.
    assert len(keys) - len(set(keys)) <= data["plans_verified"]
    assert data["plans_resumed"] == len(before) >= 5


def test_cli_sweep_reads_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(
        "tp: [1, 2]\npp: [1]\ncp: [1]\nmicro_batch_size: [1]\nzero_stage: [1]\n"
        "recompute: [full]\noverlap_tp_comm: false\n"
    )
    config = tmp_path / "sweep.yaml"
    config.write_text(
        f"gpus: 8\nglobal-batch: 16\nspace: {space}\nexecutor: serial\n"
        "objective: tokens_per_s\nmax-memory-gib: 60\n"
    )
    assert main(["sweep", *_CLI_MODEL, "--config", str(config), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["objective"] == "tokens_per_s" and data["executor"] == "serial"
    assert data["plans_evaluated"] == 2 and data["best"]["global_batch_size"] == 16


# -- two tiers ------------------------------------------------------------------------------


def test_the_best_plans_carry_the_engines_figures(tiny: ModelSpec) -> None:
    from trainsim.engine import cluster_system, predict

    result = sweep(tiny, "h100-sxm", 16, space=_SPACE, executor="serial", verify=5)
    summary = result.summary()
    assert summary["plans_verified"] == 5
    assert summary["plans_fast_tier"] + 5 == summary["plans_evaluated"]
    best = result.best(5)
    assert set(best["tier"]) == {"engine"}
    system = cluster_system("h100-sxm", 16)
    assert {r["key"] for r in result.verified} == {r["key"] for r in result._ranked()[:5]}
    for record in result.verified:
        plan = ParallelPlan.model_validate({k: record[k] for k in ParallelPlan.model_fields})
        assert record["step_time_s"] == predict(tiny, plan, system).step_time_s
        assert record["fast_step_time_s"] == pytest.approx(record["step_time_s"], rel=0.02)
    assert "5 best re-simulated by the engine" in result.format()
    with pytest.raises(SweepConfigError, match="verify=-1"):
        sweep(tiny, "h100-sxm", 16, space=_SPACE, executor="serial", verify=-1)


def test_time_to_train_is_ranked_by_the_engine(tiny: ModelSpec) -> None:
    small = {**_SPACE, "tp": [1, 2], "pp": [1]}
    result = sweep(
        tiny, "h100-sxm", 16, space=small, objective="time_to_train", tokens=1e9,
        executor="serial",
    )  # fmt: skip
    assert {r["tier"] for r in result.records} == {"engine"}
    assert result.best_record is not None


def test_a_space_with_nothing_left_to_evaluate_is_one_line(
    tiny: ModelSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SweepConfigError, match=r"no plan of the space is left.*over 0.01 GiB"):
        sweep(tiny, "h100-sxm", 16, space=_SPACE, constraints={"max_memory_gib": 0.01})
    argv = ["sweep", *_CLI_MODEL, "--gpus", "8", "--global-batch", "8", "--max-memory-gib",
            "0.01", "--executor", "serial"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no plan of the space is left to evaluate" in err[0]
