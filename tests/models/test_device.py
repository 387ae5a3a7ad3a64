"""DeviceSpec presets and the global efficiency model."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainsim.models import (
    DEVICE_PRESETS,
    EfficiencyModel,
    ModelsError,
    UnknownPresetError,
    device_preset,
    load_device,
)


def test_presets_cover_the_issue_list() -> None:
    for name in ("a100-40gb", "a100-80gb", "h100-sxm", "h800", "h200", "b200", "mi300x"):
        device = DEVICE_PRESETS[name]
        assert device.peak_flops("bf16") > device.peak_flops("fp32") > 0
        assert device.peak_flops("fp16") == device.peak_flops("bf16")
    assert device_preset("H100").name == "h100-sxm"
    assert device_preset("h200").memory_gib > device_preset("h100-sxm").memory_gib


def test_datasheet_peaks() -> None:
    assert device_preset("a100-80gb").peak_flops("bf16") == 312e12
    assert device_preset("h100-sxm").peak_flops("fp8") == pytest.approx(1978.9e12)
    with pytest.raises(ModelsError, match=r"dtype='fp8'.*a100-80gb"):
        device_preset("a100-80gb").peak_flops("fp8")
    with pytest.raises(UnknownPresetError, match="h100-sxm"):
        device_preset("tpu-v5")


def test_efficiency_is_one_global_calibration() -> None:
    # Every NVIDIA part shares the same curve; only the documented MI300X fraction differs.
    nvidia = {d.efficiency for n, d in DEVICE_PRESETS.items() if n != "mi300x"}
    assert nvidia == {EfficiencyModel()}


def test_gemm_efficiency_curve() -> None:
    eff = EfficiencyModel()
    assert eff.gemm_fraction(8192, 8192, 8192) == pytest.approx(0.80)
    small = eff.gemm_fraction(1024, 1024, 1024) / eff.gemm_fraction(8192, 8192, 8192)
    assert small == pytest.approx(0.77, abs=0.02)  # CUTLASS H100 1024^3 vs 8192^3 ratio
    fractions = [eff.gemm_fraction(d, 4096, 4096) for d in (16, 64, 256, 1024, 4096, 16384)]
    assert fractions == sorted(fractions) and all(0 < f <= 1 for f in fractions)


@settings(max_examples=200, deadline=None)
@given(m=st.integers(1, 2**20), n=st.integers(1, 2**20), k=st.integers(1, 2**20))
def test_no_gemm_beats_the_best_measured_rate(m: int, n: int, k: int) -> None:
    """The 8192^3 fraction is the best measured (H100 SXM: 80.3% in a published shape
    sweep): a larger GEMM may not run faster."""
    eff = EfficiencyModel()
    assert 0 < eff.gemm_fraction(m, n, k) <= eff.gemm_peak_fraction
    assert eff.gemm_fraction(2 * 8192, 3 * 8192, 8192) == pytest.approx(eff.gemm_peak_fraction)


def test_roofline_times() -> None:
    h100 = device_preset("h100-sxm")
    # 8192^3 bf16: 1.1 PFLOP at 0.8 x 989.4 TFLOP/s.
    assert h100.gemm_time_us(8192, 8192, 8192) == pytest.approx(
        2 * 8192**3 / (0.8 * 989.4e12) * 1e6
    )
    # A skinny GEMM is bandwidth-bound: bytes over 0.9 x 3.35 TB/s.
    m, n, k = 1, 8192, 8192
    assert h100.gemm_time_us(m, n, k) == pytest.approx(
        2 * (m * k + k * n + m * n) / (0.9 * 3350e9) * 1e6
    )
    h200 = device_preset("h200")
    assert h200.op_time_us(0, 1e9) < h100.op_time_us(0, 1e9)
    assert h200.op_time_us(1e15, 0) == pytest.approx(h100.op_time_us(1e15, 0))


def test_load_device_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "gpu.yaml"
    path.write_text(
        "name: my-gpu\npeak_tflops: {bf16: 500, fp32: 50}\nhbm_bandwidth_gbps: 2000\n"
        "memory_gib: 96\nefficiency: {gemm_peak_fraction: 0.7}\n"
    )
    device = load_device(path)
    assert device.peak_flops("bf16") == 500e12 and device.efficiency.gemm_peak_fraction == 0.7
    assert load_device("h200") is DEVICE_PRESETS["h200"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npeak_tflops: {bf16: 1}\nhbm_bandwidth_gbps: -1\nmemory_gib: 1\n")
    with pytest.raises(ModelsError, match="hbm_bandwidth_gbps=-1: Input should be greater than 0"):
        load_device(bad)


def test_communication_sms_slow_the_compute_beside_them() -> None:
    """Kernels holding 16 of an H100's 132 SMs leave 116 to a GEMM beside them: its compute
    time grows by 132/116; memory-bound work and devices without an SM count do not change."""
    h100 = device_preset("h100-sxm")
    shape = (8192, 8192, 8192)
    alone = h100.op_time_us(2 * 8192**3, 0, gemm_shape=shape)
    beside = h100.op_time_us(2 * 8192**3, 0, gemm_shape=shape, comm_sms=16)
    assert beside / alone == pytest.approx(132 / 116)
    assert h100.op_time_us(0, 1e9, comm_sms=16) == h100.op_time_us(0, 1e9)
    assert {d.num_sms for d in DEVICE_PRESETS.values()} == {108, 132, 148, 304}
    bare = h100.model_copy(update={"num_sms": None})
    assert bare.op_time_us(1e12, 0, comm_sms=16) == bare.op_time_us(1e12, 0)
    with pytest.raises(ModelsError, match=r"comm_sms=132 leaves no SM of device h100-sxm"):
        h100.op_time_us(1e12, 0, comm_sms=132)
