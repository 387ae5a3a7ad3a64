"""A layer node costs each of its operations: memory-bound work is not hidden behind GEMMs."""

from __future__ import annotations

import pytest

from trainsim.chakra_et import get_attr
from trainsim.models import (
    ROOFLINE_ATTR,
    ParallelPlan,
    device_preset,
    encode_roofline,
    generate_rank_classes,
    layer_cost,
    memory_per_gpu,
    model_from_mapping,
    optimizer_cost,
    roofline_time_us,
)

A100 = device_preset("a100-80gb")
GPT = model_from_mapping(
    {
        "name": "gpt-1.7b",
        "num_layers": 4,
        "hidden_size": 2304,
        "num_heads": 24,
        "vocab_size": 51200,
        "seq_len": 2048,
        "dropout": True,
        "bias": True,
    }
)


def _layer_time_us(plan: ParallelPlan) -> float:
    graph = generate_rank_classes(GPT, plan)[0]
    ops = next(
        get_attr(n, ROOFLINE_ATTR)
        for n in graph.node_list
        if n.name.startswith("L0.fwd") and get_attr(n, ROOFLINE_ATTR) is not None
    )
    assert isinstance(ops, list)
    return roofline_time_us(A100, ops)


def test_sum_of_op_rooflines_exceeds_the_whole_node_roofline() -> None:
    plan = ParallelPlan(attention="unfused")
    cost = layer_cost(GPT, plan, False)
    summed = _layer_time_us(plan)
    whole = A100.op_time_us(cost.fwd_flops, cost.fwd_bytes, gemm_shape=cost.main_gemm_shape)
    assert summed > 1.2 * whole


def test_unfused_attention_streams_the_scores() -> None:
    unfused = layer_cost(GPT, ParallelPlan(attention="unfused"), False)
    flash = layer_cost(GPT, ParallelPlan(attention="flash"), False)
    scores = GPT.num_heads * GPT.seq_len**2
    # scores written and read by the two GEMMs, softmax and dropout in between: 13 B each
    assert unfused.fwd_bytes - flash.fwd_bytes == pytest.approx(13 * scores, rel=0.02)
    assert unfused.fwd_flops == flash.fwd_flops
    assert _layer_time_us(ParallelPlan(attention="unfused")) > _layer_time_us(ParallelPlan())


def test_fused_attention_runs_half_the_scores_of_a_causal_model() -> None:
    (code, flops, *_rest) = encode_roofline([("attention", 1000, 10, None)])
    assert (code, flops) == (2, 500)
    with pytest.raises(ValueError, match="6 integers per op"):
        roofline_time_us(A100, [1, 2, 3])


def test_flash_attention_stores_no_scores() -> None:
    flash = memory_per_gpu(GPT, ParallelPlan()).activations_bytes
    unfused = memory_per_gpu(GPT, ParallelPlan(attention="unfused")).activations_bytes
    drop = 5  # softmax output 2 bytes, dropout mask 1 and output 2, per score per layer
    assert unfused - flash == drop * GPT.num_heads * GPT.seq_len**2 * GPT.num_layers


def test_unfused_gradient_accumulation_adds_twelve_bytes_per_weight() -> None:
    def bwd_bytes(fused: bool) -> int:
        plan = ParallelPlan(grad_accumulation_fusion=fused)
        graph = generate_rank_classes(GPT, plan)[0]
        node = next(n for n in graph.node_list if n.name.startswith("L0.bwd"))
        value = get_attr(node, "tensor_size")
        assert isinstance(value, int)
        return value

    assert bwd_bytes(False) - bwd_bytes(True) == 12 * GPT.dense_layer_params()


