"""Device presets built from published measurements (``models.measured_preset``).

The rows come from the reference collection ``../shared/data/reference/device-measurements``
(its README lists every source and marks what was read off a chart). ``extract_rows`` picks
the rows below out of its CSV files; the result is committed as
``models._published_tables.ROWS`` (``python -m trainsim.models._published DIR`` writes it), so
the presets work without the collection beside the package, and a test re-derives the rows
from the CSV files and checks the committed copy equals them. Every row carries its file, its
line and the ``source`` column of that line.

What is taken (nothing is fitted to a training measurement):

* GEMM, best achievable (``gemm_best``): the maximum-achievable-matmul rows (stas00
  ``mamf-finder.py``, AMD's MAF blog) per device and dtype. No GEMM rate of a preset exceeds
  it (the cap of every table).
* GEMM, size sweeps (``gemm_sweep``): square ``n x n x n`` vendor-BLAS rates, Azure
  AI-benchmarking-guide (A100 fp16, H100/H200/GB200/MI300X fp8) and the A100 TF32 curve of
  NVIDIA's "CUDA 11 Features Revealed" (digitized off a chart, +-3 TFLOP/s).
* Fused attention (``attention``): FlashAttention-2 forward+backward, causal, head dim 64/128,
  A100 and H100 (numbers printed on the bars of the README chart); cuDNN SDPA, Llama 3.1
  shape (GQA 64/8 heads, head dim 128), causal, bf16, non-deterministic backward, H200 and
  GB200 (NVIDIA's result CSVs); the Azure guide's FlashAttention-2 points (batch 2, 8k).
* HBM (``hbm``): BabelStream Triad (Azure guide) on A100-80GB, H100, H200, MI300X; the best
  cuDNN RMSNorm forward rate on GB200 (NVIDIA's norms CSV).

How a preset's tables are formed (``measured_preset``):

* A GEMM of shape (m, n, k) takes the square sweep's rate at ``(m n k)^(1/3)``, the square
  GEMM with the same FLOPs (interpolated in log2 of the size; above the sweep its largest
  size's rate; below it the smallest size's time, so the rate falls with the FLOPs). Checked
  against the sweeps' non-square rows, which it does not use: 6144x12288x12288 within 3%,
  1024x2145x1024 17-33% fast, 802816x192x768 1.5-1.9x fast (that one is close to
  memory-bound, where the roofline's bytes term takes over). The rule is tabulated on the
  powers of two from 128 to the largest swept size in every dimension (``GemmMeasurement``
  interpolates between them).
* Every rate is capped at the best achievable rate published for that device and dtype.
* A device and dtype without a sweep takes the sweep of the same architecture as a fraction
  of that sweep's best achievable rate, times its own best achievable rate: H100 and H200
  bf16 from their fp8 sweeps, B200 bf16 and fp8 from GB200's fp8 sweep, MI300X bf16 from its
  fp8 sweep. Such a table's ``source`` starts with ``derived``.
* Attention tables give forward and backward rates on executed FLOPs (``AttentionMeasurement``).
  FlashAttention-2's chart gives forward+backward only; both passes take it, which reproduces
  the combined time exactly (backward counts 2.5 times the forward FLOPs in both). B200 takes
  GB200's cuDNN rates times the dense bf16 peak ratio (2250/2500; same architecture);
  MI300X takes H100's FlashAttention-2 table times the ratio of the two devices' rates in
  the Azure guide's FlashAttention-2 benchmark (both derived).
* Memory-bound work streams at the measured HBM rate (``EfficiencyModel.memory_measured_gbps``):
  A100-40GB takes A100-80GB's Triad times the datasheet bandwidth ratio, B200 GB200's rate
  (the same 8 TB/s HBM3e), H800 H100's (the same board); those are derived.
* Arithmetic without a GEMM shape runs at the best achievable bf16 GEMM rate
  (``gemm_peak_fraction`` = best achievable / dense peak).

A100-40GB shares A100-80GB's compute tables and H800 H100's (the same chips and clocks).

They are an opt-in, not the default presets (``trainsim validate --device-set published``
scores them): against the validation table they improve Megatron-Core H100 (13.7% to 8.4%
MAPE) and llm-foundry (43.0% to 36.2%; H100 +73% to +48%), leave Narayanan 2021 about where
it was (2.7% to 3.2%), but make Korthikanti 2022 worse (4.2% to 5.5%, step times 5.7% to
7.6%, all too fast: the equal-FLOPs rule is optimistic for the skinny batched attention GEMMs
of unfused attention, as the held-out 802816x192x768 row shows) and llm-foundry's A100 runs
worse (+26% to +28..32%).
"""

