"""The fast tier agrees with the event-driven engine: a corpus of random valid plans.

Every plan of the corpus (dense and MoE models, every parallelism kind, 1F1B and interleaved
schedules, uneven stages, recomputation, ZeRO stages, TP overlap, blocking and non-blocking
pipeline exchanges, deferred gradient reduction, BF16 and FP8) is predicted by both tiers;
they must agree within 2% on each, and rank each group of plans that share a model, a GPU
count and a global batch with the same best plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import numpy as np
import pytest

from trainsim.engine import (
    FastTierError,
    Scheduling,
    System,
    cluster_system,
    fast_step,
    fast_tier_applies,
    predict,
)
from trainsim.models import (
    InvalidPlanError,
    ModelSpec,
    ParallelPlan,
    check_plan,
    model_preset,
    segment_key,
    segment_plan_key,
    stage_segment,
)

#: Models shrunk in depth so that the engine's side of the corpus runs in seconds.
_MODELS: dict[str, dict[str, Any]] = {
    "gpt-1.7b": {"num_layers": 8},
    "llama3-8b": {"num_layers": 8, "seq_len": 4096},
    "llama2-13b": {"num_layers": 10, "seq_len": 2048},
    "mixtral-8x7b": {"num_layers": 6, "seq_len": 2048},
    "deepseek-v3": {"num_layers": 6, "num_dense_layers": 1, "seq_len": 2048},
}
_DEVICES = ("h100-sxm", "a100-80gb", "h200")
_CORPUS_SIZE = 240
_TOLERANCE = 0.02


@cache
def _model(name: str) -> ModelSpec:
    return model_preset(name).model_copy(update=_MODELS[name])


@cache
def _system(device: str, gpus: int) -> System:
    return cluster_system(device, gpus)


def _draw(rng: np.random.Generator, name: str) -> ParallelPlan | None:
    """One random plan for model ``name``, or None when the draw is not a valid plan."""
    model = _model(name)
    pick = rng.choice
    tp, pp, cp = int(pick([1, 2, 4, 8])), int(pick([1, 2, 3, 4])), int(pick([1, 1, 2]))
    dp = int(pick([1, 2, 4]))
    ep = int(pick([1, 2, 4])) if model.is_moe else 1
    vpp = int(pick([1, 1, 2])) if pp > 1 else 1
    m = int(pick([1, 2, 3, 4, 6, 8]))
    mbs = int(pick([1, 2]))
    fields: dict[str, Any] = {
        "tp": tp,
        "pp": pp,
        "dp": dp,
        "cp": cp,
        "ep": ep,
        "vpp": vpp,
        "micro_batch_size": mbs,
        "global_batch_size": mbs * dp * m,
        "sequence_parallel": tp > 1 and bool(pick([True, True, False])),
        "recompute": str(pick(["none", "selective", "full"])),
        "zero_stage": int(pick([0, 1, 1, 2])),
        "overlap_grad_reduce": bool(pick([True, True, False])),
        "blocking_p2p": bool(pick([True, False])),
        "overlap_tp_comm": tp > 1 and bool(pick([False, False, True])),
        "pipeline_scatter_gather": bool(pick([True, False])),
        "dtype": str(pick(["bf16", "bf16", "fp8"])),
    }
    if pp > 2 and vpp == 1 and pick([False, True]):
        per = model.num_layers // pp
        fields["first_stage_layers"] = max(1, per - 1)
        fields["last_stage_layers"] = max(1, per - 1)
    try:
        plan = ParallelPlan(**fields)
        check_plan(model, plan)
    except (InvalidPlanError, ValueError):
        return None
    return plan


def _corpus() -> Iterator[tuple[str, str, ParallelPlan]]:
    rng = np.random.default_rng(20261204)
    names = sorted(_MODELS)
    found = 0
    while found < _CORPUS_SIZE:
        name = names[found % len(names)]
        plan = _draw(rng, name)
        if plan is None or plan.num_gpus > 128 or (plan.num_gpus > 8 and plan.num_gpus % 8):
            continue
        device = str(rng.choice(_DEVICES))
        if plan.dtype == "fp8" and device == "a100-80gb":
            device = "h100-sxm"
        found += 1
        yield name, device, plan


_CASES = list(_corpus())


def _ids() -> list[str]:
    return [
        f"{i}-{name}-tp{p.tp}pp{p.pp}v{p.vpp}dp{p.dp}cp{p.cp}ep{p.ep}z{p.zero_stage}"
        for i, (name, _, p) in enumerate(_CASES)
    ]


@pytest.mark.parametrize(("name", "device", "plan"), _CASES, ids=_ids())
def test_fast_tier_within_two_percent_of_the_engine(
    name: str, device: str, plan: ParallelPlan
) -> None:
    model, system = _model(name), _system(device, plan.num_gpus)
    engine = predict(model, plan, system).step_time_s
    fast = fast_step(model, plan, system).step_time_s
    assert abs(fast / engine - 1.0) <= _TOLERANCE, (fast, engine)


def test_the_corpus_spans_every_kind_of_plan() -> None:
    plans = [plan for _, _, plan in _CASES]
    assert len(plans) == _CORPUS_SIZE
    assert {name for name, _, _ in _CASES} == set(_MODELS)
    for what in (
        lambda p: p.vpp > 1,
        lambda p: p.pp > 1 and p.vpp == 1,
        lambda p: p.first_stage_layers is not None,
        lambda p: p.cp > 1,
        lambda p: p.ep > 1,
        lambda p: p.tp > 1 and p.sequence_parallel,
        lambda p: p.overlap_tp_comm,
        lambda p: p.recompute == "full",
        lambda p: p.recompute == "selective",
        lambda p: p.zero_stage in (1, 2),
        lambda p: not p.overlap_grad_reduce,
        lambda p: not p.blocking_p2p,
        lambda p: p.dtype == "fp8",
    ):
        assert sum(1 for p in plans if what(p)) >= 5


def _sweep_groups() -> list[tuple[str, str, list[ParallelPlan]]]:
    """Plans of one model, GPU count and global batch: what one sweep compares."""
    groups: list[tuple[str, str, list[ParallelPlan]]] = []
    for name, gpus, batch in (("llama3-8b", 16, 32), ("mixtral-8x7b", 16, 32)):
        model = _model(name)
        plans = []
        for tp in (1, 2, 4, 8):
            for pp in (1, 2):
                for vpp in (1, 2):
                    for mbs in (1, 2):
                        rest = gpus // (tp * pp)
                        ep = 2 if model.is_moe and rest % 2 == 0 else 1
                        try:
                            plan = ParallelPlan(
                                tp=tp,
                                pp=pp,
                                dp=rest,
                                ep=ep,
                                vpp=vpp if pp > 1 else 1,
                                micro_batch_size=mbs,
                                global_batch_size=batch,
                                sequence_parallel=tp > 1,
                                zero_stage=1,
                            )
                            check_plan(model, plan)
                        except (InvalidPlanError, ValueError):
                            continue
                        plans.append(plan)
        groups.append((name, "h100-sxm", plans))
    return groups


@pytest.mark.parametrize(("name", "device", "plans"), _sweep_groups(), ids=lambda v: str(v)[:12])
def test_both_tiers_pick_the_same_best_plan(
    name: str, device: str, plans: list[ParallelPlan]
) -> None:
    model = _model(name)
    assert len(plans) >= 8
    engine = [predict(model, p, _system(device, p.num_gpus)).step_time_s for p in plans]
    fast = [fast_step(model, p, _system(device, p.num_gpus)).step_time_s for p in plans]
    assert int(np.argmin(fast)) == int(np.argmin(engine))


def test_segments_with_equal_keys_emit_equal_nodes() -> None:
    """The timing cache is keyed by ``segment_key``: equal keys must mean equal segments."""
    seen: dict[tuple[object, ...], bytes] = {}
    for name, _, plan in _CASES[:60]:
        model = _model(name)
        plan_key = segment_plan_key(model.model_dump_json(), plan, "layer")
        for stage in range(plan.pp):
            for phase in ("fwd", "bwd"):
                for chunk in range(plan.vpp):
                    key = segment_key(plan_key, model, plan, stage, phase, chunk)
                    segment = stage_segment(model, plan, stage, phase, chunk)
                    content = b"".join(
                        node.SerializeToString() for node in _anonymous(segment.graph.node_list)
                    )
                    assert seen.setdefault(key, content) == content


#: Attributes that name where a node is (layer, micro-batch, chunk, process group), not
#: what it costs.
_PLACE_ATTRS = frozenset(("pg_name", "layer", "micro_batch", "chunk"))


def _anonymous(nodes: list[Any]) -> list[Any]:
    """Nodes without their names and the attributes that only place them."""
    out = []
    for node in nodes:
        copy = type(node)()
        copy.CopyFrom(node)
        copy.name = ""
        kept = [attr for attr in copy.attr if attr.name not in _PLACE_ATTRS]
        del copy.attr[:]
        copy.attr.extend(kept)
        out.append(copy)
    return out


def test_fast_tier_refuses_a_scheduling_it_does_not_follow() -> None:
    model = _model("gpt-1.7b")
    plan = ParallelPlan(tp=2, pp=2, dp=2, global_batch_size=8)
    system = cluster_system("h100-sxm", 8).model_copy(
        update={"scheduling": Scheduling(comm_stream_per_kind=False)}
    )
    assert not fast_tier_applies(system)
    with pytest.raises(FastTierError, match="default scheduling"):
        fast_step(model, plan, system)


def test_fast_tier_leaves_zero3_to_the_engine() -> None:
    model = _model("gpt-1.7b")
    plan = ParallelPlan(dp=8, global_batch_size=8, zero_stage=3)
    with pytest.raises(FastTierError, match="ZeRO-3"):
        fast_step(model, plan, _system("h100-sxm", 8))


def test_fast_tier_reports_the_engine_metrics() -> None:
    model = _model("llama3-8b")
    plan = ParallelPlan(tp=2, pp=2, dp=2, global_batch_size=16, sequence_parallel=True)
    system = _system("h100-sxm", 8)
    engine, fast = predict(model, plan, system), fast_step(model, plan, system)
    assert fast.metrics == engine.metrics
    assert fast.mfu == pytest.approx(engine.mfu, rel=_TOLERANCE)
    assert fast.tokens_per_s == pytest.approx(engine.tokens_per_s, rel=_TOLERANCE)
