"""Measured GEMM tables: grid checks, interpolation, and their use by the device model."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from trainsim.models import (
    AttentionMeasurement,
    EfficiencyModel,
    GemmMeasurement,
    ModelsError,
    ParallelPlan,
    device_preset,
    encode_roofline,
    layer_cost,
    measure_gemm,
    measured_device,
    model_preset,
    roofline_time_us,
)

DIMS = (256, 1024, 4096)


def _table(
    rate: float = 100.0, dims: tuple[int, ...] = DIMS, dtype: str = "bf16"
) -> GemmMeasurement:
    # Rate grows with every dimension: tflops = rate * log2(m n k) / log2(4096^3).
    top = 3 * math.log2(max(dims))
    points = [
        (m, n, k, rate * math.log2(m * n * k) / top)
        for m, n, k in itertools.product(dims, repeat=3)
    ]
    return GemmMeasurement.model_validate({"dtype": dtype, "points": points})


def test_grid_must_be_complete_and_positive() -> None:
    points = [p for p in _table().points if p[:3] != (256, 1024, 4096)]
    with pytest.raises(ValidationError, match=r"point \(256, 1024, 4096\) is missing"):
        GemmMeasurement(dtype="bf16", points=tuple(points))
    with pytest.raises(ValidationError, match=r"point \(8, 8, 8\): rate -1.0 must be positive"):
        GemmMeasurement(dtype="bf16", points=((8, 8, 8, -1.0),))
    with pytest.raises(ValidationError, match=r"point \(8, 8, 8\) is measured twice"):
        GemmMeasurement(dtype="bf16", points=((8, 8, 8, 1.0), (8, 8, 8, 2.0)))
    with pytest.raises(ValidationError, match=r"point \(0, 8, 8\): every dimension"):
        GemmMeasurement(dtype="bf16", points=((0, 8, 8, 1.0),))


def test_interpolation_in_log_dimensions() -> None:
    table = _table()
    for m, n, k, rate in table.points:
        assert table.tflops(m, n, k) == pytest.approx(rate)
    # 512 lies halfway between 256 and 1024 in log2: the mean of the two neighbours.
    mid = table.tflops(512, 1024, 1024)
    assert mid == pytest.approx(
        (table.tflops(256, 1024, 1024) + table.tflops(1024, 1024, 1024)) / 2
    )
    # Above the grid the largest measured rate holds; below it the smallest one's time does.
    assert table.tflops(65536, 4096, 4096) == pytest.approx(table.tflops(4096, 4096, 4096))
    assert table.tflops(64, 4096, 4096) == pytest.approx(table.tflops(256, 4096, 4096) / 4)


@settings(max_examples=60, deadline=None)
@given(
    rates=st.lists(st.floats(1.0, 1000.0), min_size=8, max_size=8),
    query=st.tuples(*(st.integers(64, 2048) for _ in range(3))),
)
def test_interpolated_rate_stays_within_its_cell(
    rates: list[float], query: tuple[int, int, int]
) -> None:
    dims = (64, 2048)
    points = [
        (*shape, r) for shape, r in zip(itertools.product(dims, repeat=3), rates, strict=True)
    ]
    table = GemmMeasurement.model_validate({"dtype": "fp16", "points": points})
    assert min(rates) * (1 - 1e-9) <= table.tflops(*query) <= max(rates) * (1 + 1e-9)


def test_device_uses_the_table_of_its_dtype() -> None:
    base = device_preset("h100-sxm")
    device = measured_device(base, _table(500.0))
    assert device.name == base.name and device != base
    assert device.gemm_flops_per_s(4096, 4096, 4096) == pytest.approx(500e12)
    # fp16 shares bf16's tensor-core rate and so its table; fp8 keeps the preset's curve.
    assert device.gemm_flops_per_s(4096, 4096, 4096, "fp16") == pytest.approx(500e12)
    assert device.gemm_flops_per_s(4096, 4096, 4096, "fp8") == base.gemm_flops_per_s(
        4096, 4096, 4096, "fp8"
    )
    flops = 2 * 4096**3
    assert device.op_time_us(flops, 0, gemm_shape=(4096,) * 3) == pytest.approx(flops / 500e6)
    # A GEMM beside communication still loses the SMs it holds.
    assert device.op_time_us(flops, 0, gemm_shape=(4096,) * 3, comm_sms=33) == pytest.approx(
        flops / 500e6 * 132 / 99
    )
    # A second table for a dtype replaces the first; two at once are refused.
    assert measured_device(device, _table(300.0)).gemm_flops_per_s(4096, 4096, 4096) == (
        pytest.approx(300e12)
    )
    with pytest.raises(ValidationError, match="2 tables for bf16"):
        EfficiencyModel(gemm_measured=(_table(), _table()))


def test_measure_gemm_on_cpu() -> None:
    pytest.importorskip("torch")
    table = measure_gemm((16, 32), dtype="fp32", device="cpu", warmup=1, repeats=2, trials=2)
    assert len(table.points) == 8 and all(p[3] > 0 for p in table.points)
    assert table.source.startswith("torch ") and "median of 2 timings" in table.source
    with pytest.raises(ModelsError, match="dtype='int8' cannot be measured"):
        measure_gemm((16,), dtype="int8", device="cpu")


def _attention(fwd: float, bwd: float) -> AttentionMeasurement:
    points = [(s, d, fwd, bwd) for s in (1024, 8192) for d in (64, 128)]
    return AttentionMeasurement.model_validate({"dtype": "bf16", "points": points})


def test_attention_table_checks_and_interpolates() -> None:
    with pytest.raises(
        ValidationError,
        match=r"point \(1024, 128\) is missing: .*seq_len=\[1024, 8192\] x head_dim=\[64, 128\]",
    ):
        AttentionMeasurement(dtype="bf16", points=((1024, 64, 1.0, 1.0), (8192, 128, 1.0, 1.0)))
    points = [(1024, 64, 200.0, 100.0), (4096, 64, 400.0, 300.0)]
    table = AttentionMeasurement.model_validate({"dtype": "bf16", "points": points})
    assert table.tflops(2048, 64) == pytest.approx(300.0)
    assert table.tflops(2048, 64, backward=True) == pytest.approx(200.0)
    assert table.tflops(512, 64) == pytest.approx(100.0)  # padded to the smallest sequence


def test_measured_attention_costs_forward_and_backward_apart() -> None:
    model = model_preset("gpt-1.7b")
    plan = ParallelPlan(attention="flash")
    core = next(op for op in layer_cost(model, plan, False).ops if op.kind == "attention")
    (fwd,) = core.kernels("fwd")
    (bwd,) = core.kernels("bwd")
    assert fwd[0] == "attention" and bwd[0] == "attention_bwd"
    assert fwd[3] == bwd[3] == (model.seq_len, model.seq_len, model.hidden_size // model.num_heads)
    base = device_preset("h100-sxm")
    device = measured_device(base, _attention(400.0, 200.0))
    executed = fwd[1] // 2  # the causal mask halves what the kernel runs
    fwd_us = roofline_time_us(device, encode_roofline([fwd]))
    bwd_us = roofline_time_us(device, encode_roofline([bwd]))
    assert fwd_us == pytest.approx(executed / 400e6)
    assert bwd_us == pytest.approx(2.5 * executed / 200e6)
    # Without a table, both phases run at the preset's attention fraction of peak.
    rate = base.peak_flops() * base.efficiency.attention_fraction / 1e6
    assert roofline_time_us(base, encode_roofline([bwd])) == pytest.approx(2.5 * executed / rate)
    # Entries of older ETs (class 2, no shape) keep the preset's fraction on any device.
    legacy = (2, executed, 0, 0, 0, 0)
    assert roofline_time_us(device, legacy) == pytest.approx(executed / rate)