from __future__ import annotations

import csv
import itertools
import math
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from trainsim.models._device import DeviceSpec, EfficiencyModel, device_preset
from trainsim.models._errors import UnknownPresetError
from trainsim.models._measured import AttentionMeasurement, GemmMeasurement

__all__ = ["MEASURED_PRESET_NAMES", "extract_rows", "measured_preset", "measured_presets"]

Row = dict[str, Any]

_GEMM = "gemm_measurements.csv"
_FA2 = "attention_fa2_fwd_bwd.csv"
_CUDNN = "attention_cudnn_sdpa_training.csv"
_OTHER = "attention_other.csv"
_MEM = "memory_bound_measurements.csv"
_NORMS = "memory_bound_cudnn_norms.csv"

#: Devices (as the CSV files name them) whose best-achievable GEMM rows are taken.
_BEST_DEVICES = ("A100 SXM", "H100 SXM", "H200 SXM", "B200 SXM", "GB200 SXM", "MI300X")
#: Square sweeps taken: (device in the CSV, dtype in the CSV).
_SWEEPS = (
    ("A100-SXM4-80GB (Azure ND A100 v4)", "fp16"),
    ("H100 80GB HBM3 SXM (Azure ND H100 v5)", "fp8"),
    ("H200 141GB (Azure ND H200 v5)", "fp8"),
    ("GB200 (Azure ND GB200 v6)", "fp8"),
    ("MI300X (Azure ND MI300X v5)", "fp8"),
    ("A100 (cuBLAS, CUDA 11)", "tf32"),
)
_DTYPES = {"bf16": "bf16", "fp16": "fp16", "tf32": "tf32", "fp8": "fp8"}
_DTYPES.update({"fp8_e4m3fn": "fp8", "fp8 (f8_fnuz)": "fp8"})


