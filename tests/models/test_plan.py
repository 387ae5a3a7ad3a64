"""ParallelPlan validation, stage layer splits, and rank/process-group layout properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainsim.models import (
    GROUP_KINDS,
    InvalidPlanError,
    ParallelPlan,
    RankLayout,
    check_plan,
    describe_layout,
    model_from_mapping,
    model_preset,
    plan_from_mapping,
    stage_layer_counts,
    stage_layer_ranges,
)


def test_derived_sizes() -> None:
    plan = ParallelPlan.for_gpus(16384, tp=8, pp=16, micro_batch_size=1, global_batch_size=2048)
    assert plan.dp == 128 and plan.num_gpus == 16384 and plan.num_micro_batches == 16


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tp": 0}, r"tp=0: Input should be greater than or equal to 1"),
        ({"zero_stage": 4}, r"zero_stage=4: Input should be less than or equal to 3"),
        ({"dp": 4, "micro_batch_size": 2, "global_batch_size": 12}, r"global_batch_size=12.*=8"),
        ({"dp": 3, "ep": 2}, r"ep=2 must divide dp\*cp=3\*1=3"),
        ({"vpp": 2}, r"vpp=2 needs pp > 1"),
    ],
)
def test_invalid_plans_name_field_and_numbers(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidPlanError, match=message):
        plan_from_mapping(fields)


def test_gpus_not_divisible() -> None:
    with pytest.raises(InvalidPlanError, match=r"gpus=1000.*tp\*pp\*cp=8\*16\*1=128"):
        ParallelPlan.for_gpus(1000, tp=8, pp=16)


# -- distributed_optimizer: Megatron's name for ZeRO stage 1, accepted on input only ----------


@settings(max_examples=40, deadline=None)
@given(zero=st.one_of(st.none(), st.integers(1, 3)), flag=st.booleans())
def test_distributed_optimizer_is_an_alias_of_zero_stage_1(zero: int | None, flag: bool) -> None:
    fields: dict[str, object] = {"dp": 4, "distributed_optimizer": flag}
    if zero is not None:
        fields["zero_stage"] = zero
    plan = plan_from_mapping(fields)
    stage = zero or 0
    assert plan.zero_stage == max(stage, 1 if flag else 0)
    # Optimizer states are sharded exactly when either knob said so, as before the alias.
    assert plan.optimizer_sharded == (stage >= 1 or flag)
    assert "distributed_optimizer" not in plan.model_dump()
    assert plan == ParallelPlan(dp=4, zero_stage=plan.zero_stage)


def test_distributed_optimizer_is_read_from_configs_and_kwargs() -> None:
    import yaml

    assert plan_from_mapping(yaml.safe_load("dp: 2\ndistributed_optimizer: true\n")).zero_stage == 1
    assert ParallelPlan(distributed_optimizer=True).zero_stage == 1  # type: ignore[call-arg]
    assert ParallelPlan.for_gpus(8, tp=2, distributed_optimizer=True).zero_stage == 1
    assert "distributed_optimizer" not in ParallelPlan.model_fields


def test_distributed_optimizer_with_explicit_zero_stage_0_is_refused() -> None:
    with pytest.raises(
        InvalidPlanError, match=r"distributed_optimizer=True conflicts with zero_stage=0"
    ):
        plan_from_mapping({"distributed_optimizer": True, "zero_stage": 0})
    with pytest.raises(ValueError, match=r"distributed_optimizer=True.*zero_stage=0"):
        ParallelPlan(distributed_optimizer=True, zero_stage=0)  # type: ignore[call-arg]
    with pytest.raises(InvalidPlanError, match=r"distributed_optimizer='sometimes'"):
        plan_from_mapping({"distributed_optimizer": "sometimes"})
    # False says nothing: it leaves any ZeRO stage as it is.
    assert plan_from_mapping({"distributed_optimizer": False, "zero_stage": 0}).zero_stage == 0


def test_plans_checked_against_model() -> None:
    llama = model_preset("llama3-70b")
    check_plan(llama, ParallelPlan(tp=8, pp=8, dp=2))
    with pytest.raises(InvalidPlanError, match="num_kv_heads=8 is not divisible by tp=16"):
        check_plan(llama, ParallelPlan(tp=16))
    with pytest.raises(InvalidPlanError, match="num_heads=64 is not divisible by tp=3"):
        check_plan(llama, ParallelPlan(tp=3))
    with pytest.raises(InvalidPlanError, match=r"stage 0 holds 2 layer\(s\), too few for vpp=3"):
        check_plan(llama, ParallelPlan(pp=40, vpp=3, global_batch_size=120))
    with pytest.raises(InvalidPlanError, match="seq_len=8192 must be divisible by 2\\*cp=6"):
        check_plan(llama, ParallelPlan(cp=3))
    with pytest.raises(InvalidPlanError, match="ep=2 needs an MoE model"):
        check_plan(llama, ParallelPlan(dp=2, ep=2))
    with pytest.raises(InvalidPlanError, match="num_experts=8 is not divisible by ep=16"):
        check_plan(model_preset("mixtral-8x7b"), ParallelPlan(dp=16, ep=16))


def test_uneven_first_and_last_stages() -> None:
    # Llama 3 405B was trained with one layer fewer on the first and last of 16 stages.
    model = model_preset("llama3-405b")
    plan = ParallelPlan(tp=8, pp=16, first_stage_layers=7, last_stage_layers=7)
    ranges = stage_layer_ranges(model, plan)
    counts = [len(chunks[0]) for chunks in ranges]
    assert counts == [7] + [8] * 14 + [7]
    assert [i for chunks in ranges for i in chunks[0]] == list(range(126))
    # Without a split, the balanced layout is the same: embedding and loss count one layer.
    assert stage_layer_counts(model, ParallelPlan(tp=8, pp=16)) == tuple(counts)
    with pytest.raises(InvalidPlanError, match="leaves 119"):
        check_plan(model, ParallelPlan(tp=8, pp=16, first_stage_layers=7))


def test_interleaved_chunks_are_strided() -> None:
    model = model_preset("gpt-175b")
    ranges = stage_layer_ranges(model, ParallelPlan(pp=8, vpp=3, global_batch_size=8))
    assert ranges[0] == (range(0, 4), range(32, 36), range(64, 68))
    assert ranges[7][2] == range(92, 96)


plans = st.builds(
    ParallelPlan,
    tp=st.sampled_from([1, 2, 4, 8]),
    pp=st.sampled_from([1, 2, 3, 4]),
    cp=st.sampled_from([1, 2]),
    dp=st.sampled_from([1, 2, 4, 6]),
).filter(lambda p: p.num_gpus <= 768)


@st.composite
def plans_with_ep(draw: st.DrawFn) -> ParallelPlan:
    plan = draw(plans)
    divisors = [e for e in range(1, plan.dp * plan.cp + 1) if (plan.dp * plan.cp) % e == 0]
    return plan.model_copy(update={"ep": draw(st.sampled_from(divisors))})


@settings(max_examples=60, deadline=None)
@given(plans_with_ep())
def test_every_group_kind_partitions_the_ranks(plan: ParallelPlan) -> None:
    layout = RankLayout(plan)
    world = np.arange(plan.num_gpus)
    for kind in GROUP_KINDS:
        groups = layout.groups(kind)
        assert groups.shape == (layout.num_groups(kind), layout.group_size(kind))
        assert np.array_equal(np.sort(groups.ravel()), world)
    # TP x CP x DP x PP are orthogonal: two ranks share at most one group of these kinds.
    assert layout.group_size("dp_cp") == plan.dp * plan.cp
    assert layout.group_size("ep") * layout.group_size("edp") == plan.dp * plan.cp


@settings(max_examples=60, deadline=None)
@given(plans_with_ep(), st.data())
def test_rank_coordinates_and_group_lookups_agree(plan: ParallelPlan, data: st.DataObject) -> None:
    layout = RankLayout(plan)
    rank = data.draw(st.integers(0, plan.num_gpus - 1))
    c = layout.coord(rank)
    assert layout.rank_of(tp=c.tp, cp=c.cp, dp=c.dp, pp=c.pp) == rank
    seen_ids = set()
    for kind in GROUP_KINDS:
        members = layout.group_ranks(kind, rank)
        assert rank in members and list(members) == sorted(members)
        pg = layout.pg_id(kind, rank)
        assert layout.kind_of_pg(pg) == (kind, layout.group_index(kind, rank))
        seen_ids.add(pg)
        for other in members:
            o = layout.coord(other)
            # Members differ only in the dimension(s) the kind spans.
            assert o.pp == c.pp or kind == "pp"
            if kind in ("tp", "cp", "dp", "dp_cp", "ep", "edp"):
                assert o.pp == c.pp
            if kind != "tp":
                assert o.tp == c.tp
            if kind == "tp":
                assert (o.cp, o.dp) == (c.cp, c.dp)
            if kind == "ep":
                assert o.edp == c.edp
            if kind == "edp":
                assert o.ep == c.ep
    assert len(seen_ids) == len(GROUP_KINDS)


def test_layout_matches_megatron_order() -> None:
    layout = RankLayout(ParallelPlan(tp=2, cp=2, dp=2, pp=2))
    assert layout.group_ranks("tp", 0) == (0, 1)
    assert layout.group_ranks("cp", 0) == (0, 2)
    assert layout.group_ranks("dp", 0) == (0, 4)
    assert layout.group_ranks("dp_cp", 1) == (1, 3, 5, 7)
    assert layout.group_ranks("pp", 3) == (3, 11)
    comm = layout.comm_groups()
    assert len(comm) == sum(layout.num_groups(k) for k in GROUP_KINDS)
    assert sorted(int(k) for k in comm) == list(range(1, len(comm) + 1))
    with pytest.raises(InvalidPlanError, match=r"rank=16 is outside \[0, 15\]"):
        layout.coord(16)


@pytest.mark.parametrize("name", ["tp", "pp", "cp"])
def test_for_gpus_refuses_a_zero_size_by_name(name: str) -> None:
    with pytest.raises(InvalidPlanError, match=rf"{name}=0 must be an integer >= 1"):
        ParallelPlan.for_gpus(64, **{name: 0})


def test_uneven_stages_with_interleaving_split_each_stage_over_its_chunks() -> None:
    """Llama 3 405B: 7, 8 x 14, 7 layers on 16 stages with 2 virtual chunks each."""
    model = model_preset("llama3-405b")
    for plan in (
        ParallelPlan(tp=8, pp=16, vpp=2, global_batch_size=32),
        ParallelPlan(
            tp=8, pp=16, vpp=2, first_stage_layers=7, last_stage_layers=7, global_batch_size=32
        ),
    ):
        ranges = stage_layer_ranges(model, plan)
        assert [len(r) for r in ranges[0]] == [4, 3] and [len(r) for r in ranges[1]] == [4, 4]
        # Interleaved order: chunk 0 of every stage, then chunk 1; every layer once.
        order = sorted((r.start, r.stop) for chunks in ranges for r in chunks)
        assert [i for start, stop in order for i in range(start, stop)] == list(range(126))
        assert ranges[0][1].start == 64  # 7 // 2 + 1 + 14 * 4 + 4 layers precede it
        assert "7, 8 x 14, 7 layers" in describe_layout(model, plan)


def test_balanced_layout_counts_embedding_and_loss() -> None:
    deepseek = model_preset("deepseek-v3")  # 61 layers on 16 stages
    counts = stage_layer_counts(deepseek, ParallelPlan(pp=16, dp=8, ep=8))
    assert sum(counts) == 61 and counts[0] + 1 <= max(counts) and counts[-1] + 1 <= max(counts)
    assert max(counts) - min(counts) <= 2
    with pytest.raises(InvalidPlanError, match="cannot give each of pp=40 stages a layer"):
        stage_layer_counts(model_from_mapping({**deepseek.model_dump(), "num_layers": 37}),
                           ParallelPlan(pp=40, dp=1, ep=1))  # fmt: skip
    with pytest.raises(InvalidPlanError, match="minus first_stage_layers=10"):
        check_plan(deepseek, ParallelPlan(pp=16, dp=8, ep=8, first_stage_layers=10,
                                          last_stage_layers=10))  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(layers=st.integers(2, 200), pp=st.integers(1, 32), vpp=st.integers(1, 4))
def test_layouts_hold_every_layer_once(layers: int, pp: int, vpp: int) -> None:
    model = model_from_mapping({**model_preset("gpt-1.7b").model_dump(), "num_layers": layers})
    plan = ParallelPlan(pp=pp, vpp=vpp if pp > 1 else 1, global_batch_size=pp * 4)
    try:
        ranges = stage_layer_ranges(model, plan)
    except InvalidPlanError:
        return
    flat = sorted(i for chunks in ranges for r in chunks for i in r)
    assert flat == list(range(layers))
    assert all(len(r) >= 1 for chunks in ranges for r in chunks)


@pytest.mark.parametrize("micro_batches", [1, 3, 6, 8])
def test_interleaved_schedule_takes_any_number_of_micro_batches(micro_batches: int) -> None:
    """Megatron-Core's schedule table: groups of pp micro-batches, a shorter last group."""
    from trainsim.models import pipeline_schedule

    pp, vpp = 4, 2
    for stage in range(pp):
        order = pipeline_schedule(pp, stage, micro_batches, vpp)
        steps = {(kind, mb, chunk) for kind, mb, chunk in order}
        assert len(order) == len(steps) == 2 * micro_batches * vpp
        for mb in range(micro_batches):
            for chunk in range(vpp):
                # A micro-batch's backward through a chunk comes after its forward.
                assert order.index(("fwd", mb, chunk)) < order.index(("bwd", mb, chunk))
    plan = ParallelPlan(pp=pp, vpp=vpp, global_batch_size=micro_batches)
    assert plan.num_micro_batches == micro_batches
