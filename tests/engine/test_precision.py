"""The plan's precision is the one the engine computes in; the system has none of its own."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from trainsim.engine import System, cluster_system, predict
from trainsim.models import ParallelPlan, model_from_mapping, model_preset

_SMALL = model_from_mapping(
    {
        "name": "small",
        "num_layers": 4,
        "hidden_size": 4096,
        "num_heads": 32,
        "vocab_size": 32000,
        "seq_len": 4096,
    }
)


def test_fp8_plan_computes_faster_than_bf16_on_the_same_system() -> None:
    """llama3-8b tp2 on 64 H100 was 2,923.752 ms in bf16 and in fp8: the plan's dtype was lost."""
    system = cluster_system("h100-sxm", 64)
    plan = ParallelPlan.for_gpus(64, tp=2, global_batch_size=256)
    bf16 = predict(model_preset("llama3-8b"), plan, system)
    fp8 = predict(model_preset("llama3-8b"), plan.model_copy(update={"dtype": "fp8"}), system)
    assert fp8.step_time_s < 0.8 * bf16.step_time_s
    # MFU is against the dense peak of the precision it names: fp8's is twice bf16's.
    assert fp8.mfu is not None and bf16.mfu is not None and fp8.mfu < bf16.mfu


def test_a_system_refuses_a_precision_of_its_own() -> None:
    with pytest.raises(ValidationError, match="a System has no precision"):
        System(dtype="fp8")
    with pytest.raises(ValidationError, match=r"ParallelPlan\.dtype"):
        cluster_system("h100-sxm", 8, dtype="fp8")


@settings(max_examples=25, deadline=None)
@given(
    tp=st.sampled_from([1, 2, 4]),
    micro_batch=st.sampled_from([1, 2]),
    dtype=st.sampled_from(["bf16", "fp16", "fp8"]),
    device=st.sampled_from(["h100-sxm", "a100-80gb", "h200"]),
)
def test_mfu_never_above_one(tp: int, micro_batch: int, dtype: str, device: str) -> None:
    if dtype == "fp8" and device == "a100-80gb":
        return  # no FP8 on Ampere (the device refuses it)
    plan = ParallelPlan.for_gpus(
        8, tp=tp, micro_batch_size=micro_batch, global_batch_size=16, dtype=dtype
    )
    result = predict(_SMALL, plan, cluster_system(device, 8))
    assert result.mfu is not None and 0.0 < result.mfu <= 1.0


def test_fp8_as_transformer_engine_runs_it() -> None:
    """FP8 GEMMs with TE's cast kernels; attention and memory-bound kernels as in BF16."""
    from trainsim.models import device_preset, layer_cost, memory_per_gpu

    model = model_preset("llama3-8b")
    bf16_plan = ParallelPlan(tp=2, dp=4, global_batch_size=32)
    fp8_plan = bf16_plan.model_copy(update={"dtype": "fp8"})
    bf16_ops = {op.name: op for op in layer_cost(model, bf16_plan, moe=False).ops}
    fp8_ops = {op.name: op for op in layer_cost(model, fp8_plan, moe=False).ops}
    assert not [n for n in bf16_ops if n.endswith("_fp8_cast")]
    assert {"qkv_fp8_cast", "o_fp8_cast", "fc1_fp8_cast", "fc2_fp8_cast"} <= set(fp8_ops)
    # o's input is cast on its own (attention writes BF16); qkv's comes fused out of the norm.
    assert fp8_ops["o_fp8_cast"].fwd_bytes > fp8_ops["qkv_fp8_cast"].fwd_bytes
    assert fp8_ops["fc1"].fwd_bytes < bf16_ops["fc1"].fwd_bytes  # FP8 operands
    h100 = device_preset("h100-sxm")
    flops, size = 1e12, 1e9
    assert h100.op_time_us(flops, size, "fp8", attention=True) == h100.op_time_us(
        flops, size, "bf16", attention=True
    )
    assert h100.op_time_us(0, size, "fp8") == h100.op_time_us(0, size, "bf16")  # memory-bound
    extra = (
        memory_per_gpu(model, fp8_plan).weights_bytes
        - memory_per_gpu(model, bf16_plan).weights_bytes
    )
    assert extra == memory_per_gpu(model, bf16_plan).weights_bytes  # FP8 weight + transpose


def test_fp8_speedup_stays_under_the_peak_ratio() -> None:
    system = cluster_system("h100-sxm", 64)
    plan = ParallelPlan.for_gpus(64, tp=2, global_batch_size=256, zero_stage=1)
    bf16 = predict(model_preset("llama3-8b"), plan, system).step_time_s
    fp8 = predict(
        model_preset("llama3-8b"), plan.model_copy(update={"dtype": "fp8"}), system
    ).step_time_s
    peak_ratio = system.device_spec.peak_flops("fp8") / system.device_spec.peak_flops("bf16")
    assert 1.0 < bf16 / fp8 < peak_ratio


def test_fp8_recipes_cost_what_their_kernels_move_and_need_their_hardware() -> None:
    from trainsim.engine import SystemConfigError

    model = model_preset("llama3-8b")
    plan = ParallelPlan.for_gpus(64, tp=2, global_batch_size=256, dtype="fp8")
    h100 = cluster_system("h100-sxm", 64)
    steps = {
        recipe: predict(model, plan.model_copy(update={"fp8_recipe": recipe}), h100).step_time_s
        for recipe in ("delayed", "current", "blockwise")
    }
    # Current scaling reads each tensor once more for its amax; blockwise scales in the pass.
    assert steps["current"] > steps["delayed"] == steps["blockwise"]
    mxfp8 = plan.model_copy(update={"fp8_recipe": "mxfp8"})
    with pytest.raises(SystemConfigError, match="fp8_recipe='mxfp8' does not run on h100-sxm"):
        predict(model, mxfp8, h100)
    assert predict(model, mxfp8, cluster_system("b200", 64)).step_time_s > 0
    with pytest.raises(SystemConfigError, match="a100-80gb has none"):
        predict(model, plan, cluster_system("a100-80gb", 64))