def _read(folder: Path, name: str) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of every data row of one CSV file (the header is line 1)."""
    with open(folder / name, newline="") as handle:
        return [(i + 2, row) for i, row in enumerate(csv.DictReader(handle))]


def _where(name: str, line: int) -> str:
    return f"{name}:{line}"


def extract_rows(folder: str | Path) -> dict[str, tuple[Row, ...]]:
    """The rows the presets use, picked out of the device-measurements collection."""
    folder = Path(folder)
    out: dict[str, list[Row]] = {"gemm_best": [], "gemm_sweep": [], "attention": [], "hbm": []}
    for line, r in _read(folder, _GEMM):
        dtype = _DTYPES.get(r["dtype"])
        if dtype is None:
            continue
        base: Row = {"device": r["device"], "dtype": dtype, "tflops": float(r["tflops"])}
        base |= {"row": _where(_GEMM, line), "method": r["method"], "source": r["source"]}
        best = r["method"].startswith(("measured: best of shape sweep", "measured by AMD: MAF"))
        if best and r["device"] in _BEST_DEVICES:
            shape = (int(r["M"]), int(r["N"]), int(r["K"]))
            out["gemm_best"].append({**base, "shape": shape, "notes": r["notes"]})
        elif (r["device"], r["dtype"]) in _SWEEPS and r["M"] == r["N"] == r["K"]:
            out["gemm_sweep"].append({**base, "size": int(r["M"])})
    for line, r in _read(folder, _FA2):
        if r["implementation"] == "FlashAttention-2" and r["causal"] == "True":
            out["attention"].append(
                {
                    "device": r["device"],
                    "kernel": "FlashAttention-2 fwd+bwd",
                    "dtype": "bf16",
                    "seq_len": int(r["seqlen"]),
                    "head_dim": int(r["head_dim"]),
                    "fwd": float(r["tflops"]),
                    "bwd": float(r["tflops"]),
                    "row": _where(_FA2, line),
                    "method": r["read_method"],
                    "source": r["source"],
                }
            )
    passes: dict[tuple[str, int, int], dict[str, tuple[float, str]]] = {}
    sources: dict[tuple[str, int, int], str] = {}
    for line, r in _read(folder, _CUDNN):
        if (r["config"], r["dtype"], r["attn_mask"], r["deterministic_bwd"]) != (
            "llama3.1",
            "bfloat16",
            "top_left",
            "False",
        ):
            continue
        key = (r["gpu"], int(r["kv_seqlen"]), int(r["head_dim_qk"]))
        passes.setdefault(key, {})[r["pass"]] = (float(r["tflops"]), _where(_CUDNN, line))
        sources[key] = r["source"]
    for key in sorted(passes):
        gpu, seq, hd = key
        fwd, fwd_row = passes[key]["fwd"]
        bwd, bwd_row = passes[key]["bwd"]
        out["attention"].append(
            {
                "device": gpu,
                "kernel": "cuDNN SDPA (Llama 3.1 shape)",
                "dtype": "bf16",
                "seq_len": seq,
                "head_dim": hd,
                "fwd": fwd,
                "bwd": bwd,
                "row": f"{fwd_row} {bwd_row}",
                "method": "measured",
                "source": sources[key],
            }
        )
    for line, r in _read(folder, _OTHER):
        if r["implementation"].startswith("Flash Attention 2.0") and r["config"].startswith(
            "batch 2, seqlen 8192"
        ):
            out["attention"].append(
                {
                    "device": r["device"],
                    "kernel": "Azure FlashAttention-2 benchmark",
                    "dtype": "bf16",
                    "seq_len": 8192,
                    "head_dim": int(r["head_dim"]),
                    "fwd": float(r["tflops"]),
                    "bwd": float(r["tflops"]),
                    "row": _where(_OTHER, line),
                    "method": r["method"],
                    "source": r["source"],
                }
            )
    for line, r in _read(folder, _MEM):
        if r["kernel"] == "BabelStream Triad":
            gbps = float(r["value"]) * 1000.0
            out["hbm"].append(
                {
                    "device": r["device"],
                    "kernel": r["kernel"],
                    "gbps": gbps,
                    "row": _where(_MEM, line),
                    "source": r["source"],
                }
            )
    norms = [
        (float(r["fwd_gbps"]), line, r)
        for line, r in _read(folder, _NORMS)
        if r["gpu_name"] == "NVIDIA GB200"
        and (r["norm_type"], r["backend"], r["data_type"], r["success"])
        == ("rms_norm", "cudnn", "bfloat16", "True")
    ]
    if norms:
        gbps, line, r = max(norms, key=lambda t: t[0])
        out["hbm"].append(
            {
                "device": "NVIDIA GB200",
                "kernel": f"cuDNN RMSNorm fwd {r['N']}x{r['C']} (best)",
                "gbps": gbps,
                "row": _where(_NORMS, line),
                "source": r["source"],
            }
        )
    return {key: tuple(rows) for key, rows in out.items()}


# --- presets -------------------------------------------------------------------------------

#: Which published device stands for each preset, per kind of table; a second element
#: names the rule when the device is not the preset's own.
_SAME = ""
_A100_80 = "A100-SXM4-80GB (Azure ND A100 v4)"
_H100 = "H100 80GB HBM3 SXM (Azure ND H100 v5)"
_H200 = "H200 141GB (Azure ND H200 v5)"
_GB200 = "GB200 (Azure ND GB200 v6)"
_MI300X = "MI300X (Azure ND MI300X v5)"

#: preset -> dtype -> (sweep device, sweep dtype, best device for this dtype, best device
#: for the sweep's dtype, note). A sweep in another dtype or of another device is derived.
_GEMM_PLAN: dict[str, dict[str, tuple[str, str, str, str, str]]] = {
    "a100-80gb": {
        "bf16": (_A100_80, "fp16", "A100 SXM", "A100 SXM", _SAME),
        "tf32": ("A100 (cuBLAS, CUDA 11)", "tf32", "", "", _SAME),
    },
    "h100-sxm": {
        "bf16": (_H100, "fp8", "H100 SXM", "H100 SXM", "H100 fp8 sweep"),
        "fp8": (_H100, "fp8", "H100 SXM", "H100 SXM", _SAME),
    },
    "h200": {
        "bf16": (_H200, "fp8", "H100 SXM", "H200 SXM", "H200 fp8 sweep; bf16 best is H100's"),
        "fp8": (_H200, "fp8", "H200 SXM", "H200 SXM", _SAME),
    },
    "b200": {
        "bf16": (_GB200, "fp8", "B200 SXM", "GB200 SXM", "GB200 fp8 sweep"),
        "fp8": (_GB200, "fp8", "B200 SXM", "GB200 SXM", "GB200 fp8 sweep"),
    },
    "mi300x": {
        "bf16": (_MI300X, "fp8", "MI300X", "MI300X", "MI300X fp8 sweep"),
        "fp8": (_MI300X, "fp8", "MI300X", "MI300X", _SAME),
    },
}
#: preset -> (attention device, kernel, scale rule: None, "peak" or "azure").
_ATTENTION_PLAN: dict[str, tuple[str, str, str | None]] = {
    "a100-80gb": ("A100 80GB SXM4", "FlashAttention-2 fwd+bwd", None),
    "h100-sxm": ("H100 80GB SXM5", "FlashAttention-2 fwd+bwd", None),
    "h200": ("NVIDIA H200", "cuDNN SDPA (Llama 3.1 shape)", None),
    "b200": ("NVIDIA GB200", "cuDNN SDPA (Llama 3.1 shape)", "peak"),
    "mi300x": ("H100 80GB SXM5", "FlashAttention-2 fwd+bwd", "azure"),
}
#: preset -> (HBM device, derived-by note).
_HBM_PLAN: dict[str, tuple[str, str]] = {
    "a100-80gb": ("A100-SXM4-80GB", _SAME),
    "a100-40gb": ("A100-SXM4-80GB", "datasheet bandwidth ratio 1555/2039"),
    "h100-sxm": ("H100 80GB HBM3 SXM", _SAME),
    "h800": ("H100 80GB HBM3 SXM", "same board as H100 SXM"),
    "h200": ("H200 141GB", _SAME),
    "b200": ("NVIDIA GB200", "same 8 TB/s HBM3e as GB200"),
    "mi300x": ("MI300X", _SAME),
}
#: Presets whose compute tables are another preset's (the same chip and clocks).
_SAME_CHIP = {"a100-40gb": "a100-80gb", "h800": "h100-sxm"}
#: GB200's dense bf16 peak (NVIDIA GB200 NVL72 datasheet, per GPU), for B200's attention.
_GB200_BF16_PEAK = 2500.0

MEASURED_PRESET_NAMES = ("a100-40gb", "a100-80gb", "h100-sxm", "h800", "h200", "b200", "mi300x")


def _rows() -> Mapping[str, tuple[Row, ...]]:
    from trainsim.models._published_tables import ROWS

    return ROWS


def _best(rows: Mapping[str, tuple[Row, ...]], device: str, dtype: str) -> Row:
    twin = {"fp16": "bf16", "bf16": "fp16"}.get(dtype, dtype)
    found = [r for r in rows["gemm_best"] if r["device"] == device and r["dtype"] in (dtype, twin)]
    return max(found, key=lambda r: float(r["tflops"]))


def _square_rate(sweep: Sequence[tuple[int, float]], size: float) -> float:
    """The sweep's rate at a square size (log2-interpolated; padded below, clamped above)."""
    sizes = [s for s, _ in sweep]
    if size <= sizes[0]:
        return sweep[0][1] * (size / sizes[0]) ** 3
    if size >= sizes[-1]:
        return sweep[-1][1]
    for (s0, r0), (s1, r1) in itertools.pairwise(sweep):
        if s0 <= size <= s1:
            t = (math.log2(size) - math.log2(s0)) / (math.log2(s1) - math.log2(s0))
            return r0 + t * (r1 - r0)
    raise AssertionError("unreachable")