def test_tp_overlap_runs_gemms_in_chunks_of_the_shard() -> None:
    """Transformer Engine overlaps the all-gather before QKV/FC1 as one GEMM chunk per TP
    shard and pipelines the reduce-scatter after the row-parallel GEMMs in 4 chunks; the
    FLOPs stay, the efficiency curve sees the chunks, and the layer takes longer."""
    base = {"tp": 4, "sequence_parallel": True}
    plain = layer_cost(GPT, ParallelPlan(**base), False)
    overlapped = layer_cost(GPT, ParallelPlan(**base, overlap_tp_comm=True), False)
    assert overlapped.fwd_flops == plain.fwd_flops
    assert overlapped.bwd_flops == plain.bwd_flops
    ops = {op.name: op for op in overlapped.ops}
    tokens = GPT.seq_len
    ((_, _, _, qkv_shape),) = ops["qkv"].kernels("fwd")
    assert qkv_shape is not None and qkv_shape[0] == tokens // 4
    ((_, _, _, fc2_shape),) = ops["fc2"].kernels("fwd")
    assert fc2_shape is not None and fc2_shape[0] == tokens // 4  # four pipeline chunks
    dgrad, wgrad = ops["o"].kernels("bwd")
    assert dgrad[3] is not None and dgrad[3][0] == tokens // 4
    assert wgrad[3] is not None and tokens in wgrad[3]
    assert dgrad[1] + wgrad[1] == ops["o"].bwd_flops
    # every overlapped GEMM's backward is two kernels (data and weight gradient), since TE
    # overlaps a different exchange with each; only the row-parallel dgrad runs in chunks
    dgrad, wgrad = ops["qkv"].kernels("bwd")
    assert dgrad[3] == (tokens, GPT.hidden_size, ops["qkv"].gemm_shape[1])  # type: ignore[index]
    assert dgrad[1] + wgrad[1] == ops["qkv"].bwd_flops
    gemms = ("qkv", "o", "fc1", "fc2")
    assert all(len(op.kernels("bwd")) == (2 if n in gemms else 1) for n, op in ops.items())
    slower = _layer_time_us(ParallelPlan(**base, overlap_tp_comm=True))
    assert slower > 1.02 * _layer_time_us(ParallelPlan(**base))


@pytest.mark.parametrize(("loss_scaling", "per_weight"), [(False, 42), (True, 50)])
def test_optimizer_step_moves_megatrons_bytes(loss_scaling: bool, per_weight: int) -> None:
    """Norm (4) + fused Adam (28) + cast to 16 bits (6) + zeroing the grad buffer (4), and
    unscaling with its inf check (8) under fp16 loss scaling."""
    assert optimizer_cost(1000, loss_scaling=loss_scaling).fwd_bytes == per_weight * 1000


def test_sharded_optimizer_updates_its_shard_and_zeroes_the_whole_buffer() -> None:
    assert optimizer_cost(800, params_updated=100).fwd_bytes == 38 * 100 + 4 * 800


def test_flash_attention_backward_recomputes_the_scores() -> None:
    """Five matmuls to the forward's two: the kernel runs 2.5x; the count stays 2x."""
    core = next(op for op in layer_cost(GPT, ParallelPlan(), False).ops if op.name == "attn_core")
    ((_, bwd_run, _, _),) = core.kernels("bwd")
    assert bwd_run == 2.5 * core.fwd_flops
    assert core.bwd_flops == 2 * core.fwd_flops


def test_block_elementwise_kernels_and_sequence_parallel_split() -> None:
    """Norm 4 B/element forward, 6 backward; bias-dropout-add 7 forward, 5 backward (2 bytes
    per activation, a 1-byte mask); sequence parallelism splits them over the TP group."""
    plan = ParallelPlan(tp=4)
    ops = {op.name: op for op in layer_cost(GPT, plan, False).ops}
    elements = GPT.seq_len * GPT.hidden_size
    assert (ops["attn_norm"].fwd_bytes, ops["attn_norm"].bwd_bytes) == (4 * elements, 6 * elements)
    add = ops["bias_dropout_add_2"]
    assert (add.fwd_bytes, add.bwd_bytes) == (7 * elements, 5 * elements)
    sp = {
        op.name: op
        for op in layer_cost(GPT, plan.model_copy(update={"sequence_parallel": True}), False).ops
    }
    assert sp["mlp_norm"].fwd_bytes * 4 == ops["mlp_norm"].fwd_bytes
    assert sp["bias_dropout_add_1"].fwd_bytes * 4 == ops["bias_dropout_add_1"].fwd_bytes
