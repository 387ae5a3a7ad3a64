"""ET generation: valid graphs, round trips, group membership, matching and a deadlock check."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.models.conftest import DENSE, MOE, PLAN_3D, attr_int
from trainsim.chakra_et import ETGraph, NodeType, attrs_dict, load, validate
from trainsim.models import (
    ModelSpec,
    ParallelPlan,
    RankLayout,
    device_preset,
    generate_rank,
    generate_rank_classes,
    model_preset,
    pipeline_schedule,
    step_flops,
    write_per_rank,
    write_rank_classes,
)

PLAN_4D_CP = ParallelPlan(
    tp=2,
    pp=2,
    dp=2,
    cp=2,
    vpp=2,
    global_batch_size=4,
    sequence_parallel=True,
    recompute="selective",
)
PLAN_4D_EP = ParallelPlan(
    tp=2,
    pp=2,
    dp=4,
    ep=2,
    global_batch_size=8,
    zero_stage=1,
    recompute="full",
    overlap_grad_reduce=False,
)
PLAN_3D_OVERLAP = ParallelPlan(
    tp=2,
    pp=2,
    dp=2,
    vpp=2,
    global_batch_size=8,
    sequence_parallel=True,
    overlap_tp_comm=True,
    zero_stage=3,
)
CASES = [(DENSE, PLAN_3D), (DENSE, PLAN_4D_CP), (MOE, PLAN_4D_EP), (DENSE, PLAN_3D_OVERLAP)]


def _meta(graph: ETGraph) -> dict[str, Any]:
    return dict(attrs_dict(graph.metadata.attr))


def _all_ranks(model: ModelSpec, plan: ParallelPlan, gran: str) -> dict[int, ETGraph]:
    return {
        r: generate_rank(model, plan, r, granularity=gran)  # type: ignore[arg-type]
        for r in range(plan.num_gpus)
    }


@pytest.mark.parametrize("granularity", ["layer", "op"])
@pytest.mark.parametrize(("model", "plan"), CASES)
def test_rank_classes_validate_and_round_trip(
    tmp_path: Path, model: ModelSpec, plan: ParallelPlan, granularity: str
) -> None:
    graphs = generate_rank_classes(model, plan, granularity=granularity)  # type: ignore[arg-type]
    assert sorted(graphs) == list(range(plan.pp))
    paths = write_rank_classes(graphs, tmp_path, prefix="w")
    for (stage, graph), path in zip(sorted(graphs.items()), paths, strict=True):
        assert validate(graph) == []
        again = load(path)
        assert [n.SerializeToString() for n in again] == [n.SerializeToString() for n in graph]
        meta = _meta(again)
        assert meta["stage"] == stage and meta["rank_class"] == f"stage{stage}"
        assert ParallelPlan.model_validate_json(str(meta["plan"])) == plan
        assert ModelSpec.model_validate_json(str(meta["model"])) == model
        # Node ids ascend in issue order and every dependency points backwards.
        ids = [n.id for n in graph]
        assert ids == list(range(len(ids)))
        assert all(d < n.id for n in graph for d in ETGraph.deps(n))


@pytest.mark.parametrize(("model", "plan"), CASES)
def test_collective_groups_match_the_plan(model: ModelSpec, plan: ParallelPlan) -> None:
    layout = RankLayout(plan)
    graphs = _all_ranks(model, plan, "op")
    kinds_seen = set()
    for rank, graph in graphs.items():
        groups = json.loads(str(_meta(graph)["process_groups"]))
        for node in graph:
            if node.type != NodeType.COMM_COLL_NODE:
                continue
            attrs = attrs_dict(node.attr)
            kind = str(attrs["stream"])
            pg = str(attrs["pg_name"])
            kinds_seen.add(kind)
            assert pg == str(layout.pg_id(kind, rank))
            assert groups[pg]["kind"] == kind
            assert tuple(groups[pg]["ranks"]) == layout.group_ranks(kind, rank)
            assert rank in groups[pg]["ranks"]
    expected = {"tp", "dp_cp"}
    if plan.cp > 1:
        expected.add("cp")
    if plan.ep > 1:
        expected |= {"ep", "edp"}
    assert kinds_seen == expected


def _collective_sequences(
    graphs: dict[int, ETGraph],
) -> dict[str, dict[int, list[tuple[int, int]]]]:
    seqs: dict[str, dict[int, list[tuple[int, int]]]] = defaultdict(dict)
    for rank, graph in graphs.items():
        for node in graph:
            if node.type == NodeType.COMM_COLL_NODE:
                a = attrs_dict(node.attr)
                seqs[str(a["pg_name"])].setdefault(rank, []).append(
                    (attr_int(node, "comm_type"), attr_int(node, "comm_size"))
                )
    return seqs


@pytest.mark.parametrize("granularity", ["layer", "op"])
@pytest.mark.parametrize(("model", "plan"), CASES)
def test_all_ranks_agree_and_the_step_completes(
    model: ModelSpec, plan: ParallelPlan, granularity: str
) -> None:
    graphs = _all_ranks(model, plan, granularity)
    layout = RankLayout(plan)
    # Every member of a group issues the same collectives on it, in the same order.
    for pg, by_rank in _collective_sequences(graphs).items():
        kind, index = layout.kind_of_pg(int(pg))
        assert sorted(by_rank) == [int(r) for r in layout.groups(kind)[index]]
        assert len({tuple(v) for v in by_rank.values()}) == 1, pg
    # Every send has exactly one matching receive.
    sends: dict[tuple[object, ...], int] = defaultdict(int)
    recvs: dict[tuple[object, ...], int] = defaultdict(int)
    for graph in graphs.values():
        for node in graph:
            if node.type in (NodeType.COMM_SEND_NODE, NodeType.COMM_RECV_NODE):
                a = attrs_dict(node.attr)
                key = (a["comm_src"], a["comm_dst"], a["comm_tag"], a["comm_size"])
                (sends if node.type == NodeType.COMM_SEND_NODE else recvs)[key] += 1
    assert sends == recvs and set(sends.values()) == {1}
    assert _simulate_without_deadlock(graphs)


def _simulate_without_deadlock(graphs: dict[int, ETGraph]) -> bool:
    """Zero-cost execution: sends are buffered, a receive needs its send, a collective needs
    every member to have reached it. True when every node of every rank completes."""
    done: dict[int, set[int]] = {r: set() for r in graphs}
    sent: set[tuple[object, ...]] = set()
    arrived: dict[tuple[str, int], int] = defaultdict(int)
    issued_coll: dict[int, dict[str, int]] = {r: defaultdict(int) for r in graphs}
    waiting: dict[int, dict[int, int]] = {r: {} for r in graphs}  # node -> collective ordinal
    group_size = {
        pg: len(info["ranks"])
        for g in graphs.values()
        for pg, info in json.loads(str(_meta(g)["process_groups"])).items()
    }
    progress = True
    while progress:
        progress = False
        for rank, graph in graphs.items():
            for node in graph:
                if node.id in done[rank] or not all(d in done[rank] for d in ETGraph.deps(node)):
                    continue
                a = attrs_dict(node.attr)
                if node.type == NodeType.COMM_RECV_NODE:
                    key = (a["comm_src"], a["comm_dst"], a["comm_tag"])
                    if key not in sent:
                        continue
                elif node.type == NodeType.COMM_SEND_NODE:
                    sent.add((a["comm_src"], a["comm_dst"], a["comm_tag"]))
                elif node.type == NodeType.COMM_COLL_NODE:
                    pg = str(a["pg_name"])
                    if node.id not in waiting[rank]:
                        ordinal = issued_coll[rank][pg]
                        issued_coll[rank][pg] += 1
                        waiting[rank][node.id] = ordinal
                        arrived[pg, ordinal] += 1
                        progress = True
                    if arrived[pg, waiting[rank][node.id]] < group_size[pg]:
                        continue
                done[rank].add(node.id)
                progress = True
    return all(len(done[r]) == len(g) for r, g in graphs.items())


def _collectives(graph: ETGraph) -> dict[tuple[str, int], list[int]]:
    """Sizes of the collectives of a graph by (group kind, comm type)."""
    out: dict[tuple[str, int], list[int]] = defaultdict(list)
    for n in graph:
        if n.type == NodeType.COMM_COLL_NODE:
            a = attrs_dict(n.attr)
            out[(str(a["stream"]), int(a["comm_type"]))].append(int(a["comm_size"]))
    return {k: sorted(v) for k, v in out.items()}


_RECOMPUTE_CASES = [
    (DENSE, PLAN_3D.model_copy(update={"recompute": recompute, "sequence_parallel": sp}))
    for recompute in ("full", "selective")
    for sp in (False, True)
] + [
    (DENSE, PLAN_4D_CP.model_copy(update={"recompute": "full"})),
    (MOE, PLAN_4D_EP.model_copy(update={"recompute": "full"})),
]


@pytest.mark.parametrize(("model", "plan"), CASES + _RECOMPUTE_CASES)
def test_layer_and_op_granularity_carry_the_same_work(model: ModelSpec, plan: ParallelPlan) -> None:
    """Both granularities run the same FLOPs, the same collectives (one per block, each with
    its own start-up) and, on a device, the same kernel time."""
    device = device_preset("h100")
    coarse = generate_rank_classes(model, plan, granularity="layer", device=device)
    fine = generate_rank_classes(model, plan, granularity="op", device=device)
    for stage in coarse:

        def ops(g: ETGraph) -> int:
            return sum(attr_int(n, "num_ops") for n in g if n.type == NodeType.COMP_NODE)

        def time_us(g: ETGraph) -> int:
            return sum(n.duration_micros for n in g if n.type == NodeType.COMP_NODE)

        assert ops(coarse[stage]) == ops(fine[stage])
        assert len(fine[stage]) > len(coarse[stage])
        if plan.overlap_tp_comm:
            # TE pipelines a row-parallel GEMM's reduce-scatter in chunks: same bytes
            def total(g: ETGraph) -> dict[tuple[str, int], int]:
                return {k: sum(v) for k, v in _collectives(g).items()}

            assert total(coarse[stage]) == total(fine[stage])
        else:
            assert _collectives(coarse[stage]) == _collectives(fine[stage])
        # durations are whole microseconds per node: allow one per op node for rounding
        assert abs(time_us(coarse[stage]) - time_us(fine[stage])) <= len(fine[stage])


def test_rank_class_work_adds_up_to_hardware_flops() -> None:
    model = model_preset("gpt-1.7b").model_copy(update={"num_layers": 8})
    plan = ParallelPlan(tp=2, pp=4, dp=2, global_batch_size=8, recompute="full")
    graphs = generate_rank_classes(model, plan)
    per_class = [
        sum(attr_int(n, "num_ops") for n in g if n.type == NodeType.COMP_NODE)
        for g in graphs.values()
    ]
    assert sum(per_class) * plan.tp * plan.dp == step_flops(model, plan).hardware_flops


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 8),
    st.data(),
    st.integers(1, 3),
    st.integers(1, 4),
)
def test_pipeline_schedule_properties(p: int, data: st.DataObject, v: int, groups: int) -> None:
    stage = data.draw(st.integers(0, p - 1))
    m = groups * p if v > 1 else groups * 3
    order = pipeline_schedule(p, stage, m, v)
    steps = [(mb, c) for _, mb, c in order]
    assert sorted(o for o in order if o[0] == "fwd") == sorted(
        ("fwd", mb, c) for mb in range(m) for c in range(v)
    )
    assert len(order) == 2 * m * v and len(set(order)) == len(order)
    position = {o: i for i, o in enumerate(order)}
    for mb, c in set(steps):
        assert position["fwd", mb, c] < position["bwd", mb, c]
    # In-flight forwards never exceed what the memory model assumes.
    in_flight = peak = 0
    for phase, _, _ in order:
        in_flight += 1 if phase == "fwd" else -1
        peak = max(peak, in_flight)
    expected = p - stage if v == 1 else 2 * (p - stage - 1) + (v - 1) * p + 1
    assert peak == min(expected, m * v)


def test_per_rank_files_for_astra_sim(tmp_path: Path) -> None:
    paths = write_per_rank(DENSE, PLAN_3D, tmp_path, prefix="tiny")
    assert [p.name for p in paths] == [f"tiny.{r}.et" for r in range(8)]
    groups = json.loads((tmp_path / "comm_groups.json").read_text())
    assert groups == RankLayout(PLAN_3D).comm_groups()
    for path in paths:
        graph = load(path)
        validate(graph)
        for node in graph:
            if node.type == NodeType.COMM_COLL_NODE:
                pg = str(attrs_dict(node.attr)["pg_name"])
                rank = int(str(_meta(graph)["rank"]))
                assert rank in groups[pg]


def test_llama3_405b_layer_classes() -> None:
    plan = ParallelPlan(
        tp=8,
        pp=16,
        dp=128,
        global_batch_size=2048,
        sequence_parallel=True,
        first_stage_layers=7,
        last_stage_layers=7,
        zero_stage=1,
    )
    graphs = generate_rank_classes(model_preset("llama3-405b"), plan)
    assert len(graphs) == 16
    layers = [
        {attr_int(n, "layer") for n in g if n.type == NodeType.COMP_NODE} - {-1}
        for g in graphs.values()
    ]
    assert [len(s) for s in layers] == [7] + [8] * 14 + [7]
    validate(graphs[15])


@st.composite
def small_plans(draw: st.DrawFn) -> tuple[ModelSpec, ParallelPlan]:
    model = draw(st.sampled_from([DENSE, MOE]))
    tp, pp, cp = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2, 4])), 1
    dp = draw(st.sampled_from([1, 2]))
    if model.is_moe:
        cp = draw(st.sampled_from([1, 2]))
    ep = draw(st.sampled_from([e for e in (1, 2, 4) if (dp * cp) % e == 0])) if model.is_moe else 1
    vpp = draw(st.sampled_from([1, 2])) if pp > 1 else 1
    m = pp * draw(st.integers(1, 2))
    plan = ParallelPlan(
        tp=tp,
        pp=pp,
        dp=dp,
        cp=cp,
        ep=ep,
        vpp=vpp,
        global_batch_size=m * dp,
        sequence_parallel=tp > 1 and draw(st.booleans()),
        zero_stage=draw(st.sampled_from([0, 1, 2, 3])),
        recompute=draw(st.sampled_from(["none", "selective", "full"])),
        overlap_grad_reduce=draw(st.booleans()),
        overlap_tp_comm=draw(st.booleans()),
    )
    return model, plan


@settings(max_examples=15, deadline=None)
@given(small_plans(), st.sampled_from(["layer", "op"]))
def test_random_plans_complete_without_deadlock(
    case: tuple[ModelSpec, ParallelPlan], granularity: str
) -> None:
    model, plan = case
    graphs = _all_ranks(model, plan, granularity)
    for graph in graphs.values():
        validate(graph)
    for by_rank in _collective_sequences(graphs).values():
        assert len({tuple(v) for v in by_rank.values()}) == 1
    assert _simulate_without_deadlock(graphs)


def test_device_durations_bound_published_step_times() -> None:
    # Compute alone (one global efficiency calibration, no communication, no bubble) must take
    # less than the measured step, and not absurdly less: Korthikanti Table 5 on A100s.
    from tests.models.conftest import gpt_from_row, plan_from_row, published_rows

    a100 = device_preset("a100-80gb")
    for row in published_rows("Korthikanti", "step_time_s"):
        model, plan = gpt_from_row(row), plan_from_row(row)
        layout = RankLayout(plan)
        compute_s = (
            max(
                sum(
                    n.duration_micros
                    for n in generate_rank(model, plan, layout.rank_of(pp=stage), device=a100)
                    if n.type == NodeType.COMP_NODE
                )
                for stage in {0, plan.pp - 1}  # the stages with embedding and logits
            )
            / 1e6
        )
        ratio = compute_s / float(row["value"])
        assert 0.5 < ratio < 1.0, (row["model"], row["recompute"], ratio)
    plain = generate_rank_classes(DENSE, PLAN_3D)
    assert all(n.duration_micros == 0 for g in plain.values() for n in g)