def _gemm_table(
    rows: Mapping[str, tuple[Row, ...]], dtype: str, plan: tuple[str, str, str, str, str]
) -> GemmMeasurement:
    device, sweep_dtype, best_dev, ref_best_dev, note = plan
    points = sorted(
        (int(r["size"]), float(r["tflops"]), str(r["row"]))
        for r in rows["gemm_sweep"]
        if r["device"] == device and r["dtype"] == sweep_dtype
    )
    sweep = [(s, t) for s, t, _ in points]
    where = ", ".join(w for _, _, w in points)
    if best_dev:
        best = _best(rows, best_dev, dtype)
        ref = _best(rows, ref_best_dev, sweep_dtype)
        cap, scale = float(best["tflops"]), float(best["tflops"]) / float(ref["tflops"])
        capped = f"capped at best achievable {cap} TFLOP/s ({best['row']})"
        if scale != 1.0:
            capped += f"; scaled by {cap}/{ref['tflops']} ({ref['row']})"
    else:
        cap, scale = max(t for _, t in sweep), 1.0
        capped = "capped at the sweep's best"
    kind = f"derived from {note}" if note else "measured"
    source = f"{kind}: square {sweep_dtype} sweep of {device} [{where}] at (m n k)^(1/3); {capped}"
    axis = [2**e for e in range(7, 16) if 2**e < sweep[-1][0]] + [sweep[-1][0]]
    grid = [
        (m, n, k, round(min(cap, scale * _square_rate(sweep, (m * n * k) ** (1 / 3))), 3))
        for m in axis
        for n in axis
        for k in axis
    ]
    return GemmMeasurement(dtype=dtype, points=tuple(grid), source=source)


