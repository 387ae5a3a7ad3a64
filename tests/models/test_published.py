"""Device presets from published measurements: the committed rows equal the extraction from
../shared/data, every rate is traceable and physically plausible, derived tables say so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainsim.models import (
    MEASURED_PRESET_NAMES,
    DeviceSpec,
    UnknownPresetError,
    device_preset,
    measured_preset,
    measured_presets,
)
from trainsim.models._published import extract_rows, render_tables
from trainsim.models._published_tables import ROWS

MEASUREMENTS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reference"
MEASUREMENTS = MEASUREMENTS / "device-measurements"
_ROW = re.compile(r"[a-z0-9_]+\.csv:\d+")


@pytest.fixture(scope="module")
def presets() -> dict[str, DeviceSpec]:
    return measured_presets()


def test_committed_rows_equal_the_extraction_from_shared_data() -> None:
    if not MEASUREMENTS.is_dir():
        pytest.fail(f"reference data folder {MEASUREMENTS} is missing")
    assert extract_rows(MEASUREMENTS) == ROWS


def test_rendered_tables_round_trip() -> None:
    namespace: dict[str, object] = {}
    exec(render_tables(ROWS), namespace)
    assert namespace["ROWS"] == ROWS


def test_every_committed_row_names_its_file_line_and_source() -> None:
    for kind, rows in ROWS.items():
        assert rows, kind
        for row in rows:
            assert _ROW.search(str(row["row"])), row
            assert str(row["source"]).strip(), row


def test_every_table_names_its_rows_and_whether_it_is_derived(
    presets: dict[str, DeviceSpec],
) -> None:
    assert set(presets) == set(MEASURED_PRESET_NAMES)
    for name, spec in presets.items():
        eff = spec.efficiency
        assert eff.gemm_measured and eff.attention_measured, name
        for table in (*eff.gemm_measured, *eff.attention_measured):
            assert table.source.startswith(("measured", "derived")), (name, table.source)
            assert _ROW.search(table.source), (name, table.source)
        assert eff.memory_source.startswith(("measured", "derived")), name
        assert _ROW.search(eff.memory_source), name


def test_derived_tables_are_marked(presets: dict[str, DeviceSpec]) -> None:
    def gemm(name: str, dtype: str) -> str:
        table = presets[name].efficiency.measured_gemm(dtype)
        assert table is not None
        return table.source

    assert gemm("h100-sxm", "fp8").startswith("measured")
    assert gemm("h100-sxm", "bf16").startswith("derived")  # no published H100 bf16 sweep
    assert gemm("a100-80gb", "bf16").startswith("measured")
    for dtype in ("bf16", "fp8"):
        assert gemm("b200", dtype).startswith("derived")  # from GB200
    for name in ("h800", "a100-40gb"):
        for table in presets[name].efficiency.gemm_measured:
            assert table.source.startswith("derived (same chip as")
    attention = {n: s.efficiency.attention_measured[0].source for n, s in presets.items()}
    assert attention["h200"].startswith("measured")
    assert attention["b200"].startswith("derived")
    assert attention["mi300x"].startswith("derived")
    assert presets["a100-40gb"].efficiency.memory_source.startswith("derived")


def _best_achievable(device: str, dtype: str) -> float:
    twin = {"fp16": "bf16", "bf16": "fp16"}.get(dtype, dtype)
    return max(
        float(r["tflops"])
        for r in ROWS["gemm_best"]
        if r["device"] == device and r["dtype"] in (dtype, twin)
    )


@pytest.mark.parametrize(
    ("name", "dtype", "device"),
    [
        ("a100-80gb", "bf16", "A100 SXM"),
        ("h100-sxm", "bf16", "H100 SXM"),
        ("h100-sxm", "fp8", "H100 SXM"),
        ("h200", "bf16", "H100 SXM"),  # stas00: "H200 is the same"
        ("h200", "fp8", "H200 SXM"),
        ("b200", "bf16", "B200 SXM"),
        ("b200", "fp8", "B200 SXM"),
        ("mi300x", "bf16", "MI300X"),
        ("mi300x", "fp8", "MI300X"),
    ],
)
def test_no_gemm_rate_exceeds_the_best_published_achievable(
    presets: dict[str, DeviceSpec], name: str, dtype: str, device: str
) -> None:
    spec = presets[name]
    table = spec.efficiency.measured_gemm(dtype)
    assert table is not None
    cap = _best_achievable(device, dtype)
    rates = [p[3] for p in table.points]
    assert max(rates) <= cap + 1e-9
    assert max(rates) < spec.peak_tflops[dtype]
    for shape in [(8192, 8192, 8192), (4096, 12288, 4096), (100_000, 50_000, 70_000)]:
        assert spec.gemm_flops_per_s(*shape, dtype) <= cap * 1e12 * (1 + 1e-9)


def test_square_gemms_take_the_published_sweep() -> None:
    h100 = measured_preset("h100-sxm")
    sweep = {
        int(r["size"]): float(r["tflops"])
        for r in ROWS["gemm_sweep"]
        if r["device"].startswith("H100") and r["dtype"] == "fp8"
    }
    for size in (2048, 4096, 8192, 16384):
        assert h100.gemm_flops_per_s(size, size, size, "fp8") / 1e12 == pytest.approx(
            sweep[size], rel=1e-6
        )
    # A shape with the FLOPs of 4096^3 takes 4096^3's rate (the equal-FLOPs rule).
    assert h100.gemm_flops_per_s(2048, 8192, 4096, "fp8") / 1e12 == pytest.approx(
        sweep[4096], rel=0.02
    )


def test_attention_reproduces_the_published_rates() -> None:
    a100 = measured_preset("a100-80gb")
    h200 = measured_preset("h200")
    # FlashAttention-2's fwd+bwd chart: both passes at the combined rate.
    assert a100.attention_flops_per_s(8192, 128) / 1e12 == pytest.approx(182.0)
    assert a100.attention_flops_per_s(8192, 128, backward=True) / 1e12 == pytest.approx(182.0)
    # cuDNN (H200, Llama 3.1 shape): forward and backward separately.
    assert h200.attention_flops_per_s(8192, 128) / 1e12 == pytest.approx(644.0)
    assert h200.attention_flops_per_s(8192, 128, backward=True) / 1e12 == pytest.approx(541.0)


def test_memory_bound_work_streams_at_the_measured_rate() -> None:
    h100 = measured_preset("h100-sxm")
    assert h100.achieved_bandwidth == pytest.approx(2970e9)
    assert h100.op_time_us(0.0, 2970e6) == pytest.approx(1000.0)
    a100_40 = measured_preset("a100-40gb")
    assert a100_40.achieved_bandwidth == pytest.approx(1700e9 * 1555 / 2039, rel=1e-3)


def test_default_presets_are_unchanged() -> None:
    h100 = device_preset("h100-sxm")
    assert h100.efficiency.gemm_measured == ()
    assert h100.efficiency.memory_measured_gbps is None
    assert h100.achieved_bandwidth == pytest.approx(3350e9 * 0.90)
    measured = measured_preset("h100")  # aliases resolve
    assert measured.peak_tflops == h100.peak_tflops
    assert measured.memory_gib == h100.memory_gib
    assert measured.num_sms == h100.num_sms


def test_a_device_file_round_trips_the_measured_preset() -> None:
    spec = measured_preset("h200")
    again = DeviceSpec.model_validate(spec.model_dump())
    assert again == spec
    assert again.gemm_time_us(4096, 4096, 4096) == spec.gemm_time_us(4096, 4096, 4096)


def test_unknown_or_tableless_preset_is_refused() -> None:
    with pytest.raises(UnknownPresetError, match="not a preset"):
        measured_preset("tpu-v9")


def test_a_batched_gemm_is_looked_up_as_its_batch_of_rows() -> None:
    a100 = measured_preset("a100-80gb")
    m, n, k, heads = 2048, 2048, 96, 24
    one = 2.0 * m * n * k
    batched = a100.op_time_us(one * heads, 0.0, gemm_shape=(m, n, k))
    alone = a100.op_time_us(one, 0.0, gemm_shape=(m, n, k))
    assert batched < heads * alone  # the heads fill the GPU that one head leaves idle
    rate = a100.gemm_flops_per_s(m * heads, n, k)
    assert batched == pytest.approx(one * heads / rate * 1e6)
    default = device_preset("a100-80gb")  # the curve ignores the batch
    assert default.op_time_us(one * heads, 0.0, gemm_shape=(m, n, k)) == pytest.approx(
        heads * default.op_time_us(one, 0.0, gemm_shape=(m, n, k))
    )
