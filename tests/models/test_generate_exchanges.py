"""Where generated ETs put their exchanges: pipeline sends, tied-embedding gradients, TP
exchanges beside GEMMs (Transformer Engine overlap, sequence parallelism's backward), blocking
sends, and how the builder writes node-naming attributes."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.models.conftest import DENSE, MOE, PLAN_3D, attr_int
from trainsim.chakra_et import NodeType, attrs_dict
from trainsim.models import ParallelPlan, RankLayout, generate_rank


@pytest.mark.parametrize("scatter_gather", [True, False])
def test_pipeline_scatter_gather_sends_a_tp_shard(scatter_gather: bool) -> None:
    """Without sequence parallelism Megatron sends 1/tp of each activation between stages and
    all-gathers it over the TP group on arrival."""
    plan = PLAN_3D.model_copy(update={"pipeline_scatter_gather": scatter_gather})
    graph = generate_rank(DENSE, plan, plan.tp * plan.dp)  # a rank of stage 1
    full = 2 * DENSE.seq_len * DENSE.hidden_size
    recvs = [n for n in graph.node_list if n.type == NodeType.COMM_RECV_NODE]
    assert recvs
    sizes = {attrs_dict(n)["comm_size"] for n in recvs}
    assert sizes == {full // plan.tp if scatter_gather else full}
    gathers = [n for n in graph.node_list if n.name.startswith("recv.") and "tp_ag" in n.name]
    assert len(gathers) == (len(recvs) if scatter_gather else 0)
    by_id = {n.id: n for n in graph.node_list}
    for gather in gathers:
        assert any(by_id[d].type == NodeType.COMM_RECV_NODE for d in gather.data_deps)


@pytest.mark.parametrize("blocking", [True, False])
def test_blocking_p2p_makes_the_next_compute_wait_for_the_send(blocking: bool) -> None:
    """Megatron's 1F1B exchanges finish before the stage computes on; without blocking, a
    send overlaps whatever the stage does next."""
    plan = PLAN_3D.model_copy(update={"blocking_p2p": blocking})
    graph = generate_rank(DENSE, plan, 0)  # stage 0 sends activations forward
    nodes = graph.node_list
    sends = [n.id for n in nodes if n.type == NodeType.COMM_SEND_NODE]
    assert sends
    waited = {d for n in nodes if n.type == NodeType.COMP_NODE for d in n.data_deps}
    assert (set(sends) <= waited) == blocking
    if not blocking:
        assert not set(sends) & waited


def test_first_and_last_stage_exchange_tied_embedding_gradients() -> None:
    """With tied embeddings Megatron all-reduces the word-embedding gradient between the
    first and last pipeline stage before the optimizer: a two-rank exchange of fp32 grads."""
    tied = DENSE.model_copy(update={"tied_embeddings": True})
    plan = ParallelPlan(tp=2, pp=4, dp=1, micro_batch_size=1, global_batch_size=8)
    layout = RankLayout(plan)
    size = 4 * tied.vocab_size * tied.hidden_size // plan.tp
    seen: dict[tuple[int, int, int, int], list[str]] = defaultdict(list)
    for stage in range(plan.pp):
        rank = layout.rank_of(tp=1, pp=stage)
        nodes = generate_rank(tied, plan, rank).node_list
        exchange = [n for n in nodes if n.name.startswith("embedding.grad.")]
        if stage in (1, 2):
            assert not exchange
            continue
        peer = layout.rank_of(tp=1, pp=plan.pp - 1 - stage)
        assert sorted(n.name for n in exchange) == ["embedding.grad.recv", "embedding.grad.send"]
        for n in exchange:
            a = attrs_dict(n)
            assert a["comm_size"] == size and {a["comm_src"], a["comm_dst"]} == {rank, peer}
            seen[(a["comm_src"], a["comm_dst"], a["comm_tag"], size)].append(n.name)
        optimizer = next(n for n in nodes if n.name == "optimizer")
        assert {n.id for n in exchange} <= set(optimizer.data_deps)
    # every send meets its receive on the other stage
    assert len(seen) == 2
    assert all(sorted(v) == ["embedding.grad.recv", "embedding.grad.send"] for v in seen.values())
    untied = generate_rank(DENSE, plan, 0).node_list
    assert not [n for n in untied if n.name.startswith("embedding.grad.")]


def test_te_overlap_puts_each_exchange_beside_its_gemm() -> None:
    """At op granularity with TP overlap (Transformer Engine's defaults): the projection's
    reduce-scatter is pipelined in 4 chunks after its GEMM chunks and the residual add waits
    for all of them; backward, QKV's data gradient runs beside the re-gather of its input and
    its weight gradient beside the reduce-scatter of that data gradient, which the norm
    before QKV waits for."""
    plan = ParallelPlan(tp=2, global_batch_size=1, sequence_parallel=True, overlap_tp_comm=True)
    nodes = generate_rank(DENSE, plan, 0, granularity="op").node_list
    by_name = {n.name: n for n in nodes}
    tag = "L0.fwd.mb0"
    chunks = [by_name[f"{tag}.o.chunk{i}"] for i in range(4)]
    reduces = [by_name[f"{tag}.o.tp_rs.chunk{i}"] for i in range(4)]
    for chunk, rs in zip(chunks, reduces, strict=True):
        assert list(rs.data_deps) == [chunk.id]
    # tokens x (hidden / tp) x hidden, 2 FLOPs each
    assert sum(attr_int(c, "num_ops") for c in chunks) == 2 * 256 * 128 * 256
    assert {r.id for r in reduces} <= set(by_name[f"{tag}.bias_dropout_add_1"].data_deps)
    bwd = "L0.bwd.mb0.qkv"
    gather, rs = by_name[f"{bwd}.input.tp_ag"], by_name[f"{bwd}.tp_rs"]
    dgrad, wgrad = by_name[f"{bwd}.dgrad"], by_name[f"{bwd}.wgrad"]
    assert gather.id < dgrad.id < rs.id < wgrad.id
    assert gather.id in wgrad.data_deps  # the weight gradient needs the whole input
    assert list(rs.data_deps) == [dgrad.id]
    assert rs.id in by_name["L0.bwd.mb0.attn_norm"].data_deps
    gathered = by_name["L0.bwd.mb0.o.tp_ag"]  # the output gradient, beside o's dgrad
    assert gathered.id in by_name["L0.bwd.mb0.o.wgrad"].data_deps
    # The pipelined and bulk exchanges hold 16 SMs beside their GEMMs; ring exchanges none.
    held = {n.name: attrs_dict(n.attr).get("comm_sms") for n in nodes}
    assert all(held[c.name] == 16 for c in chunks)
    assert held[dgrad.name] == held[wgrad.name] == 16
    assert held["L0.bwd.mb0.o.dgrad"] is None and held[f"{tag}.qkv"] is None
    layer0 = [v for k, v in held.items() if k.startswith("L0.") and v is not None]
    assert len(layer0) == 2 * 4 + 2 * 2  # o, fc2 chunks; qkv, fc1 dgrad and wgrad


def test_sequence_parallel_backward_overlaps_its_exchanges_with_the_gradients() -> None:
    """Without TE overlap, sequence parallelism's backward (Megatron-LM and TE over NCCL):
    QKV's data gradient runs beside the re-gather of its input, its weight gradient waits for
    that and runs beside the reduce-scatter of the data gradient, which the norm waits for;
    both hold NCCL's SMs only while their collective runs. The projection's output gradient
    is all-gathered before its data gradient."""
    plan = ParallelPlan(tp=2, global_batch_size=1, sequence_parallel=True)
    nodes = generate_rank(DENSE, plan, 0, granularity="op").node_list
    by_name = {n.name: n for n in nodes}
    bwd = "L0.bwd.mb0.qkv"
    gather, rs = by_name[f"{bwd}.input.tp_ag"], by_name[f"{bwd}.tp_rs"]
    dgrad, wgrad = by_name[f"{bwd}.dgrad"], by_name[f"{bwd}.wgrad"]
    assert gather.id not in dgrad.data_deps and gather.id in wgrad.data_deps
    assert list(rs.data_deps) == [dgrad.id] and rs.id not in wgrad.data_deps
    norm = by_name["L0.bwd.mb0.attn_norm"]
    assert rs.id in norm.data_deps
    assert not any(n.name.startswith("L0.bwd.mb0.attn_norm.") for n in nodes)  # no exchange
    for node, beside in ((dgrad, gather), (wgrad, rs)):
        attrs = attrs_dict(node.attr)
        assert (attrs["comm_sms"], attrs["comm_beside"]) == (16, [beside.id])
    out_grad = by_name["L0.bwd.mb0.o.tp_ag"]
    assert out_grad.id in by_name["L0.bwd.mb0.o.dgrad"].data_deps
    assert "comm_sms" not in attrs_dict(by_name["L0.bwd.mb0.o.dgrad"].attr)


def test_moe_layers_keep_every_tp_exchange_with_te_overlap() -> None:
    """Only a norm feeding a column-parallel GEMM leaves its backward exchange to that GEMM:
    the norm before an MoE layer's router keeps its own, so op nodes carry the backward TP
    exchanges layer nodes do (forward ones too, the pipelined chunks summed)."""
    plan = ParallelPlan(
        tp=2, ep=2, dp=2, global_batch_size=2, sequence_parallel=True, overlap_tp_comm=True
    )
    traffic: dict[str, Counter[tuple[str, int]]] = {}
    for granularity in ("layer", "op"):
        nodes = generate_rank(MOE, plan, 0, granularity=granularity).node_list  # type: ignore[arg-type]
        totals: Counter[tuple[str, int]] = Counter()
        for n in nodes:
            if n.type == NodeType.COMM_COLL_NODE and n.name.startswith("L"):
                phase = n.name.split(".")[1]
                totals[(phase, attr_int(n, "comm_type"))] += attr_int(n, "comm_size")
        traffic[granularity] = totals
    assert traffic["op"] == traffic["layer"]


def test_a_blocking_send_holds_the_collectives_issued_after_it() -> None:
    """Megatron's blocking exchange returns only when the send is done, so the TP all-gathers
    a layer starts with (sequence parallelism) cannot overlap it: layer and op granularity
    agree on that."""
    plan = PLAN_3D.model_copy(update={"sequence_parallel": True})
    for granularity in ("layer", "op"):
        nodes = generate_rank(DENSE, plan, 0, granularity=granularity).node_list  # type: ignore[arg-type]
        checked = 0
        for i, n in enumerate(nodes):
            if n.type != NodeType.COMM_SEND_NODE:
                continue
            for after in nodes[i + 1 :]:  # up to the next compute node
                if after.type == NodeType.COMP_NODE:
                    assert n.id in after.data_deps
                    break
                if after.type == NodeType.COMM_COLL_NODE:
                    assert n.id in after.data_deps, (granularity, after.name)
                    checked += 1
        assert checked > 0 or granularity == "op"


@pytest.mark.parametrize("granularity", ["layer", "op"])
@pytest.mark.parametrize("prefetch", [True, False])
def test_zero3_gathers_each_layer_while_the_previous_one_computes(
    prefetch: bool, granularity: str
) -> None:
    """ZeRO-3/FSDP gathers a layer's weights one layer ahead (the host enqueues the gather
    while the GPU runs the previous layer); without prefetch only after that layer is done."""
    plan = ParallelPlan(
        dp=4, global_batch_size=4, zero_stage=3, overlap_param_gather=prefetch
    )  # fmt: skip
    graph = generate_rank(DENSE, plan, 0, granularity=granularity)  # type: ignore[arg-type]
    nodes = graph.node_list
    gathers = [n for n in nodes if n.name.endswith(".fsdp_ag")]
    assert len(gathers) == 2 * DENSE.num_layers  # each layer, forward and backward
    position = {n.id: i for i, n in enumerate(nodes)}
    for gather in gathers[1:]:
        # The layer's first compute node waits for its own gather.
        layer = gather.name.removesuffix(".fsdp_ag")
        first = next(n for n in nodes if n.name.startswith(layer) and n.type == NodeType.COMP_NODE)
        assert gather.id in first.data_deps
        # With prefetch the gather does not wait for the layer before it: its dependency
        # comes before that layer's first node.
        (dep,) = gather.data_deps
        earlier = [n for n in gathers if position[n.id] < position[gather.id]][-1]
        before_previous = position[dep] < position[earlier.id]
        assert before_previous == prefetch


def test_node_naming_attributes_are_not_cached() -> None:
    """``comm_beside`` values name nodes, new in every workload: the builder's attribute cache
    must not keep them (it would grow with every plan a sweep generates)."""
    from trainsim.models import _et_builder

    plan = ParallelPlan(tp=2, global_batch_size=2, sequence_parallel=True)
    nodes = generate_rank(DENSE, plan, 0, granularity="op").node_list
    assert any("comm_beside" in attrs_dict(n.attr) for n in nodes)
    assert not any(key == "comm_beside" for key, _, _ in _et_builder._BLOBS)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=80))
def test_node_id_lists_are_written_as_protobuf_writes_them(ids: list[int]) -> None:
    """The builder writes ``comm_beside`` without protobuf objects: byte for byte the same."""
    from trainsim.models import _et_builder

    value = tuple(ids)
    assert _et_builder._id_list_blob("comm_beside", value) == _et_builder._attr_blob(
        "comm_beside", value
    )