def _attention_table(
    rows: Mapping[str, tuple[Row, ...]], preset: str, peak_bf16: float
) -> AttentionMeasurement:
    device, kernel, rule = _ATTENTION_PLAN[preset]
    chosen = [r for r in rows["attention"] if r["device"] == device and r["kernel"] == kernel]
    scale, kind = 1.0, "measured"
    if rule == "peak":
        scale = peak_bf16 / _GB200_BF16_PEAK
        kind = f"derived ({device} x dense bf16 peak ratio {peak_bf16}/{_GB200_BF16_PEAK})"
    elif rule == "azure":
        azure = {r["device"]: r for r in rows["attention"] if r["kernel"].startswith("Azure")}
        own, ref = azure["MI300X"], azure["H100 80GB HBM3 SXM"]
        scale = float(own["fwd"]) / float(ref["fwd"])
        kind = (
            f"derived ({device} x Azure FlashAttention-2 ratio {own['fwd']}/{ref['fwd']}, "
            f"{own['row']} / {ref['row']})"
        )
    where = ", ".join(str(r["row"]) for r in chosen)
    points = tuple(
        (
            int(r["seq_len"]),
            int(r["head_dim"]),
            round(float(r["fwd"]) * scale, 3),
            round(float(r["bwd"]) * scale, 3),
        )
        for r in chosen
    )
    source = f"{kind}: {kernel}, causal, {device} [{where}]"
    return AttentionMeasurement(dtype="bf16", points=points, source=source)


def _hbm(rows: Mapping[str, tuple[Row, ...]], preset: str, peak_gbps: float) -> tuple[float, str]:
    device, note = _HBM_PLAN[preset]
    row = next(r for r in rows["hbm"] if r["device"] == device)
    gbps = float(row["gbps"])
    if preset == "a100-40gb":
        gbps *= peak_gbps / 2039.0
    kind = f"derived ({note})" if note else "measured"
    return round(gbps, 1), f"{kind}: {row['kernel']} on {device} ({row['row']}; {row['source']})"


@cache
def measured_preset(name: str) -> DeviceSpec:
    """The device preset ``name`` with its rates taken from published measurements.

    Datasheet peaks, memory and SM counts are the preset's; the GEMM and attention tables and
    the memory-bound bandwidth come from the published rows (see the module docstring);
    ``source`` of each table names its rows and says whether it is measured or derived.
    """
    base = device_preset(name)
    if base.name not in MEASURED_PRESET_NAMES:
        known = ", ".join(MEASURED_PRESET_NAMES)
        raise UnknownPresetError(f"device={name!r} has no published tables (known: {known})")
    rows = _rows()
    chip = _SAME_CHIP.get(base.name, base.name)
    gemm = tuple(_gemm_table(rows, dtype, plan) for dtype, plan in sorted(_GEMM_PLAN[chip].items()))
    if chip != base.name:
        note = f"derived (same chip as {chip}): "
        gemm = tuple(t.model_copy(update={"source": note + t.source}) for t in gemm)
    attention = _attention_table(rows, chip, base.peak_tflops["bf16"])
    if chip != base.name:
        attention = attention.model_copy(
            update={"source": f"derived (same chip as {chip}): " + attention.source}
        )
    gbps, hbm_source = _hbm(rows, base.name, base.hbm_bandwidth_gbps)
    best_bf16 = float(_best(rows, _GEMM_PLAN[chip]["bf16"][2], "bf16")["tflops"])
    efficiency = base.efficiency.model_copy(
        update={
            "gemm_peak_fraction": round(best_bf16 / base.peak_tflops["bf16"], 4),
            "gemm_measured": gemm,
            "attention_measured": (attention,),
            "memory_measured_gbps": gbps,
            "memory_source": hbm_source,
        }
    )
    return base.model_copy(update={"efficiency": EfficiencyModel.model_validate(efficiency)})


def measured_presets() -> dict[str, DeviceSpec]:
    """Every preset that has published tables, by name (``measured_preset`` of each)."""
    return {name: measured_preset(name) for name in MEASURED_PRESET_NAMES}


def render_tables(rows: Mapping[str, tuple[Row, ...]]) -> str:
    """``models/_published_tables.py``: the extracted rows as a Python literal."""
    lines = [
        "# ruff: noqa: E501",
        '"""Rows of ../shared/data/reference/device-measurements the measured presets use.',
        "",
        "Generated by ``python -m trainsim.models._published DIR``; do not edit by hand (a test",
        'checks it equals the extraction from the CSV files)."""',
        "",
        "from typing import Any",
        "",
        "ROWS: dict[str, tuple[dict[str, Any], ...]] = {",
    ]
    for key, table in rows.items():
        lines.append(f"    {key!r}: (")
        lines.extend(f"        {row!r}," for row in table)
        lines.append("    ),")
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - the generator
    sys.stdout.write(render_tables(extract_rows(sys.argv[1])))
